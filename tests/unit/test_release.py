"""The release (issue 19): one version everywhere, a workflow that checks the tag against it
before building, and workflows that actionlint accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from image_awaiter import __version__
from image_awaiter.spec.pullers import DEFAULT_HELPER_IMAGE

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
SCRIPT = ROOT / "scripts" / "release_version.py"


def load(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def test_the_chart_the_image_tag_and_the_helper_default_carry_the_packages_version() -> None:
    chart = load(ROOT / "chart" / "Chart.yaml")
    assert (chart["version"], chart["appVersion"]) == (__version__, __version__)
    assert DEFAULT_HELPER_IMAGE.rpartition(":")[2] == __version__
    image = load(ROOT / "chart" / "values.yaml")["awaiter"]["image"]
    assert (image["repository"], image["tag"]) == ("ghcr.io/image-awaiter/image-awaiter", "")
    hub = load(ROOT / "tests" / "fixtures" / "charts" / "hub" / "Chart.yaml")
    assert [d["version"] for d in hub["dependencies"] if d["name"] == "image-awaiter"] == [
        __version__
    ]


def run_script(*args: str, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "release_version.py"), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_release_check_accepts_the_tag_of_the_packages_version() -> None:
    checked = run_script("--tag", f"v{__version__}")
    assert (checked.returncode, checked.stdout, checked.stderr) == (
        0,
        f"version={__version__}\n",
        "",
    )


@pytest.mark.parametrize("tag", ["v9.9.9", __version__, f"v{__version__}-rc.1"])
def test_the_release_check_refuses_any_other_tag_in_one_line(tag: str) -> None:
    checked = run_script("--tag", tag)
    assert checked.returncode == 1 and checked.stdout == ""
    assert checked.stderr == (
        f"release_version: tag {tag!r} does not match the package's version: tag "
        f"v{__version__}, or change __version__ in image_awaiter/__init__.py and "
        "chart/Chart.yaml together\n"
    )


def test_the_release_check_refuses_a_chart_whose_app_version_differs(tmp_path: Path) -> None:
    for part in ("scripts/release_version.py", "image_awaiter/__init__.py", "chart/Chart.yaml"):
        (tmp_path / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / part, tmp_path / part)
    chart = tmp_path / "chart" / "Chart.yaml"
    chart.write_text(chart.read_text().replace(f'appVersion: "{__version__}"', 'appVersion: "9"'))
    checked = run_script(root=tmp_path)
    assert checked.returncode == 1
    assert "chart/Chart.yaml appVersion is '9'" in checked.stderr


def test_the_release_workflow_checks_the_tag_then_builds_signs_and_publishes() -> None:
    workflow = load(WORKFLOWS / "release.yml")
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key `on` as True
    [job] = workflow["jobs"].values()
    assert job["permissions"]["id-token"] == "write" and job["permissions"]["packages"] == "write"
    steps = job["steps"]
    runs = [str(step.get("run", "")) for step in steps]
    uses = [str(step.get("uses", "")) for step in steps]
    check = next(i for i, run in enumerate(runs) if "release_version.py --tag" in run)
    build = next(i for i, use in enumerate(uses) if use.startswith("docker/build-push-action"))
    assert check < build, "the tag is checked before anything is built"
    built = steps[build]["with"]
    assert built["platforms"] == "linux/amd64,linux/arm64" and built["push"] is True
    assert built["file"] == "Dockerfile.distroless" and built["sbom"] is True
    assert any("cosign sign --yes" in run for run in runs)
    assert any("cosign attest" in run and "spdxjson" in run for run in runs)
    assert any("helm push" in run and "--app-version" in run for run in runs)


def actionlint() -> Path:
    made = subprocess.run(
        ["make", "-s", "actionlint"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, f"could not build actionlint: {made.stdout}{made.stderr}"
    pinned = re.search(r"^ACTIONLINT_VERSION \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert pinned is not None, "the Makefile pins actionlint's version"
    return ROOT / ".tools" / f"actionlint-{pinned.group(1)}" / "actionlint"


def test_actionlint_accepts_every_workflow() -> None:
    assert sorted(p.name for p in WORKFLOWS.glob("*.yml")) == ["ci.yml", "release.yml"]
    linted = subprocess.run(
        [str(actionlint()), "-no-color"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  j:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ steps.nope.outputs.x }}\n"
    )
    linted = subprocess.run(
        [str(actionlint()), "-no-color", str(broken)], capture_output=True, text=True, check=False
    )
    assert linted.returncode == 1 and "steps.nope" in linted.stdout

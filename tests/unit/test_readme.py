"""README.md, read as a new user reads it (issue 19): what it lists and the commands it gives
must agree with the project."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_runtime_dependency_is_named_in_the_install_section() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = [re.split(r"[<>=!~ ]", requirement)[0] for requirement in project["dependencies"]]
    install = README.split("## Install", 1)[1].split("\n## ", 1)[0]
    assert [n for n in names if f"`{n}`" not in install] == []


def test_no_kubectl_watch_names_two_resource_types() -> None:
    """Real kubectl: `error: you may only specify a single resource type` with --watch."""
    watches = [line for line in README.splitlines() if "kubectl get" in line and "--watch" in line]
    assert watches, "the README shows how to watch a run"
    assert [line for line in watches if "," in line.split("kubectl get", 1)[1].split()[0]] == []


def test_the_supported_helm_versions_are_stated() -> None:
    assert "Helm 3 and Helm 4" in README

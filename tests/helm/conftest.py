"""Fixtures for the end-to-end hook tests: the REAL `helm` and `kubectl` binaries against a
simulated cluster served over HTTPS (they send bearer tokens only over TLS), whose pod runtime
runs the real image-awaiter CLI in the hook Job's pod as the chart's ServiceAccount.

Each cluster gets its own kubeconfig and helm homes (cache, config, data) in a temp dir, so no
test reads or writes the user's helm or kubectl state."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from simcluster import SimCluster
from simcluster.apiserver.audit import Entry
from simcluster.apiserver.kinds import SERVED
from simcluster.tools import find

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart"
APP_CHART = ROOT / "tests" / "fixtures" / "charts" / "hub"
NAMESPACE = "jhub"
# Registry images the tests pull (pull seconds before the time scale; the hook tests use 0.05).
BASE = "quay.io/jupyter/base-notebook:2025-06-02"
SCIPY = "quay.io/jupyter/scipy-notebook:2025-06-02"
# Kinds whose objects are the record of what happened, not anything a chart left behind: real
# clusters keep Events for an hour after their object is gone.
RECORDS = {"events"}


def tool(name: str) -> str:
    """The project's fetched binary (`make helm`), else the one on PATH; helm is fetched when
    there is neither, a missing kubectl skips the test."""
    found = find(name)
    if found is None and name == "helm":
        made = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "fetch_helm.py"), str(ROOT / ".tools")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert made.returncode == 0, f"could not fetch helm: {made.stderr}"
        return str(ROOT / ".tools" / "bin" / "helm")
    if found is None:
        pytest.skip(f"no {name} binary in .tools/bin or on PATH")
    return found


class Cluster:
    """A started SimCluster plus what a user's shell would have: KUBECONFIG and helm homes."""

    def __init__(self, sim: SimCluster, home: Path) -> None:
        self.sim = sim
        self.kubeconfig = sim.write_kubeconfig(home / "kubeconfig", namespace=NAMESPACE)
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(home / "helm-cache"),
            "HELM_CONFIG_HOME": str(home / "helm-config"),
            "HELM_DATA_HOME": str(home / "helm-data"),
        }
        self.home = home

    def run(
        self, binary: str, *args: str, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool(binary), *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.home,
            timeout=timeout,
            check=False,
        )

    def helm(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, "--namespace", NAMESPACE, timeout=timeout)

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, timeout=60)

    def status(self, release: str) -> dict[str, Any]:
        shown = self.helm("status", release, "-o", "json")
        assert shown.returncode == 0, shown.stderr
        return dict(json.loads(shown.stdout))

    def mark(self) -> int:
        """A position in the audit log; `audit_since(mark)` is what happened after it."""
        return len(self.sim.audit.entries)

    def audit_since(self, mark: int = 0) -> list[Entry]:
        return list(self.sim.audit.entries[mark:])

    def store_keys(self) -> set[tuple[str, str, str, str]]:
        """Every stored object as (resource, namespace, name, uid), Events aside."""
        keys = set()
        for kind in SERVED:
            if kind.resource in RECORDS:
                continue
            for (namespace, name), obj in self.sim.store.peek(kind.resource).items():
                keys.add((kind.resource, namespace, name, obj["metadata"]["uid"]))
        return keys

    def hook_pods(self) -> list[dict[str, Any]]:
        """The hook Job's pods (the puller pods of a deleted DaemonSet may still be going)."""
        return [
            pod
            for pod in self.sim.objects("pods", NAMESPACE)
            if (pod["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "hook"
        ]

    def node_images(self) -> dict[str, set[str]]:
        return {
            node["metadata"]["name"]: {n for i in node["status"]["images"] for n in i["names"]}
            for node in self.sim.objects("nodes")
        }


def service_account_user(job_or_pod: dict[str, Any]) -> str:
    spec = job_or_pod["spec"]
    spec = spec.get("template", {}).get("spec", spec)
    namespace = job_or_pod["metadata"].get("namespace", NAMESPACE)
    return f"system:serviceaccount:{namespace}:{spec['serviceAccountName']}"


def new_cluster(home: Path, *, nodes: int = 2, time_scale: float = 0.05) -> Cluster:
    sim = SimCluster(seed=9, time_scale=time_scale)
    sim.use_self_signed_tls(home / "tls")
    sim.start()
    sim.registry.add(BASE, pull_seconds=20)
    sim.registry.add(SCIPY, pull_seconds=40)
    for index in range(nodes):
        sim.add_node(f"user-{index}")
    sim.add_namespace(NAMESPACE)
    return Cluster(sim, home)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    made = new_cluster(tmp_path)
    try:
        yield made
    finally:
        made.sim.stop()


def app_chart(directory: Path) -> Path:
    """The application chart fixture with its dependency built by the real `helm dependency
    build` (the file:// path made absolute, since the copy lives elsewhere)."""
    chart = directory / "hub"
    shutil.copytree(APP_CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["dependencies"][0]["repository"] = f"file://{CHART}"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    built = subprocess.run(
        [tool("helm"), "dependency", "build", str(chart)],
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(directory),
            "HELM_CACHE_HOME": str(directory / "helm-cache"),
            "HELM_CONFIG_HOME": str(directory / "helm-config"),
            "HELM_DATA_HOME": str(directory / "helm-data"),
        },
        timeout=60,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return chart

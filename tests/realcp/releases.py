"""A release's world on the real control plane for the Helm tests: its own namespace, two nodes
of the HTTP kubelet simulator (the hook's pod runs the real CLI as their process), a helm
(3 or 4) with its own homes, and the application chart `shop` with this clone's chart (or a
changed copy) as its dependency, built by that helm."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from simcluster.apiclient import Api
from simcluster.controlplane.endpoints import Endpoint
from simcluster.nodes.kubelet import Kubelets
from simcluster.nodes.world import NodeWorld
from tests.realcp.charts import CHART, TOOLS

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "tests" / "fixtures" / "charts" / "shop"
RUN_LABEL = "image-awaiter.test/run"
BASE = "quay.io/jupyter/base-notebook:2025-06-02"
SCIPY = "quay.io/jupyter/scipy-notebook:2025-06-02"
MISSING = "quay.io/jupyter/no-such-notebook:2099-01-01"
RELEASE = "shop"
# `make helm`: helm 4 as .tools/bin/helm, helm 3.17 as .tools/bin/helm3; (binary, version).
HELMS = {"helm3": ("helm3", "v3."), "helm4": ("helm", "v4.")}


@dataclass
class Story:
    """One release's world: its namespace, nodes, helm and chart."""

    control_plane: Endpoint
    helm_binary: Path
    namespace: str
    run: str
    chart: Path
    home: Path
    world: NodeWorld

    def env(self) -> dict[str, str]:
        """A user's shell for helm: its own homes, the admin kubeconfig of the namespace."""
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "KUBECONFIG": str(self.home / "kubeconfig"),
            "HELM_CACHE_HOME": str(self.home / "helm-cache"),
            "HELM_CONFIG_HOME": str(self.home / "helm-config"),
            "HELM_DATA_HOME": str(self.home / "helm-data"),
        }

    def helm(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.helm_binary), *args, "--namespace", self.namespace],
            capture_output=True, text=True, env=self.env(), cwd=self.home, timeout=timeout,
            check=False,
        )  # fmt: skip

    def values(self, *images: str) -> list[str]:
        """Values pinning the application, the hook and its pullers to this story's nodes."""
        pin = {RUN_LABEL: self.run}
        values = {
            "nodeSelector": pin,
            "prePuller": {
                "images": list(images),
                "awaiter": {"nodeSelector": pin, "timeout": "90s"},
                "puller": {"nodeSelector": {"kubernetes.io/os": "linux", **pin}},
            },
        }
        path = self.home / f"values-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(values))
        return ["-f", str(path)]

    def status(self) -> str:
        shown = self.helm("status", RELEASE, "-o", "json")
        assert shown.returncode == 0, shown.stderr
        return str(json.loads(shown.stdout)["info"]["status"])

    def get(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.control_plane.admin.get(path.format(ns=self.namespace))[
            "items"
        ]
        return items

    def node_images(self) -> dict[str, set[str]]:
        nodes = self.get(f"/api/v1/nodes?labelSelector={RUN_LABEL}%3D{self.run}")
        return {
            n["metadata"]["name"]: {
                name for i in n["status"].get("images") or [] for name in i["names"]
            }
            for n in nodes
        }

    def hook_pods(self) -> list[dict[str, Any]]:
        return self.get(
            "/api/v1/namespaces/{ns}/pods?labelSelector=app.kubernetes.io%2Fcomponent%3Dhook"
        )


def build_chart(
    chart_dir: Path, helm_binary: Path, home: Path, *, dependency: Path = CHART
) -> Path:
    chart = chart_dir / "shop"
    shutil.copytree(SHOP, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["dependencies"][0]["repository"] = f"file://{dependency}"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "HELM_CACHE_HOME": str(home / "c"),
           "HELM_CONFIG_HOME": str(home / "g"), "HELM_DATA_HOME": str(home / "d")}  # fmt: skip
    built = subprocess.run(
        [str(helm_binary), "dependency", "build", str(chart)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    return chart


@contextmanager
def release_world(
    control_plane: Endpoint, *, helm: str, home: Path, dependency: Path = CHART
) -> Iterator[Story]:
    """A Story for `helm` ("helm3" or "helm4"), removed with its namespace and nodes after."""
    binary, major = HELMS[helm]
    helm_binary = TOOLS / binary
    assert helm_binary.exists(), f"{helm_binary} missing: run `make helm`"
    version = subprocess.run([str(helm_binary), "version", "--short"], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    assert version.startswith(major), version
    run = f"{helm}-{uuid.uuid4().hex[:6]}"
    namespace = f"release-{run}"
    admin = control_plane.admin
    admin.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    admin.wait_for(f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
    control_plane.write_kubeconfig(home / "kubeconfig", namespace=namespace)
    world = NodeWorld(time_scale=0.05)
    world.registry.add(BASE, pull_seconds=20)
    world.registry.add(SCIPY, pull_seconds=40)
    world.fail_pull(MISSING, kind="tag-not-found")
    kubelets = Kubelets(
        Api.from_kubeconfig(control_plane.kubeconfig),
        world=world,
        serving=control_plane.kubelet_tls(directory=home / "kubelet"),
    )
    kubelets.start()
    for index in range(2):
        kubelets.add_node(f"{run}-{index}", labels={RUN_LABEL: run})
    chart = build_chart(home, helm_binary, home, dependency=dependency)
    made = Story(control_plane, helm_binary, namespace, run, chart, home, world)
    try:
        yield made
    finally:
        made.helm("uninstall", RELEASE)
        admin.request("DELETE", f"/api/v1/namespaces/{namespace}")
        deadline = time.monotonic() + 30  # the kubelets finish the pods' graceful deletion
        while admin.exists(f"/api/v1/namespaces/{namespace}") and time.monotonic() < deadline:
            time.sleep(0.2)
        kubelets.stop()
        kubelets.remove_nodes()


def written(control_plane: Endpoint, namespace: str, resource: str) -> list[str]:
    """When objects of `resource` were written in the namespace (the audit log's stamps):
    helm 3 creates them, helm 4 applies them server-side (a PATCH that creates)."""
    stamps = []
    for line in control_plane.audit_log.read_text().splitlines():
        entry = json.loads(line)
        ref = entry.get("objectRef") or {}
        if (
            entry["verb"] in ("create", "patch")
            and (ref.get("resource"), ref.get("namespace")) == (resource, namespace)
            and not ref.get("subresource")
            and entry["responseStatus"]["code"] in (200, 201)
            and entry["user"]["username"] != "system:serviceaccount:kube-system:job-controller"
        ):
            stamps.append(entry["requestReceivedTimestamp"])
    return stamps

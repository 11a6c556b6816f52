"""The differential tier: every test runs once against the simulated API server and once against
the real one (the `backend` fixture), with the same simulated nodes in front of both: the HTTP
kubelets of `simcluster.nodes.kubelet`, which know nothing of which server answers.

Each test gets a fresh namespace and its own nodes, named and labelled with a per-test id so
that tests sharing the real control plane (one per run, cluster-scoped nodes) never see each
other's nodes: every DaemonSet here selects the test's label."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from simcluster.apiclient import Api, Json
from simcluster.cluster import SimCluster
from simcluster.nodes.kubelet import Kubelets
from simcluster.nodes.world import NodeWorld

ROOT = Path(__file__).resolve().parents[2]
RUN_LABEL = "differential.image-awaiter.io/run"
# Pull back-off and resync are scaled: 10 s becomes 1 s, so a back-off is seen within seconds.
TIME_SCALE = 0.1


@dataclass
class Backend:
    name: str  # "sim" or "real"
    api: Api
    kubeconfig: Path
    namespace: str
    world: NodeWorld
    kubelets: Kubelets
    run: str  # the per-test id in node names and RUN_LABEL
    timings: dict[str, float] = field(default_factory=dict)

    def node(self, suffix: str) -> str:
        return f"{self.run}-{suffix}"

    def add_node(self, suffix: str, **options: Any) -> str:
        name = self.node(suffix)
        labels = {RUN_LABEL: self.run, **options.pop("labels", {})}
        self.kubelets.add_node(name, labels=labels, **options)
        return name

    def path(self, resource: str, name: str = "") -> str:
        group = "/apis/apps/v1" if resource == "daemonsets" else "/api/v1"
        base = f"{group}/namespaces/{self.namespace}/{resource}"
        return f"{base}/{name}" if name else base

    def daemonset(self, name: str, pod_spec: Json) -> Json:
        """A DaemonSet confined to this test's nodes."""
        spec = {
            **pod_spec,
            "nodeSelector": {RUN_LABEL: self.run, **pod_spec.get("nodeSelector", {})},
        }
        body = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
            },
        }
        return self.api.call("POST", self.path("daemonsets"), body)

    def pods(self, app: str) -> list[Json]:
        query = {"labelSelector": f"app={app}"}
        return list(self.api.call("GET", self.path("pods"), query=query)["items"])

    def events(self) -> list[Json]:
        return list(self.api.call("GET", self.path("events"))["items"])

    def eventually(self, probe: Callable[[], Any], *, timeout: float = 30.0, what: str) -> Any:
        """Poll `probe` until it returns something true; that value."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {what} not within {timeout:g}s")
            time.sleep(0.1)


def _drain(backend: Backend) -> None:
    """Delete the test's DaemonSets and pods while its kubelets still run, so that they finish
    the pods' graceful deletion (else the real namespace would stay Terminating)."""
    backend.api.request(
        "DELETE", backend.path("daemonsets"), query={"propagationPolicy": "Background"}
    )
    for pod in backend.api.call("GET", backend.path("pods"))["items"]:
        backend.api.request("DELETE", backend.path("pods", pod["metadata"]["name"]))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pods = backend.api.call("GET", backend.path("pods"))["items"]
        if not pods:
            return
        time.sleep(0.2)


def _sim_backend(tmp_path: Path, run: str) -> Iterator[tuple[Api, Path, str]]:
    sim = SimCluster()
    sim.start()
    try:
        kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
        api = Api.from_kubeconfig(kubeconfig)
        namespace = f"ns-{run}"
        api.call("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
        yield api, kubeconfig, namespace
    finally:
        sim.stop()


@pytest.fixture(params=["sim", "real"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    run = f"d{uuid.uuid4().hex[:6]}"
    world = NodeWorld(unknown_images="missing", time_scale=TIME_SCALE)
    sim_setup: Iterator[tuple[Api, Path, str]] | None = None
    serving = None
    if request.param == "real":
        endpoint = request.getfixturevalue("control_plane")
        namespace = request.getfixturevalue("namespace")
        kubeconfig = Path(endpoint.kubeconfig)
        api = Api.from_kubeconfig(kubeconfig)
        serving = endpoint.kubelet_tls(directory=tmp_path / "kubelet")
    else:
        sim_setup = _sim_backend(tmp_path, run)
        api, kubeconfig, namespace = next(sim_setup)
    kubelets = Kubelets(api, world=world, serving=serving)
    kubelets.start()
    backend = Backend(request.param, api, kubeconfig, namespace, world, kubelets, run)
    try:
        yield backend
    finally:
        _drain(backend)
        kubelets.stop()
        kubelets.remove_nodes()
        api.close()
        if sim_setup is not None:
            sim_setup.close()

"""One cluster, two backends, for the end-to-end scenarios that use only API-level behaviour:
`sim` (the simulated API server with its in-process kubelets) and `real` (the real control
plane with the HTTP kubelet simulator, `simcluster.nodes.kubelet.Kubelets`, as its nodes, and
the fault-injecting proxy between the awaiter and kube-apiserver).

A test asks for `cluster_backend` and runs once on each: it adds nodes (`add_node`, names
local to the test), teaches the registry its images (`registry`), injects pull failures
(`fail_pull`) and API faults (`faults`, the same `Fault` rules on both), runs the real CLI
(`run`) and reads what is stored (`objects`). On the real control plane nodes are cluster-wide
and shared by every test of the run: each test's nodes carry its own label, and `run` passes
the awaiter a node selector for it, so that no test awaits another's nodes (the sim does the
same, to be alike).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simcluster.apiserver.faults import Faults
from simcluster.controlplane.certificates import KeyPair
from simcluster.controlplane.endpoints import Endpoint
from simcluster.controlplane.faultproxy import FaultProxy
from simcluster.nodes.registry import Registry
from tests.conftest import ROOT, TOKEN, CliResult, cli_command, cli_env

RUN_LABEL = "image-awaiter.test/run"
TIME_SCALE = 0.05
PATHS = {  # a namespaced resource's collection on the real API server, `{ns}` filled in
    "pods": "/api/v1/namespaces/{ns}/pods",
    "events": "/api/v1/namespaces/{ns}/events",
    "daemonsets": "/apis/apps/v1/namespaces/{ns}/daemonsets",
    "nodes": "/api/v1/nodes",
}


class Backend:
    """What a scenario needs of a cluster; `SimBackend` and `RealBackend` provide it."""

    name: str
    namespace: str
    kubeconfig: Path
    registry: Registry
    faults: Faults
    run_id: str

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.run_id = os.urandom(3).hex()

    def node(self, local: str) -> str:
        """The cluster's name of the test's node `local`."""
        return local

    def add_node(self, local: str, **options: Any) -> str:
        raise NotImplementedError

    def fail_pull(self, image: str, **options: Any) -> None:
        raise NotImplementedError

    def objects(self, resource: str) -> list[dict[str, Any]]:
        """The stored objects of `resource` in the test's namespace (nodes: the test's)."""
        raise NotImplementedError

    def _labels(self, options: dict[str, Any]) -> dict[str, str]:
        return {**(options.pop("labels", None) or {}), RUN_LABEL: self.run_id}

    def selector_args(self, args: tuple[str, ...]) -> list[str]:
        """The test's node selector for a generated puller (spec files carry their own)."""
        if "--image" not in args or "--daemonset-spec" in args or "--from-manifests" in args:
            return []
        if "--node-selector" in args:
            return []
        return ["--node-selector", "kubernetes.io/os=linux",
                "--node-selector", f"{RUN_LABEL}={self.run_id}"]  # fmt: skip

    def run(self, *args: str, timeout: float = 120, kubeconfig: Path | None = None) -> CliResult:
        """`image-awaiter ARGS` against this cluster, JSON logs and the report parsed."""
        report = self.tmp_path / f"report-{os.urandom(3).hex()}.json"
        config = kubeconfig or self.kubeconfig
        full = [*args, *self.selector_args(args), "--kubeconfig", str(config),
                "--report", str(report), "--log-format", "json"]  # fmt: skip
        done = subprocess.run(
            cli_command(full), capture_output=True, text=True, env=cli_env(), cwd=ROOT,
            timeout=timeout, check=False,
        )  # fmt: skip
        parsed = json.loads(report.read_text()) if report.exists() else None
        return CliResult(done.returncode, done.stdout, done.stderr, parsed)

    def pinned(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """A DaemonSet manifest whose pods may land only on this test's nodes."""
        spec = manifest["spec"]["template"]["spec"]
        spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), RUN_LABEL: self.run_id}
        return manifest

    def wait_until(self, condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := condition()):
            assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s"
            time.sleep(0.05)
        return value


class SimBackend(Backend):
    name = "sim"

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        from simcluster import SimCluster

        self.sim = SimCluster(seed=1, time_scale=TIME_SCALE)
        self.sim.start()
        self.namespace = "default"
        self.kubeconfig = Path(self.sim.write_kubeconfig(tmp_path / "kubeconfig", token=TOKEN))
        self.registry = self.sim.registry
        self.faults = self.sim.faults

    def add_node(self, local: str, **options: Any) -> str:
        self.sim.add_node(local, labels=self._labels(options), **options)
        return local

    def fail_pull(self, image: str, **options: Any) -> None:
        self.sim.fail_pull(image, **options)

    def objects(self, resource: str) -> list[dict[str, Any]]:
        if resource == "nodes":
            return list(self.sim.objects("nodes"))
        return list(self.sim.objects(resource, self.namespace))

    def stop(self) -> None:
        self.sim.stop()


class RealBackend(Backend):
    name = "real"

    def __init__(self, tmp_path: Path, *, control_plane: Endpoint, namespace: str) -> None:
        super().__init__(tmp_path)
        from simcluster.apiclient import Api
        from simcluster.nodes.kubelet import Kubelets
        from simcluster.nodes.world import NodeWorld

        self.control_plane = control_plane
        self.namespace = namespace
        self.world = NodeWorld(time_scale=TIME_SCALE)
        self.registry = self.world.registry
        self.faults = Faults(seed=1)
        self.kubelets = Kubelets(
            Api.from_kubeconfig(control_plane.kubeconfig),
            world=self.world,
            serving=control_plane.kubelet_tls(directory=tmp_path / "kubelet"),
        )
        self.kubelets.start()
        self.proxy = FaultProxy(
            upstream=control_plane.server,
            upstream_ca=control_plane.ca_cert,
            serving=control_plane.serving_certificate(directory=tmp_path / "proxy"),
            rules=self.faults,
            upstream_identity=KeyPair(control_plane.admin_cert, control_plane.admin_key),
        ).start()
        self.kubeconfig = control_plane.write_kubeconfig(
            tmp_path / "kubeconfig", namespace=namespace, server=self.proxy.url
        )

    def node(self, local: str) -> str:
        return f"{self.run_id}-{local}"

    def add_node(self, local: str, **options: Any) -> str:
        name = self.node(local)
        self.kubelets.add_node(name, labels=self._labels(options), **options)
        return name

    def fail_pull(self, image: str, **options: Any) -> None:
        if options.get("nodes") is not None:
            options["nodes"] = [self.node(n) for n in options["nodes"]]
        self.world.fail_pull(image, **options)

    def objects(self, resource: str) -> list[dict[str, Any]]:
        path = PATHS[resource].format(ns=self.namespace)
        if resource == "nodes":
            path += f"?labelSelector={RUN_LABEL}%3D{self.run_id}"
        items: list[dict[str, Any]] = self.control_plane.admin.get(path)["items"]
        return items

    def stop(self) -> None:
        """The test's pods gone first, while its kubelets still finish graceful deletion (a
        pod left Terminating would keep the namespace from going); then the nodes."""
        self.proxy.stop()
        admin, pods = self.control_plane.admin, PATHS["pods"].format(ns=self.namespace)
        admin.request("DELETE", PATHS["daemonsets"].format(ns=self.namespace))
        admin.request("DELETE", pods)
        deadline = time.monotonic() + 15
        while admin.get(pods)["items"] and time.monotonic() < deadline:
            time.sleep(0.1)
        self.kubelets.stop()
        self.kubelets.remove_nodes()


@pytest.fixture(
    params=[
        pytest.param("sim"),
        pytest.param("real", marks=pytest.mark.real_control_plane),
    ]
)
def cluster_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The test's cluster, once on the simulated API server and once on the real one."""
    made: SimBackend | RealBackend
    if request.param == "sim":
        made = SimBackend(tmp_path)
    else:
        made = RealBackend(
            tmp_path,
            control_plane=request.getfixturevalue("control_plane"),
            namespace=request.getfixturevalue("namespace"),
        )
    try:
        yield made
    finally:
        made.stop()

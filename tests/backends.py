"""One cluster, two backends, for the end-to-end scenarios: `sim` (the simulated API server)
and `real` (the real control plane, with the fault-injecting proxy between the awaiter and
kube-apiserver). On both the nodes are the same HTTP kubelet simulator,
`simcluster.nodes.kubelet.Kubelets` (SimCluster runs one of its own over loopback), so what the
nodes do (pulls, NotReady, leaving, graceful pod deletion, awaiter-image pods run as processes)
is the same code on both; only the API server and its controllers differ.

A test asks for `cluster_backend` and runs once on each: it adds nodes (`add_node`, names
local to the test), makes them report NotReady or leave (`set_node_ready`, `remove_node`),
teaches the registry its images (`registry`), injects pull failures (`fail_pull`), registry
outages (`registry_outage`, `end_outage`) and API faults (`faults`, the same `Fault` rules on
both), runs the real CLI to its end (`run`) or in the background (`start`), writes objects as
an administrator (`admin`, `create`, `delete_pod`) and reads what is stored (`objects`). On the
real control plane nodes are cluster-wide and shared by every test of the run: each test's
nodes carry its own label, and `run` passes the awaiter a node selector for it, so that no test
awaits another's nodes (the sim does the same, to be alike).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from simcluster.apiclient import Api
from simcluster.apiserver.faults import Faults
from simcluster.controlplane.certificates import KeyPair
from simcluster.controlplane.endpoints import Endpoint
from simcluster.controlplane.faultproxy import FaultProxy
from simcluster.nodes import failures
from simcluster.nodes.kubelet import Kubelets
from simcluster.nodes.registry import Registry
from tests.conftest import ROOT, TOKEN, CliResult, cli_command, cli_env

RUN_LABEL = "image-awaiter.test/run"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
TIME_SCALE = 0.05
PATHS = {  # a namespaced resource's collection on the real API server, `{ns}` filled in
    "pods": "/api/v1/namespaces/{ns}/pods",
    "events": "/api/v1/namespaces/{ns}/events",
    "daemonsets": "/apis/apps/v1/namespaces/{ns}/daemonsets",
    "jobs": "/apis/batch/v1/namespaces/{ns}/jobs",
    "nodes": "/api/v1/nodes",
    "clusterroles": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "clusterrolebindings": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
}


@dataclass
class Running:
    """An `image-awaiter` started in the background (`Backend.start`)."""

    process: subprocess.Popen[str]
    report: Path
    seen: list[str] = field(default_factory=list)  # its stderr lines read by wait_for_line

    def wait_for_line(self, wanted: Callable[[str], bool]) -> str:
        """The first line of its log (stderr) that is `wanted`; fails if it ends first."""
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.seen.append(line)
            if wanted(line):
                return line
        raise AssertionError(f"it exited ({self.process.wait()}) before logging the line")

    def finish(self, timeout: float) -> CliResult:
        """Its end: exit code, output and the report (killed if it outlives `timeout`)."""
        try:
            stdout, stderr = self.process.communicate(timeout=timeout)
        finally:
            self.process.kill()
        parsed = json.loads(self.report.read_text()) if self.report.exists() else None
        return CliResult(self.process.returncode, stdout, "".join(self.seen) + stderr, parsed)


class Backend:
    """What a scenario needs of a cluster; `SimBackend` and `RealBackend` provide it."""

    name: str
    namespace: str
    kubeconfig: Path
    registry: Registry
    faults: Faults
    kubelets: Kubelets
    admin: Api  # the test's own administrator client, straight to the API server
    run_id: str

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.run_id = os.urandom(3).hex()
        self.cluster_objects: list[str] = []  # paths of cluster-scoped objects to delete

    def node(self, local: str) -> str:
        """The cluster's name of the test's node `local`."""
        return local

    def add_node(self, local: str, **options: Any) -> str:
        raise NotImplementedError

    def set_node_ready(self, local: str, ready: bool) -> None:
        """Node `local`'s kubelet reports Ready or NotReady (and starts no pod while NotReady)."""
        raise NotImplementedError

    def remove_node(self, local: str) -> None:
        """Node `local` leaves: its kubelet stops and its Node object is deleted."""
        raise NotImplementedError

    def fail_pull(self, image: str, **options: Any) -> None:
        raise NotImplementedError

    def registry_outage(self, host: str, *, kind: str = "server-error") -> None:
        """Every pull from registry `host` fails with the transient `kind` until `end_outage`
        (as `SimCluster.registry_outage` does it, on the kubelets' registry of either backend)."""
        if kind not in failures.TRANSIENT:
            raise ValueError(f"an outage is transient; {kind!r} is not")
        self.registry.start_outage(host, kind=kind, until=None)

    def end_outage(self) -> None:
        self.registry.end_outage()

    def path(self, resource: str) -> str:
        return PATHS[resource].format(ns=self.namespace)

    def create(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create an object as the administrator (namespaced ones in the test's namespace)."""
        created: dict[str, Any] = self.admin.create(self.path(resource), body)
        return created

    def delete_pod(self, name: str) -> dict[str, Any]:
        """Delete a pod as kubectl does (gracefully); the API server's answer."""
        deleted: dict[str, Any] = self.admin.call("DELETE", f"{self.path('pods')}/{name}")
        return deleted

    def allow_everything(self, account: str) -> None:
        """ServiceAccount `account` of the test's namespace may do anything (a ClusterRole and
        its binding named for the run: RBAC itself is proven with the chart's own roles)."""
        name = f"image-awaiter-test-{self.run_id}"
        self.create("clusterroles", {
            "metadata": {"name": name},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        })  # fmt: skip
        self.create("clusterrolebindings", {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": account,
                          "namespace": self.namespace}],
        })  # fmt: skip
        self.cluster_objects += [f"{self.path(kind)}/{name}" for kind in (
            "clusterrolebindings", "clusterroles")]  # fmt: skip

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

    def _command(self, args: tuple[str, ...], report: Path, kubeconfig: Path | None) -> list[str]:
        config = kubeconfig or self.kubeconfig
        return cli_command([*args, *self.selector_args(args), "--kubeconfig", str(config),
                            "--report", str(report), "--log-format", "json"])  # fmt: skip

    def run(self, *args: str, timeout: float = 120, kubeconfig: Path | None = None) -> CliResult:
        """`image-awaiter ARGS` against this cluster, JSON logs and the report parsed."""
        report = self.tmp_path / f"report-{os.urandom(3).hex()}.json"
        done = subprocess.run(
            self._command(args, report, kubeconfig), capture_output=True, text=True,
            env=cli_env(), cwd=ROOT, timeout=timeout, check=False,
        )  # fmt: skip
        parsed = json.loads(report.read_text()) if report.exists() else None
        return CliResult(done.returncode, done.stdout, done.stderr, parsed)

    def start(self, *args: str) -> Running:
        """`image-awaiter ARGS` in the background, as `run` would run it."""
        report = self.tmp_path / f"report-{os.urandom(3).hex()}.json"
        process = subprocess.Popen(
            self._command(args, report, None), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=cli_env(), cwd=ROOT,
        )  # fmt: skip
        return Running(process, report)

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
        assert self.sim.kubelets is not None
        self.kubelets = self.sim.kubelets
        self.admin = Api.from_kubeconfig(self.kubeconfig)

    def add_node(self, local: str, **options: Any) -> str:
        self.sim.add_node(local, labels=self._labels(options), **options)
        return local

    def set_node_ready(self, local: str, ready: bool) -> None:
        self.sim.set_node_ready(local, ready)  # and the `not-ready` taint follows, as on real

    def remove_node(self, local: str) -> None:
        self.sim.remove_node(local)

    def fail_pull(self, image: str, **options: Any) -> None:
        self.sim.fail_pull(image, **options)

    def objects(self, resource: str) -> list[dict[str, Any]]:
        if resource == "nodes":
            return list(self.sim.objects("nodes"))
        return list(self.sim.objects(resource, self.namespace))

    def stop(self) -> None:
        self.admin.close()
        self.sim.stop()


class RealBackend(Backend):
    name = "real"

    def __init__(self, tmp_path: Path, *, control_plane: Endpoint, namespace: str) -> None:
        super().__init__(tmp_path)
        from simcluster.nodes.world import NodeWorld

        self.control_plane = control_plane
        self.admin = control_plane.admin
        self.namespace = namespace
        self.removed: set[str] = set()  # nodes that left: no kubelet finishes their pods
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

    def set_node_ready(self, local: str, ready: bool) -> None:
        self.kubelets.set_ready(self.node(local), ready)

    def remove_node(self, local: str) -> None:
        name = self.node(local)
        self.kubelets.forget(name)
        self.admin.request("DELETE", f"/api/v1/nodes/{name}")
        self.removed.add(name)

    def fail_pull(self, image: str, **options: Any) -> None:
        if options.get("nodes") is not None:
            options["nodes"] = [self.node(n) for n in options["nodes"]]
        self.world.fail_pull(image, **options)

    def objects(self, resource: str) -> list[dict[str, Any]]:
        path = self.path(resource)
        if resource == "nodes":
            path += f"?labelSelector={RUN_LABEL}%3D{self.run_id}"
        items: list[dict[str, Any]] = self.admin.get(path)["items"]
        return items

    def stop(self) -> None:
        """The test's pods gone first, while its kubelets still finish graceful deletion (a
        pod left Terminating would keep the namespace from going; those of nodes that left
        have no kubelet, so they go at once, as the pod garbage collector would take them);
        then the nodes and the cluster-scoped objects the test made."""
        self.proxy.stop()
        admin, pods = self.admin, self.path("pods")
        admin.request("DELETE", self.path("daemonsets"))
        admin.request("DELETE", self.path("jobs"), query={"propagationPolicy": "Background"})
        admin.request("DELETE", pods)
        for pod in admin.get(pods)["items"]:
            if pod["spec"].get("nodeName") in self.removed:
                body = {"gracePeriodSeconds": 0}
                admin.request("DELETE", f"{pods}/{pod['metadata']['name']}", body)
        deadline = time.monotonic() + 15
        while admin.get(pods)["items"] and time.monotonic() < deadline:
            time.sleep(0.1)
        self.kubelets.stop()
        self.kubelets.remove_nodes()
        for path in self.cluster_objects:
            admin.request("DELETE", path)


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

"""The real control plane harness: the real release answers, its controllers and scheduler
work, ServiceAccounts authenticate, and stopping it (or killing its starter) leaves no process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from simcluster.apiclient import Api
from simcluster.controlplane import ControlPlane, MissingBinaries, binaries
from simcluster.controlplane.certificates import Identity
from simcluster.controlplane.endpoints import Endpoint
from tests.realcp.nodes import ready_node

ROOT = Path(__file__).resolve().parents[2]


def _gone(pid: int) -> bool:
    """No such process, or only a zombie awaiting its reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _wait(condition: object, *, timeout: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s"
        time.sleep(0.1)


def test_kubectl_version_names_the_real_server(control_plane: Endpoint) -> None:
    kubectl = binaries.require()["kubectl"]
    shown = subprocess.run(
        [str(kubectl), "version", "-o", "json", "--kubeconfig", str(control_plane.kubeconfig)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    versions = json.loads(shown.stdout)
    release = binaries.kubernetes_version()
    assert versions["serverVersion"]["gitVersion"] == release
    assert versions["clientVersion"]["gitVersion"] == release
    assert control_plane.version == release


def test_a_new_namespace_gets_its_default_service_account_and_root_ca(
    control_plane: Endpoint, namespace: str
) -> None:
    admin = control_plane.admin
    admin.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
    root_ca = admin.wait_for(f"/api/v1/namespaces/{namespace}/configmaps/kube-root-ca.crt")
    assert root_ca["data"]["ca.crt"] == control_plane.ca_cert.read_text()


def test_a_deployment_gets_a_replicaset_and_pods_bound_to_a_ready_node(
    control_plane: Endpoint, namespace: str
) -> None:
    admin = control_plane.admin
    with ready_node(admin, f"{namespace}-node") as node:
        labels = {"app": "web"}
        admin.create(
            f"/apis/apps/v1/namespaces/{namespace}/deployments",
            {
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "nodeSelector": {"kubernetes.io/hostname": node},
                            "containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10"}],
                        },
                    },
                },
            },
        )
        replicasets = admin.wait_for(
            f"/apis/apps/v1/namespaces/{namespace}/replicasets",
            lambda listed: len(listed["items"]) == 1,
            what="the Deployment's ReplicaSet",
        )
        owner = replicasets["items"][0]["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("Deployment", "web")
        pods = admin.wait_for(
            f"/api/v1/namespaces/{namespace}/pods",
            lambda listed: (
                len(listed["items"]) == 2
                and all(pod["spec"].get("nodeName") == node for pod in listed["items"])
            ),
            timeout=60,
            what="two pods bound to the node by the scheduler",
        )
        assert all(pod["spec"]["serviceAccountName"] == "default" for pod in pods["items"])


def test_a_service_account_token_authenticates_and_rbac_decides(
    control_plane: Endpoint, namespace: str
) -> None:
    admin = control_plane.admin
    admin.create(f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "robot"}})
    issued = admin.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/robot/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    robot = control_plane.client(token=issued["status"]["token"])
    review = robot.create(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:robot"
    status, forbidden = robot.request("GET", f"/api/v1/namespaces/{namespace}/pods")
    assert (status, forbidden["reason"]) == (403, "Forbidden")
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    admin.create(
        f"{rbac}/roles",
        {
            "metadata": {"name": "read-pods"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        },
    )
    admin.create(
        f"{rbac}/rolebindings",
        {
            "metadata": {"name": "robot-reads-pods"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "read-pods",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": namespace}],
        },
    )
    robot.wait_for(
        f"/api/v1/namespaces/{namespace}/pods", what="pods listed once the Role is bound"
    )


def test_the_audit_log_has_one_line_per_request(control_plane: Endpoint, namespace: str) -> None:
    def created() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in control_plane.audit_log.read_text().splitlines()]
        return [
            e
            for e in lines
            if e["verb"] == "create"
            and e["objectRef"].get("resource") == "namespaces"
            and e["objectRef"].get("name") == namespace
        ]

    _wait(lambda: created(), timeout=10, what="the namespace's creation in the audit log")
    (entry,) = created()
    assert entry["stage"] == "ResponseComplete"
    assert entry["responseStatus"]["code"] == 201


def test_a_missing_binary_is_an_error_naming_make_control_plane(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(binaries.BIN_ENV, str(tmp_path))
    with pytest.raises(MissingBinaries, match="make control-plane"):
        ControlPlane()


def test_tests_using_the_control_plane_fail_without_binaries_never_skip(tmp_path: Path) -> None:
    (tmp_path / "test_uses_it.py").write_text("def test_uses_it(control_plane):\n    pass\n")
    env = {**os.environ, binaries.BIN_ENV: str(tmp_path / "nothing-built")}
    env.pop("IMAGE_AWAITER_CONTROL_PLANE_ENDPOINT", None)
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-p", "simcluster.controlplane.pytest_plugin", str(tmp_path / "test_uses_it.py")],
        capture_output=True, text=True, cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
        timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 1, ran.stdout
    assert "make control-plane" in ran.stdout
    assert "skipped" not in ran.stdout


def test_stopping_leaves_no_process_behind() -> None:
    control_plane = ControlPlane()
    control_plane.start()
    pids = list(control_plane.endpoint().pids.values())
    workdir = control_plane.workdir
    assert len(pids) == 4 and not any(_gone(pid) for pid in pids)
    control_plane.stop()
    assert all(_gone(pid) for pid in pids)
    assert not workdir.exists()


def test_killing_the_starter_kills_the_control_plane(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from simcluster.controlplane import ControlPlane\n"
        "cp = ControlPlane(workdir=Path(sys.argv[1]))\n"
        "cp.start()\n"
        "print(' '.join(str(p) for p in cp.endpoint().pids.values()), flush=True)\n"
        "sys.stdin.read()\n"
    )
    starter = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "control-plane")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert starter.stdout is not None
    pids = [int(pid) for pid in starter.stdout.readline().split()]
    assert len(pids) == 4
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    _wait(lambda: all(_gone(pid) for pid in pids), timeout=10, what="every process gone")


def test_a_node_identity_registers_its_node_and_lease_under_the_node_authorizer(
    control_plane: Endpoint, namespace: str, tmp_path: Path
) -> None:
    name = f"{namespace}-node"
    pair = control_plane.identity(
        Identity(f"system:node:{name}", ("system:nodes",)), directory=tmp_path
    )
    kubelet = Api.from_files(
        control_plane.server, ca=control_plane.ca_cert, cert=pair.cert, key=pair.key
    )
    try:
        kubelet.create("/api/v1/nodes", {"metadata": {"name": name}})
        kubelet.create(
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            {"metadata": {"name": name}, "spec": {"holderIdentity": name}},
        )
        status, denied = kubelet.request("GET", f"/api/v1/namespaces/{namespace}/secrets")
        assert (status, denied["reason"]) == (403, "Forbidden")
    finally:
        admin = control_plane.admin
        admin.request(
            "DELETE", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
        )
        admin.request("DELETE", f"/api/v1/nodes/{name}")


def test_a_port_taken_before_the_api_server_binds_it_is_retried_with_fresh_ports() -> None:
    control_plane = ControlPlane()
    taken = control_plane.ports.apiserver
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        try:
            control_plane.start()
            assert control_plane.ports.apiserver != taken
            assert (
                control_plane.admin.get("/version")["gitVersion"] == control_plane.binaries_version
            )
        finally:
            control_plane.stop()

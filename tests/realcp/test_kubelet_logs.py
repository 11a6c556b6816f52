"""`kubectl logs` of pods the simulated kubelets run, on the real control plane: the real
`kubectl` asks kube-apiserver, which asks the kubelets' HTTPS server (nodes/kubeletserver.py) at
the node's advertised address and port, verifying its certificate and showing its own."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simcluster.apiclient import Api
from simcluster.controlplane import binaries
from simcluster.controlplane.endpoints import Endpoint
from simcluster.nodes.kubelet import DEFAULT_AWAITER_IMAGE, Kubelets
from simcluster.nodes.world import NodeWorld
from tests.realcp.awaiter import wait_until

AWAITER = f"{DEFAULT_AWAITER_IMAGE}:dev"
SLOW = "quay.io/kubelet-logs/slow:1"  # the awaiter's pull: seconds, so it is followed live
STUCK = "quay.io/kubelet-logs/stuck:1"  # never done pulling while the test runs
PAUSE = "registry.k8s.io/pause:3.10"
RUN_LABEL = "image-awaiter.test/logs-run"


@pytest.fixture
def kubelets(control_plane: Endpoint, namespace: str, tmp_path: Path) -> Iterator[Kubelets]:
    """One node of HTTP kubelets serving logs, and the namespace's `default` ServiceAccount
    bound to cluster-admin (the awaiter in the pod creates a DaemonSet and reads nodes)."""
    run = f"logs-{uuid.uuid4().hex[:6]}"
    world = NodeWorld()
    world.registry.add(AWAITER, pull_seconds=0.1)
    world.registry.add(PAUSE, pull_seconds=0.1)
    world.registry.add(SLOW, pull_seconds=3)
    world.registry.add(STUCK, pull_seconds=600)
    kubelets = Kubelets(
        Api.from_kubeconfig(control_plane.kubeconfig),
        world=world,
        serving=control_plane.kubelet_tls(directory=tmp_path / "kubelet"),
    )
    binding = f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{run}"
    control_plane.admin.create(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "metadata": {"name": run},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
        },
    )  # fmt: skip
    kubelets.start()
    try:
        kubelets.add_node(run, labels={RUN_LABEL: run})
        yield kubelets
    finally:
        control_plane.admin.request("DELETE", binding)
        kubelets.stop()
        kubelets.remove_nodes()


@pytest.fixture
def node(kubelets: Kubelets) -> str:
    return next(iter(kubelets.nodes))


def _pod(admin: Api, namespace: str, node: str, name: str, image: str, *args: str) -> None:
    container: dict[str, Any] = {"name": "main", "image": image}
    if args:
        container["args"] = list(args)
    admin.create(
        f"/api/v1/namespaces/{namespace}/pods",
        {
            "metadata": {"name": name},
            "spec": {"nodeName": node, "restartPolicy": "Never", "containers": [container]},
        },
    )


def _phase(admin: Api, namespace: str, name: str) -> str:
    return str(admin.get(f"/api/v1/namespaces/{namespace}/pods/{name}")["status"].get("phase"))


def _kubectl(control_plane: Endpoint, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binaries.require()["kubectl"]), "--kubeconfig", str(control_plane.kubeconfig), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_kubectl_logs_shows_the_awaiters_output_its_tail_and_follows_it_to_its_end(
    control_plane: Endpoint, namespace: str, node: str
) -> None:
    admin = control_plane.admin
    _pod(
        admin, namespace, node, "hook", AWAITER,
        "await", "--image", SLOW, "-n", namespace, "--node-selector", f"{RUN_LABEL}={node}",
        "--interval", "200ms", "--timeout", "60s", "--log-format", "json",
    )  # fmt: skip
    wait_until(lambda: _phase(admin, namespace, "hook") == "Running", timeout=30, what="Running")
    follow = subprocess.Popen(
        [str(binaries.require()["kubectl"]), "--kubeconfig", str(control_plane.kubeconfig),
         "logs", "-f", "hook", "-n", namespace],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    followed, refused = follow.communicate(timeout=60)
    assert follow.returncode == 0, refused
    ended = _phase(admin, namespace, "hook")
    assert ended == "Succeeded", ended  # `-f` ended because the process did

    started = time.monotonic()
    whole = _kubectl(control_plane, "logs", "hook", "-n", namespace)
    seconds = time.monotonic() - started
    assert whole.returncode == 0, whole.stderr
    lines = whole.stdout.splitlines()
    assert len(lines) > 2 and '"event"' in lines[0], whole.stdout
    assert followed == whole.stdout  # followed from its start to its last line
    tail = _kubectl(control_plane, "logs", "--tail=1", "hook", "-n", namespace)
    assert tail.stdout.splitlines() == lines[-1:]
    print(f"kubectl logs (a whole process, real control plane): {seconds * 1000:.0f} ms")


def test_kubectl_logs_of_other_pods_is_empty_waiting_or_refused_as_a_kubelet_answers(
    control_plane: Endpoint, namespace: str, node: str
) -> None:
    admin = control_plane.admin
    _pod(admin, namespace, node, "paused", PAUSE)
    _pod(admin, namespace, node, "pulling", STUCK)
    wait_until(lambda: _phase(admin, namespace, "paused") == "Running", timeout=30, what="Running")
    wait_until(
        lambda: admin.get(f"/api/v1/namespaces/{namespace}/pods/pulling")["status"].get(
            "containerStatuses"
        ),
        timeout=30,
        what="the pulling pod's status",
    )
    empty = _kubectl(control_plane, "logs", "paused", "-n", namespace)
    assert (empty.returncode, empty.stdout) == (0, ""), empty.stderr
    waiting = _kubectl(control_plane, "logs", "pulling", "-n", namespace)
    assert waiting.returncode == 1
    assert waiting.stderr.strip() == (
        'Error from server (BadRequest): container "main" in pod "pulling" is waiting to start: '
        "ContainerCreating"
    )
    unknown = _kubectl(control_plane, "logs", "paused", "-c", "nope", "-n", namespace)
    assert unknown.returncode == 1
    assert "container nope is not valid for pod paused" in unknown.stderr, unknown.stderr


def test_the_kubelet_server_refuses_a_client_without_a_certificate_from_the_cluster_ca(
    control_plane: Endpoint, kubelets: Kubelets
) -> None:
    """As a kubelet with --client-ca-file: TLS with no client certificate ends in the handshake
    (the API server's own is checked by every `kubectl logs` above)."""
    assert kubelets.server is not None
    context = ssl.create_default_context(cafile=str(control_plane.ca_cert))
    raw = socket.create_connection(("127.0.0.1", kubelets.server.port), timeout=10)
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        try:  # TLS 1.3: the server refuses after the client's side of the handshake is done
            tls.sendall(b"GET /containerLogs/a/b/c HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answer = tls.recv(1024)
        except (ssl.SSLError, ConnectionError):  # the alert, or the connection closed at once
            answer = b""
    assert answer == b"", answer

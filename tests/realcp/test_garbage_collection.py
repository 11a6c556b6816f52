"""On the real control plane: an awaiter killed with SIGKILL (no cleanup runs) leaves its
puller DaemonSet to the real garbage collector, through the ownerReference to its own pod:
the DaemonSet stays while the pod does, and goes when the pod goes (as when Helm deletes the
hook Job, or the Job's TTL does)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from simcluster.controlplane.endpoints import Endpoint
from tests.realcp.awaiter import our_daemonsets, our_pods, stand_in_pod, start_awaiter, wait_until
from tests.realcp.nodes import ready_node

IMAGE = "quay.io/example/model:1"


@pytest.fixture
def node(control_plane: Endpoint, namespace: str) -> Iterator[str]:
    with ready_node(control_plane.admin, f"{namespace}-node") as name:
        yield name


def test_a_sigkilled_awaiters_daemonset_is_left_to_the_real_garbage_collector(
    control_plane: Endpoint, namespace: str, node: str, tmp_path: Path
) -> None:
    admin = control_plane.admin
    kubeconfig = control_plane.write_kubeconfig(tmp_path / "kubeconfig", namespace=namespace)
    hook = stand_in_pod(admin, namespace)
    awaiter = start_awaiter(
        kubeconfig, tmp_path, "await", "--image", IMAGE, "--timeout", "5m",
        "--node-selector", f"kubernetes.io/hostname={node}", env=hook,
    )  # fmt: skip
    try:
        [daemonset] = wait_until(
            lambda: our_daemonsets(admin, namespace), timeout=60, what="the puller DaemonSet"
        )
        wait_until(lambda: our_pods(admin, namespace), timeout=60, what="its puller pod")
    finally:
        awaiter.send_signal(signal.SIGKILL)
        awaiter.communicate(timeout=30)
    [owner] = daemonset["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Pod",
        hook["POD_NAME"],
        hook["POD_UID"],
    )
    assert awaiter.returncode == -signal.SIGKILL
    assert our_daemonsets(admin, namespace), "nothing but the garbage collector may delete it"

    admin.delete(f"/api/v1/namespaces/{namespace}/pods/{hook['POD_NAME']}")

    wait_until(
        lambda: not our_daemonsets(admin, namespace),
        timeout=60,
        what="the DaemonSet deleted by the garbage collector once its owner pod is gone",
    )
    # Its pods follow (bound to a node with no kubelet here, they stay Terminating).
    wait_until(
        lambda: all("deletionTimestamp" in p["metadata"] for p in our_pods(admin, namespace)),
        timeout=60,
        what="the puller pods being deleted in turn",
    )

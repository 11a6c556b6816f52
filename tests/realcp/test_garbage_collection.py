"""On the real control plane: an awaiter killed with SIGKILL (no cleanup runs) leaves its
puller DaemonSet to the real garbage collector, through the ownerReference to its own pod:
the DaemonSet stays while the pod does, and goes when the pod goes (as when Helm deletes the
hook Job, or the Job's TTL does)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from simcluster.controlplane.endpoints import Endpoint
from tests.realcp.awaiter import our_daemonsets, our_pods, stand_in_pod, start_awaiter, wait_until
from tests.realcp.nodes import ready_node
from tests.realcp.releases import BASE, RELEASE, release_world

IMAGE = "quay.io/example/model:1"
SLOW = "quay.io/jupyter/datascience-notebook:2025-06-02"


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


def _process_of(pod_name: str) -> int | None:
    """The pid of the process running as the pod `pod_name` (its POD_NAME, from the downward
    API), as a node's runtime would find its container's process."""
    wanted = f"POD_NAME={pod_name}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ:
            return int(entry.name)
    return None


def test_a_sigkilled_hook_pods_daemonset_goes_with_the_hook_job_through_helm(
    control_plane: Endpoint, tmp_path: Path
) -> None:
    """The whole story with the real helm 4: the hook's awaiter is killed (SIGKILL, as the
    kubelet does past the grace period) while its puller pulls; the upgrade fails and the
    DaemonSet stays, owned by the failed hook pod; the next upgrade's before-hook-creation
    deletes the old Job, its pod goes, and the garbage collector takes the DaemonSet."""
    with release_world(control_plane, helm="helm4", home=tmp_path) as story:
        story.world.registry.add(SLOW, pull_seconds=3000)  # 150 s at the time scale
        assert story.helm("install", RELEASE, str(story.chart), *story.values(BASE)).returncode == 0
        upgrade = subprocess.Popen(
            [str(story.helm_binary), "upgrade", RELEASE, str(story.chart),
             *story.values(BASE, SLOW), "--namespace", story.namespace],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=story.env(),
        )  # fmt: skip
        [daemonset] = wait_until(
            lambda: story.get("/apis/apps/v1/namespaces/{ns}/daemonsets"),
            timeout=60,
            what="the hook's puller DaemonSet",
        )
        [owner] = daemonset["metadata"]["ownerReferences"]
        pid = wait_until(lambda: _process_of(owner["name"]), timeout=10, what="the hook process")
        os.kill(pid, signal.SIGKILL)
        upgrade.communicate(timeout=120)
        assert upgrade.returncode != 0, "the hook was killed: the upgrade must fail"
        assert story.status() == "failed"
        assert story.get("/apis/apps/v1/namespaces/{ns}/daemonsets"), "only the GC may take it"

        done = story.helm("upgrade", RELEASE, str(story.chart), *story.values(BASE))

        assert done.returncode == 0, done.stderr
        uid = daemonset["metadata"]["uid"]
        wait_until(
            lambda: all(
                d["metadata"]["uid"] != uid
                for d in story.get("/apis/apps/v1/namespaces/{ns}/daemonsets")
            ),
            timeout=60,
            what="the killed run's DaemonSet collected once its hook pod was deleted",
        )

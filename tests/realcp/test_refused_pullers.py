"""On the real control plane: the generated puller is admitted where Kubernetes is strict (the
`restricted` Pod Security Standard enforced on its namespace, a ResourceQuota that demands
requests and limits), and a puller the real DaemonSet controller cannot create (a missing
ServiceAccount, a template that violates either) ends the run in seconds with the controller's
`FailedCreate` message and exit 3, not at the timeout.

The node is a Node object kept Ready (tests/realcp/nodes.py): these proofs need the scheduler
and the DaemonSet controller, not a kubelet."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simcluster.apiclient import MERGE_PATCH
from simcluster.controlplane.endpoints import Endpoint
from tests.realcp.awaiter import (
    failed_creates,
    our_daemonsets,
    our_pods,
    run_awaiter,
    start_awaiter,
    wait_until,
)
from tests.realcp.nodes import ready_node

Z2JH_PULLER = Path(__file__).parents[1] / "fixtures/manifests/z2jh/hook-image-puller.yaml"
IMAGE = "quay.io/example/model:1"
FAST = 30.0  # seconds: "in seconds", far below the run's 5-minute timeout


@pytest.fixture
def node(control_plane: Endpoint, namespace: str) -> Iterator[str]:
    with ready_node(control_plane.admin, f"{namespace}-node") as name:
        yield name


@pytest.fixture
def kubeconfig(control_plane: Endpoint, namespace: str, tmp_path: Path) -> Path:
    return control_plane.write_kubeconfig(tmp_path / "kubeconfig", namespace=namespace)


def _plain_puller(tmp_path: Path) -> Path:
    """A puller as many charts write it: no security context, no resources."""
    labels = {"app": "plain-puller"}
    spec = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "plain-puller"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "initContainers": [{"name": "pull", "image": IMAGE, "command": ["true"]}],
                    "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}],
                },
            },
        },
    }
    path = tmp_path / "plain-puller.json"
    path.write_text(json.dumps(spec))
    return path


def _label(control_plane: Endpoint, namespace: str, labels: dict[str, str]) -> None:
    control_plane.admin.call(
        "PATCH",
        f"/api/v1/namespaces/{namespace}",
        {"metadata": {"labels": labels}},
        content_type=MERGE_PATCH,
    )


def _quota(control_plane: Endpoint, namespace: str) -> None:
    """A quota over requests and limits: every pod must state both (z2jh #1761)."""
    hard = {
        "requests.cpu": "2",
        "requests.memory": "2Gi",
        "limits.cpu": "4",
        "limits.memory": "4Gi",
    }
    control_plane.admin.create(
        f"/api/v1/namespaces/{namespace}/resourcequotas",
        {"metadata": {"name": "compute"}, "spec": {"hard": hard}},
    )
    wait_until(
        lambda: (
            control_plane.admin.get(f"/api/v1/namespaces/{namespace}/resourcequotas/compute")
            .get("status", {})
            .get("hard")
        ),
        timeout=30,
        what="the quota controller's first status of the quota",
    )


def _assert_refused(ran: Any, *words: str) -> None:
    assert ran.code == 3, ran.stderr
    assert ran.seconds < FAST, f"took {ran.seconds:.1f}s: it waited instead of failing fast"
    assert ran.last_line.startswith("image-awaiter: the DaemonSet controller cannot create")
    for word in words:
        assert word in ran.last_line, ran.last_line
    assert ran.report is not None and ran.report["result"] == "pods-refused"


def test_a_puller_naming_a_missing_service_account_fails_in_seconds_with_the_controllers_words(
    control_plane: Endpoint, namespace: str, node: str, kubeconfig: Path, tmp_path: Path
) -> None:
    ran = run_awaiter(
        kubeconfig, tmp_path, "await", "--daemonset-spec", str(Z2JH_PULLER), "--timeout", "5m"
    )
    controller_said = (
        f"is forbidden: error looking up service account {namespace}/hook-image-puller: "
        'serviceaccount "hook-image-puller" not found'
    )
    _assert_refused(ran, controller_said, "create the ServiceAccount hook-image-puller")
    assert any(controller_said in m for m in failed_creates(control_plane.admin, namespace))
    assert not our_daemonsets(control_plane.admin, namespace), "deleted on the way out"


def _admitted(
    control_plane: Endpoint, namespace: str, node: str, kubeconfig: Path, tmp: Path
) -> dict[str, Any]:
    """The generated puller's pod is created and bound to the node; no FailedCreate; the run
    is then stopped (no kubelet pulls here) and cleans up. The admitted pod, as stored."""
    admin = control_plane.admin
    awaiter = start_awaiter(kubeconfig, tmp, "await", "--image", IMAGE, "--timeout", "2m")
    try:
        pods = wait_until(
            lambda: [p for p in our_pods(admin, namespace) if p["spec"].get("nodeName") == node],
            timeout=60,
            what="the generated puller's pod, bound to the node",
        )
        assert failed_creates(admin, namespace) == []
        assert pods[0]["spec"]["containers"][0]["resources"]["limits"]
    finally:
        awaiter.send_signal(signal.SIGTERM)
        _, stderr = awaiter.communicate(timeout=60)
    assert awaiter.returncode == 143, stderr
    assert not our_daemonsets(admin, namespace)
    return pods[0]


def test_the_generated_puller_is_admitted_under_the_restricted_pod_security_standard(
    control_plane: Endpoint, namespace: str, node: str, kubeconfig: Path, tmp_path: Path
) -> None:
    _label(control_plane, namespace, {"pod-security.kubernetes.io/enforce": "restricted"})
    pod = _admitted(control_plane, namespace, node, kubeconfig, tmp_path)
    containers = pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
    assert all(c["securityContext"]["allowPrivilegeEscalation"] is False for c in containers)


def test_a_puller_violating_the_enforced_restricted_standard_fails_in_seconds(
    control_plane: Endpoint, namespace: str, node: str, kubeconfig: Path, tmp_path: Path
) -> None:
    _label(control_plane, namespace, {"pod-security.kubernetes.io/enforce": "restricted"})
    ran = run_awaiter(
        kubeconfig, tmp_path, "await", "--daemonset-spec", str(_plain_puller(tmp_path))
    )
    _assert_refused(ran, 'violates PodSecurity "restricted:latest"', "Pod Security Standard")


def test_the_generated_puller_is_admitted_under_a_quota_that_demands_limits(
    control_plane: Endpoint, namespace: str, node: str, kubeconfig: Path, tmp_path: Path
) -> None:
    _quota(control_plane, namespace)
    pod = _admitted(control_plane, namespace, node, kubeconfig, tmp_path)
    containers = pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
    assert all(c["resources"]["limits"] and c["resources"]["requests"] for c in containers)


def test_a_puller_without_limits_under_such_a_quota_fails_in_seconds(
    control_plane: Endpoint, namespace: str, node: str, kubeconfig: Path, tmp_path: Path
) -> None:
    _quota(control_plane, namespace)
    ran = run_awaiter(
        kubeconfig, tmp_path, "await", "--daemonset-spec", str(_plain_puller(tmp_path))
    )
    _assert_refused(ran, "failed quota: compute: must specify", "ResourceQuota compute demands")

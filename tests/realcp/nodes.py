"""Minimal nodes for the harness's own tests: a Node object, Ready, with capacity, and its
Lease in kube-node-lease renewed while the test runs, so the scheduler binds pods to it and the
node lifecycle controller keeps it Ready. It runs nothing: the kubelet simulator (pods, images,
events) is `simcluster.nodes`."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from simcluster.apiclient import MERGE_PATCH, Api, Json

RENEW_EVERY = 10.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _register(admin: Api, name: str, taints: Sequence[Json] = ()) -> None:
    admin.create(
        "/api/v1/nodes",
        {
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            },
            "spec": {"taints": list(taints)},
        },
    )
    capacity = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    now = _now()
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }
    admin.call(
        "PATCH",
        f"/api/v1/nodes/{name}/status",
        {"status": {"capacity": capacity, "allocatable": capacity, "conditions": [ready]}},
        content_type=MERGE_PATCH,
    )
    admin.create(
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
        {
            "metadata": {"name": name},
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": 40,
                "renewTime": _micro_now(),
            },
        },
    )


def _renew(admin: Api, name: str, stop: threading.Event) -> None:
    while not stop.wait(RENEW_EVERY):
        admin.request(
            "PATCH",
            f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}",
            {"spec": {"renewTime": _micro_now()}},
            content_type=MERGE_PATCH,
        )


@contextmanager
def ready_node(admin: Api, name: str, *, taints: Sequence[Json] = ()) -> Iterator[str]:
    """A Ready node named `name` (registered with `taints`, as kubelet --register-with-taints
    does) while the block runs; deleted after."""
    _register(admin, name, taints)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(admin, name, stop), daemon=True)
    renewer.start()
    try:
        yield name
    finally:
        stop.set()
        renewer.join(timeout=5)
        admin.request(
            "DELETE", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
        )
        admin.request("DELETE", f"/api/v1/nodes/{name}")

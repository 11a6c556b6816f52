"""`NodeLeases`: the HTTP kubelets' nodes in the API. Each node registers (its Node, then its
status through the `status` subresource, then its Lease in `kube-node-lease`, owned by the
Node), reports Ready or NotReady, has its Lease renewed every 10 s (40 s long, as the
kubelet's) and its conditions reported again every 5 minutes, and goes (`forget`: its Lease;
`remove_all`: its Lease and its Node)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3

from simcluster.apiclient import MERGE_PATCH, Api, ApiError, Json
from simcluster.nodes import failures
from simcluster.nodes.factory import ready_condition
from simcluster.nodes.pulling import NodeSim, now_iso

LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40  # the kubelet's nodeLeaseDurationSeconds
RENEW_SECONDS = 10.0  # renewInterval: a quarter of the lease
STATUS_REPORT_SECONDS = 300.0  # nodeStatusReportFrequency, when nothing changed
LEASE_THREADS = 8
REGISTERING_THREADS = 8  # nodes registered at once: a burst, as when a node pool scales up
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class SimNode:
    sim: NodeSim
    labels: dict[str, str]
    node_info: dict[str, str]
    address: str
    conditions: list[Json]
    pod_cidr: str
    uid: str = ""

    @property
    def platform(self) -> failures.Platform:
        return failures.platform_of(self.labels, self.node_info)


class NodeLeases:
    """The nodes the kubelets serve, registered and kept alive. `changed` is the kubelets' one
    condition (their state changes under it, and waiters are told); `errors` their list of
    API failures met off the caller's thread; `stop` ends `renew_loop`."""

    def __init__(
        self,
        api: Api,
        *,
        changed: threading.Condition,
        errors: list[str],
        stop: threading.Event,
    ) -> None:
        self.api = api
        self.changed = changed
        self.errors = errors
        self._stop = stop
        self.nodes: dict[str, SimNode] = {}
        # names whose pods are ours: a node is counted before its Node object exists, else a
        # pod the scheduler binds to it between its creation and `nodes[name]` is dropped
        self.claimed: set[str] = set()
        self.down: set[str] = set()  # nodes reporting NotReady: no pod starts or changes there

    def register(self, node: SimNode, body: Json, status: Json, *, ready: bool) -> None:
        """Create the Node `body` (or take the one of that name), write its `status`, hold its
        Lease; the node's pods are ours from before its creation."""
        name = node.sim.name
        with self.changed:
            self.claimed.add(name)
            if not ready:
                self.down.add(name)
        try:
            created = self._create_or_get("/api/v1/nodes", body, name=name)
        except BaseException:
            with self.changed:
                self.claimed.discard(name)
            raise
        node.uid = created["metadata"]["uid"]
        self.api.call("PATCH", f"/api/v1/nodes/{name}/status", {"status": status},
                      content_type=MERGE_PATCH)  # fmt: skip
        self._create_lease(node)
        with self.changed:
            self.nodes[name] = node
            self.changed.notify_all()

    def set_ready(self, name: str, ready: bool) -> None:
        node = self.nodes[name]
        node.conditions = [
            *(c for c in node.conditions if c["type"] != "Ready"),
            {**ready_condition(ready), "lastHeartbeatTime": now_iso(),
             "lastTransitionTime": now_iso()},
        ]  # fmt: skip
        with self.changed:
            (self.down.discard if ready else self.down.add)(name)
            self.changed.notify_all()
        self.patch_node_status(name, {"conditions": node.conditions})

    def drop(self, name: str) -> None:
        """No longer serve node `name` (the caller holds `changed`); `delete_lease` follows."""
        self.nodes.pop(name, None)
        self.claimed.discard(name)
        self.down.discard(name)

    def delete_lease(self, name: str) -> None:
        self.api.request("DELETE", f"{LEASES}/{name}")

    def remove_all(self) -> None:
        """Every node's Lease and Node deleted; none served any more."""
        for name in list(self.nodes):
            self.delete_lease(name)
            self.api.request("DELETE", f"/api/v1/nodes/{name}")
        with self.changed:
            self.nodes.clear()
            self.claimed.clear()

    def patch_node_status(self, name: str, status: Json) -> None:
        self.api.call(
            "PATCH", f"/api/v1/nodes/{name}/status", {"status": status}, content_type=MERGE_PATCH
        )

    def renew_loop(self) -> None:
        """Every node's Lease renewed every 10 s, start to start, by a few threads at once (one
        after another, 500 renewals took longer than a lease lasts on a busy machine, and the
        node lifecycle controller marked the nodes NotReady)."""
        reported = next_round = time.monotonic()
        with ThreadPoolExecutor(LEASE_THREADS, thread_name_prefix="kubelets-lease") as pool:
            while not self._stop.wait(max(0.0, next_round + RENEW_SECONDS - time.monotonic())):
                next_round = time.monotonic()
                list(pool.map(lambda name: self._guarded(self._renew, name), list(self.nodes)))
                if time.monotonic() - reported >= STATUS_REPORT_SECONDS:
                    reported = time.monotonic()
                    for node in list(self.nodes.values()):
                        self._guarded(self._report_conditions, node)

    def _create_or_get(self, path: str, body: Json, *, name: str) -> Json:
        status, answer = self.api.request("POST", path, body)
        if status == 409:
            return self.api.call("GET", f"{path}/{name}")
        if status >= 400:
            raise ApiError(status=status, method="POST", path=path, body=answer)
        return answer

    def _create_lease(self, node: SimNode) -> None:
        name = node.sim.name
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node.uid}
                ],
            },
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": _micro_now(),
            },
        }
        status, answer = self.api.request("POST", LEASES, lease)
        if status == 409:
            self._renew(name)
        elif status >= 400:
            raise ApiError(status=status, method="POST", path=LEASES, body=answer)

    def _renew(self, name: str) -> None:
        status, answer = self.api.request(
            "PATCH",
            f"{LEASES}/{name}",
            {"spec": {"holderIdentity": name, "renewTime": _micro_now()}},
            content_type=MERGE_PATCH,
        )
        if status >= 400:
            self.errors.append(f"lease {name}: {status} {answer.get('message')}")

    def _report_conditions(self, node: SimNode) -> None:
        now = now_iso()
        for condition in node.conditions:
            condition["lastHeartbeatTime"] = now
        self.patch_node_status(node.sim.name, {"conditions": node.conditions})

    def _guarded(self, action: Any, *args: Any) -> None:
        try:
            action(*args)
        except (urllib3.exceptions.HTTPError, OSError, ApiError) as error:
            self.errors.append(f"{getattr(action, '__name__', action)}: {error}")

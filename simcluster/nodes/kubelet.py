"""`Kubelets`: simulated nodes that are clients of an API server, as real kubelets are. They
speak only HTTP, with a kubeconfig's credentials, to whichever API server runs (the real
kube-apiserver or the simulated one):

- register each Node (labels, capacity, nodeInfo, addresses) and write its status through the
  `status` subresource (conditions, then node.status.images with the 50-image cap);
- hold each node's Lease in `kube-node-lease` (40 s, renewed every 10 s, as the kubelet), so
  the node lifecycle controller keeps the nodes Ready;
- watch the pods bound to any of their nodes with ONE watch (`spec.nodeName!=`, filtered here),
  sync each through `pulling.PodWorker` (volumes, init containers one at a time, containers;
  the real runtime texts, back-off) and write the status through `pods/<name>/status`;
- record kubelet Events (`recording.Recorder`: count and lastTimestamp aggregation);
- finish graceful deletion: a pod with a deletionTimestamp has its containers stopped, then is
  deleted with gracePeriodSeconds=0 and a uid precondition;
- run pods of the awaiter image (the Helm hook Job's) as real processes (runtime.py), with their
  projected ServiceAccount token from the TokenRequest API, bound to the pod, and `ca.crt` as the
  `kube-root-ca.crt` ConfigMap gives it (ServiceAccount admission adds that `kube-api-access-*`
  volume on a real API server).

They use whatever credentials the kubeconfig holds (the admin's, in the tests and `serve`): a
real kubelet has a `system:node:<name>` identity for each node, which one process serving
hundreds of nodes cannot hold at once. Pod logs are kept in memory (`ApiHost.logs`); given
`serving` TLS, the kubelets serve them to a real API server for `kubectl logs`
(kubeletserver.py), and each node advertises that server's port and an `InternalDNS` address
`localhost` (the harness prefers that address type; `exec` is not served).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3

from simcluster.apiclient import MERGE_PATCH, Api, ApiError, Json, Stream
from simcluster.nodes import failures
from simcluster.nodes.apihost import ApiHost
from simcluster.nodes.factory import (
    KUBELET_PORT,
    KUBERNETES_RELEASE,
    node_object,
    pod_ip,
    pool_labels,
    ready_condition,
)
from simcluster.nodes.kubeletserver import KubeletServer, ServingTls
from simcluster.nodes.pulling import NodeSim, PodWorker, now_iso
from simcluster.nodes.runtime import DEFAULT_AWAITER_IMAGE, Runtime
from simcluster.nodes.world import NodeWorld
from simcluster.nodes.writing import ApiEventRecorder, Writers

LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40  # the kubelet's nodeLeaseDurationSeconds
RENEW_SECONDS = 10.0  # renewInterval: a quarter of the lease
STATUS_REPORT_SECONDS = 300.0  # nodeStatusReportFrequency, when nothing changed
WRITER_THREADS = 8
LEASE_THREADS = 8
REGISTERING_THREADS = 8  # nodes registered at once: a burst, as when a node pool scales up
POD_WATCH_SECONDS = 300  # a watch is bounded; then it resumes from its resourceVersion
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
# a kubelet's User-Agent (the field manager "kubelet"); the simulated API server's faults leave
# requests with it alone unless a rule asks for them (apiserver/faults.py)
USER_AGENT = f"kubelet/{KUBERNETES_RELEASE} (linux/amd64) kubernetes/simcluster"


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


class Kubelets:
    """Any number of simulated nodes in one process: `add_node`/`add_pool` register them (at
    once, also before `start`), `start` runs the lease, pod-watch and sync threads, `stop`
    ends them (nodes stay registered unless `remove_nodes`)."""

    def __init__(
        self,
        api: Api,
        *,
        world: NodeWorld | None = None,
        kubelet_events: bool = True,
        tick: float = 0.05,
        awaiter_image: str = DEFAULT_AWAITER_IMAGE,
        serving: ServingTls | None = None,
    ) -> None:
        """`awaiter_image`: pods whose one container is this repository (any tag) run the real
        image-awaiter CLI as a process. `serving`: serve pod logs over HTTPS with this
        certificate (kubeletserver.py), for a real API server's `kubectl logs`."""
        self.api = api.as_agent(USER_AGENT)
        self.world = world or NodeWorld()
        self.tick = tick
        self.errors: list[str] = []  # API failures the threads met (for tests to show)
        self.writers = Writers(threads=WRITER_THREADS, errors=self.errors)
        self.recorder = ApiEventRecorder(
            self.api, writers=self.writers, time_scale=self.world.time_scale
        )
        self.worker = PodWorker(
            world=self.world,
            platform=self._platform,
            events=self._event if kubelet_events else None,
        )
        self.nodes: dict[str, SimNode] = {}
        # names whose pods are ours: a node is counted before its Node object exists, else a
        # pod the scheduler binds to it between its creation and `nodes[name]` is dropped
        self.claimed: set[str] = set()
        self.pods: dict[str, Json] = {}  # uid -> the pod as last seen, on one of our nodes
        self.reported: dict[str, Json] = {}  # uid -> the status we last wrote
        self.unwritten: dict[str, Json] = {}  # uid -> the status patch its writer is to send
        self.written: dict[str, str] = {}  # uid -> the resourceVersion our last write made
        self._unwritten_lock = threading.Lock()
        self.finished: set[str] = set()  # running: nothing more to sync until deleted
        self.deleting: set[str] = set()
        self.down: set[str] = set()  # nodes reporting NotReady: no pod starts or changes there
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stream: Stream | None = None
        self.host = ApiHost(self, awaiter_image=awaiter_image)
        self.runtime = Runtime(self.host)
        self.server = None if serving is None else KubeletServer(logs=self.host, tls=serving)

    # ------------------------------------------------------------------ nodes

    def add_node(
        self,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        taints: Iterable[dict[str, Any]] = (),
        unschedulable: bool = False,
        runtime: str = "containerd",
        arch: str = "amd64",
        os: str = "linux",
        max_pods: int = 110,
        max_images: int = 50,
        status_lag: float = 0.0,
        serialize_pulls: bool = True,
        images: Iterable[str] = (),
        ready: bool = True,
    ) -> None:
        """Register a node with its Lease; `images` are already on it. A node not `ready`
        reports NotReady ("container runtime network not ready") until `set_ready`."""
        sim = NodeSim(
            name=name,
            runtime=runtime,
            max_images=max_images,
            max_pods=max_pods,
            status_lag=status_lag,
            serialize_pulls=serialize_pulls,
        )
        sim.preload(self.world.registry, list(images), at=time.monotonic() - status_lag)
        body = node_object(
            name,
            ready=ready,
            unschedulable=unschedulable,
            taints=list(taints),
            labels=labels or {},
            max_pods=max_pods,
            arch=arch,
            os=os,
            runtime=runtime,
            kubelet_port=KUBELET_PORT if self.server is None else self.server.port,
            reachable_at=None if self.server is None else "localhost",
        )
        status = body.pop("status")
        now = now_iso()
        for condition in status["conditions"]:
            condition["lastHeartbeatTime"] = condition["lastTransitionTime"] = now
        node = SimNode(
            sim=sim,
            labels=body["metadata"]["labels"],
            node_info=status["nodeInfo"],
            address=status["addresses"][0]["address"],
            conditions=status["conditions"],
            pod_cidr=body["spec"]["podCIDR"],
        )
        status["images"] = self.worker.render_images(sim, time.monotonic()) or []
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

    def add_pool(self, prefix: str, count: int, **options: Any) -> list[str]:
        """`count` nodes `<prefix>-<i>` with a cloud pool's labels (instance type, zone)."""
        names = []
        arch = options.get("arch", "amd64")
        extra = options.pop("labels", None) or {}
        for index in range(count):
            name = f"{prefix}-{index}"
            labels = {
                **pool_labels(prefix, index, arch=arch, instance_type=None, zones=("a", "b", "c")),
                **extra,
            }
            self.add_node(name, labels=labels, **options)
            names.append(name)
        return names

    def set_ready(self, name: str, ready: bool) -> None:
        """The node reports Ready (or NotReady: its runtime's network is down, so no pod starts
        or changes on it, but its pods being deleted still go)."""
        node = self.nodes[name]
        node.conditions = [
            *(c for c in node.conditions if c["type"] != "Ready"),
            {**ready_condition(ready), "lastHeartbeatTime": now_iso(),
             "lastTransitionTime": now_iso()},
        ]  # fmt: skip
        with self.changed:
            (self.down.discard if ready else self.down.add)(name)
            self.changed.notify_all()
        self._patch_node_status(name, {"conditions": node.conditions})

    def forget(self, name: str) -> None:
        """Stop serving node `name` (its kubelet is gone); its Lease goes, its Node stays."""
        with self.changed:
            self.nodes.pop(name, None)
            self.claimed.discard(name)
            self.down.discard(name)
            self.pods = {u: p for u, p in self.pods.items() if p["spec"].get("nodeName") != name}
            self.changed.notify_all()
        self.api.request("DELETE", f"{LEASES}/{name}")

    def remove_nodes(self) -> None:
        for name in list(self.nodes):
            self.api.request("DELETE", f"{LEASES}/{name}")
            self.api.request("DELETE", f"/api/v1/nodes/{name}")
        with self.changed:
            self.nodes.clear()
            self.claimed.clear()

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

    def _platform(self, sim: NodeSim) -> failures.Platform:
        return self.nodes[sim.name].platform

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.writers.start()
        if self.server is not None:
            self.server.start()
        for target, name in (
            (self._lease_loop, "kubelets-leases"),
            (self._watch_loop, "kubelets-pod-watch"),
            (self._sync_loop, "kubelets-sync"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """End the threads and stop the awaiter processes (again: nothing more happens)."""
        if self._stop.is_set():
            return
        self.runtime.stop_all()
        self._stop.set()
        with self.changed:
            self.changed.notify_all()
        stream = self._stream
        if stream is not None:
            stream.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self.writers.stop()
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> Kubelets:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _lease_loop(self) -> None:
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

    def _report_conditions(self, node: SimNode) -> None:
        now = now_iso()
        for condition in node.conditions:
            condition["lastHeartbeatTime"] = now
        self._patch_node_status(node.sim.name, {"conditions": node.conditions})

    def _guarded(self, action: Any, *args: Any) -> None:
        try:
            action(*args)
        except (urllib3.exceptions.HTTPError, OSError, ApiError) as error:
            self.errors.append(f"{getattr(action, '__name__', action)}: {error}")

    # ------------------------------------------------------------------ the pod watch

    def _watch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._list_and_watch()
            except (urllib3.exceptions.HTTPError, OSError, ApiError, ValueError) as error:
                if not self._stop.is_set():
                    self.errors.append(f"pod watch: {error}")
                    self._stop.wait(0.5)

    def _list_and_watch(self) -> None:
        selector = {"fieldSelector": "spec.nodeName!="}
        listing = self.api.call("GET", "/api/v1/pods", query=selector)
        with self.changed:
            self.pods = {
                pod["metadata"]["uid"]: pod for pod in listing.get("items") or [] if self._ours(pod)
            }
            self.changed.notify_all()
        version = listing["metadata"]["resourceVersion"]
        while not self._stop.is_set():
            query = {
                **selector,
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(POD_WATCH_SECONDS),
            }
            self._stream = self.api.watch("/api/v1/pods", query)
            for event in self._stream:
                kind, pod = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    return  # 410 Gone and the like: list again
                version = pod.get("metadata", {}).get("resourceVersion") or version
                if kind != "BOOKMARK":
                    self._apply(kind, pod)

    def _ours(self, pod: Json) -> bool:
        return (pod.get("spec") or {}).get("nodeName") in self.claimed

    def _apply(self, kind: str | None, pod: Json) -> None:
        uid = pod["metadata"]["uid"]
        with self.changed:
            if kind == "DELETED" or not self._ours(pod):
                self.pods.pop(uid, None)
            else:
                self.pods[uid] = pod
            self.changed.notify_all()

    # ------------------------------------------------------------------ syncing

    def _sync_loop(self) -> None:
        while not self._stop.is_set():
            with self.changed:
                self.changed.wait(self.tick)
                pods = list(self.pods.values())
            try:
                self._sync(pods)
            except Exception as error:  # a kubelet outlives any one bad sync, and says why
                self.errors.append(f"sync: {error!r}")
                self._stop.wait(0.2)

    def _sync(self, pods: list[Json]) -> None:
        now = time.monotonic()
        for node in list(self.nodes.values()):
            images = self.worker.render_images(node.sim, now)
            if images is not None:
                self._submit_images(node.sim.name, images)
        live = set()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            live.add(uid)
            on = self.nodes.get(pod["spec"]["nodeName"])
            if on is None:
                continue
            node = on
            if node.sim.name in self.down and not pod["metadata"].get("deletionTimestamp"):
                continue
            if self.runtime.handles(pod):
                self.runtime.sync(pod, node.sim, now, pull=self.worker.pull)
            elif pod["metadata"].get("deletionTimestamp"):
                self._finish_deletion(pod, node)
            elif uid not in self.finished:
                self._sync_pod(pod, node, now)
            elif self._newer_than_written(pod) and _drifted(pod, self.reported.get(uid)):
                self._reconcile(pod)
        self.runtime.reap(live, now)
        self.finished &= live
        self.deleting &= live
        for kept in (self.reported, self.written):  # the writers change them too: list() first
            for uid in [uid for uid in list(kept) if uid not in live]:
                kept.pop(uid, None)
        if len(self.worker.runs) > len(live):
            self.worker.forget(live)
            self.recorder.forget(live)

    def _sync_pod(self, pod: Json, node: SimNode, now: float) -> None:
        uid = pod["metadata"]["uid"]
        status = self.worker.run_pod(pod, node.sim, now)
        status["hostIP"] = node.address
        status["hostIPs"] = [{"ip": node.address}]
        if status["phase"] == "Running":
            status["podIP"] = pod_ip(node.pod_cidr, uid)
            status["podIPs"] = [{"ip": status["podIP"]}]
        if status == self.reported.get(uid):
            return
        self.patch_pod_status(pod, status)
        if status["phase"] == "Running":
            self.finished.add(uid)

    def _newer_than_written(self, pod: Json) -> bool:
        """Whether this copy of the pod was written after this kubelet's last status write
        (resourceVersions are opaque to clients, but etcd revisions here: integers)."""
        written = self.written.get(pod["metadata"]["uid"])
        seen = pod["metadata"].get("resourceVersion") or ""
        return (
            written is not None
            and seen.isdigit()
            and written.isdigit()
            and int(seen) > int(written)
        )

    def _reconcile(self, pod: Json) -> None:
        """Someone else changed the status of a pod this kubelet runs (the node lifecycle
        controller marks the pods of a node it thought lost not Ready): write it again, as
        the kubelet's status manager does when the API's copy differs from its own."""
        status = self.reported.get(pod["metadata"]["uid"])
        if status is not None and pod["metadata"]["uid"] not in self.unwritten:
            self.patch_pod_status(pod, status)

    def patch_pod_status(self, pod: Json, status: Json) -> None:
        """Write a pod's status (only if it is still the pod of that uid), by its node's
        writer; statuses that pile up while it is busy are written once, the last one (as the
        kubelet's status manager); if the write fails, the next sync writes it again."""
        meta = pod["metadata"]
        uid = meta["uid"]
        self.reported[uid] = status
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status"
        with self._unwritten_lock:  # else a status set just as the writer takes one is lost
            queued = uid in self.unwritten
            self.unwritten[uid] = {"metadata": {"uid": uid}, "status": status}
        if queued:
            return

        def write() -> None:
            with self._unwritten_lock:
                body = self.unwritten.pop(uid, None)
            if body is None:
                return
            answer, written = self.api.request("PATCH", path, body, content_type=MERGE_PATCH)
            if answer < 400:
                self.written[uid] = written.get("metadata", {}).get("resourceVersion", "")
            else:
                self.reported.pop(uid, None)
                self.finished.discard(uid)
                if answer != 404:
                    message = written.get("message")
                    self.errors.append(f"pod status {meta['name']}: {answer} {message}")

        self.writers.submit(pod["spec"].get("nodeName") or "", write, urgent=True)

    def _finish_deletion(self, pod: Json, node: SimNode) -> None:
        """The containers stop (a Killing event for each running one), then the pod goes."""
        uid = pod["metadata"]["uid"]
        if uid in self.deleting:
            return
        self.deleting.add(uid)
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            if "running" in (container.get("state") or {}):
                self._event(
                    pod, node.sim.name, "Killing",
                    f"Stopping container {container['name']}", False,
                    f"spec.containers{{{container['name']}}}",
                )  # fmt: skip
        if not self.delete_pod(pod):
            self.deleting.discard(uid)

    def delete_pod(self, pod: Json) -> bool:
        """The end of graceful deletion: gone now, if it is still the pod of that uid."""
        meta = pod["metadata"]
        status, answer = self.api.request(
            "DELETE",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
            {
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": meta["uid"]},
            },
        )
        if status >= 400 and status not in (404, 409):
            self.errors.append(f"delete pod {meta['name']}: {status} {answer.get('message')}")
            return False
        return True

    def _submit_images(self, name: str, images: list[Any]) -> None:
        self.writers.submit(name, lambda: self._patch_node_status(name, {"images": images}))

    def _patch_node_status(self, name: str, status: Json) -> None:
        self.api.call(
            "PATCH", f"/api/v1/nodes/{name}/status", {"status": status}, content_type=MERGE_PATCH
        )

    def _event(
        self, pod: Json, host: str, reason: str, message: str, warning: bool, path: str
    ) -> None:
        self.recorder.record(
            pod, host=host, reason=reason, message=message, warning=warning, field_path=path
        )

    # ------------------------------------------------------------------ for tests

    def wait_until(self, condition: Any, *, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.1))
        return True


def _drifted(pod: Json, reported: Json | None) -> bool:
    """The pod's phase or a condition's status is not what this kubelet last wrote."""
    if reported is None:
        return False
    seen = pod.get("status") or {}

    def conditions(status: Json) -> dict[str, str]:
        return {c["type"]: c["status"] for c in status.get("conditions") or []}

    return seen.get("phase") != reported.get("phase") or any(
        conditions(seen).get(kind) != value for kind, value in conditions(reported).items()
    )

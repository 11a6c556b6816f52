"""`Kubelets`: simulated nodes that are clients of an API server, as real kubelets are. They
speak only HTTP, with a kubeconfig's credentials, to whichever API server runs (the real
kube-apiserver or the simulated one):

- register each Node (labels, capacity, nodeInfo, addresses) and write its status through the
  `status` subresource (conditions, then node.status.images with the 50-image cap);
- hold each node's Lease in `kube-node-lease` (40 s, renewed every 10 s, as the kubelet), so
  the node lifecycle controller keeps the nodes Ready (both: leases.py);
- watch the pods bound to any of their nodes with ONE watch (`spec.nodeName!=`, filtered
  there: podwatch.py), sync each through `pulling.PodWorker` (volumes, init containers one at a
  time, containers; the real runtime texts, back-off: podsync.py) and write the status through
  `pods/<name>/status` (podstatus.py);
- record kubelet Events (`recording.Recorder`: count and lastTimestamp aggregation);
- finish graceful deletion: a pod with a deletionTimestamp has its containers stopped, then is
  deleted with gracePeriodSeconds=0 and a uid precondition (podsync.py);
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
from typing import Any

from simcluster.apiclient import Api, Json
from simcluster.nodes import failures
from simcluster.nodes.apihost import ApiHost
from simcluster.nodes.factory import KUBELET_PORT, KUBERNETES_RELEASE, node_object, pool_labels
from simcluster.nodes.kubeletserver import KubeletServer, ServingTls
from simcluster.nodes.leases import LEASES, REGISTERING_THREADS, NodeLeases, SimNode
from simcluster.nodes.podstatus import PodStatuses
from simcluster.nodes.podsync import PodSync
from simcluster.nodes.podwatch import PodWatch
from simcluster.nodes.pulling import NodeSim, PodWorker, now_iso
from simcluster.nodes.runtime import DEFAULT_AWAITER_IMAGE, Runtime
from simcluster.nodes.world import NodeWorld
from simcluster.nodes.writing import ApiEventRecorder, Writers

__all__ = [
    "DEFAULT_AWAITER_IMAGE",
    "LEASES",
    "REGISTERING_THREADS",
    "USER_AGENT",
    "Kubelets",
    "SimNode",
]

WRITER_THREADS = 8
# a kubelet's User-Agent (the field manager "kubelet"); the simulated API server's faults leave
# requests with it alone unless a rule asks for them (apiserver/faults.py)
USER_AGENT = f"kubelet/{KUBERNETES_RELEASE} (linux/amd64) kubernetes/simcluster"


class Kubelets:
    """Any number of simulated nodes in one process: `add_node`/`add_pool` register them (at
    once, also before `start`), `start` runs the lease, pod-watch and sync threads, `stop`
    ends them (nodes stay registered unless `remove_nodes`). Made of `leases` (the nodes and
    their Leases), `watch` (the pods on them), `sync` (syncing those pods) and `statuses`
    (writing their statuses); their state changes under the one condition `changed`."""

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
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.leases = NodeLeases(
            self.api, changed=self.changed, errors=self.errors, stop=self._stop
        )
        self.watch = PodWatch(
            self.api,
            claimed=self.leases.claimed,
            changed=self.changed,
            errors=self.errors,
            stop=self._stop,
        )
        self.statuses = PodStatuses(self.api, writers=self.writers, errors=self.errors)
        self.sync = PodSync(self, stop=self._stop)
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
        self.leases.register(node, body, status, ready=ready)

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
        self.leases.set_ready(name, ready)

    def forget(self, name: str) -> None:
        """Stop serving node `name` (its kubelet is gone); its Lease goes, its Node stays."""
        with self.changed:  # the node and its pods go at once
            self.leases.drop(name)
            self.watch.drop_node(name)
            self.changed.notify_all()
        self.leases.delete_lease(name)

    def remove_nodes(self) -> None:
        self.leases.remove_all()

    def _platform(self, sim: NodeSim) -> failures.Platform:
        return self.nodes[sim.name].platform

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.writers.start()
        if self.server is not None:
            self.server.start()
        for target, name in (
            (self.leases.renew_loop, "kubelets-leases"),
            (self.watch.run, "kubelets-pod-watch"),
            (self.sync.run, "kubelets-sync"),
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
        self.watch.close()
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

    # ------------------------------------------------------------------ their state

    @property
    def nodes(self) -> dict[str, SimNode]:
        return self.leases.nodes

    @property
    def claimed(self) -> set[str]:
        """Names whose pods are ours (from before their Node exists)."""
        return self.leases.claimed

    @property
    def down(self) -> set[str]:
        """Nodes reporting NotReady: no pod starts or changes there."""
        return self.leases.down

    @property
    def pods(self) -> dict[str, Json]:
        """uid -> the pod as last seen, on one of our nodes."""
        return self.watch.pods

    @property
    def reported(self) -> dict[str, Json]:
        """uid -> the status we last wrote."""
        return self.statuses.reported

    @property
    def deleting(self) -> set[str]:
        return self.sync.deleting

    # ------------------------------------------------------------------ writes

    def patch_pod_status(self, pod: Json, status: Json) -> None:
        """Write a pod's status by its node's writer (podstatus.PodStatuses.patch)."""
        self.statuses.patch(pod, status)

    def delete_pod(self, pod: Json) -> bool:
        """The end of graceful deletion: gone now, if it is still the pod of that uid."""
        return self.sync.delete_pod(pod)

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

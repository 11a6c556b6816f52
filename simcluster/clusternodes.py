"""The nodes of `SimCluster`: the HTTP kubelets that serve them (`nodes/kubelet.py`, clients
of the simulated API server over loopback), nodes added one by one or as a cloud pool, churn
(remove, NotReady, cordon, taints), stored synthetic nodes with no kubelet (the 65,000-node
benchmarks), and the world the kubelets pull from (`NodeWorld`: injected pull failures and
registry outages). What tests read of the nodes (`node_sims`, `pull_history`, `event_recorder`,
`runtime`, `pod_logs`) is the kubelets' own state, in-process."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from simcluster.apiserver.listing import SyntheticNodes
from simcluster.nodes import failures
from simcluster.nodes.factory import (
    NOT_READY_TAINT,
    node_object,
    pool_labels,
    ready_condition,
    synthetic_images,
)
from simcluster.nodes.kubelet import REGISTERING_THREADS, Kubelets
from simcluster.nodes.pulling import NodeSim, PullFailure, PullRecord
from simcluster.nodes.recording import Recorder
from simcluster.nodes.registry import parse
from simcluster.nodes.runtime import Runtime
from simcluster.nodes.world import NodeWorld

if TYPE_CHECKING:
    from simcluster.apiclient import Api
    from simcluster.apiserver.controllers import Controllers
    from simcluster.apiserver.store import Store


class ClusterNodes:
    """The node half of `SimCluster` (which inherits it): its kubelets and their world."""

    # the cluster's, set by SimCluster
    store: Store
    _controllers: Controllers

    def __init__(
        self, *, unknown_images: str, time_scale: float, kubelet_events: bool, awaiter_image: str
    ) -> None:
        self.time_scale = time_scale
        self.kubelet_events = kubelet_events
        self.world = NodeWorld(unknown_images=unknown_images, time_scale=time_scale)
        self.registry = self.world.registry
        self.awaiter_image = awaiter_image  # pods with this image (any tag) run the real CLI
        self.synthetic_nodes: SyntheticNodes | None = None  # rendered on demand (listing.py)
        self.kubelets: Kubelets | None = None  # from start(): they need the server's address
        self._unregistered: list[dict[str, Any]] = []  # add_node's before start()
        self.kubeletless: set[str] = set()  # stored nodes no kubelet runs (benchmarks)

    def _start_kubelets(self, api: Api) -> None:
        """The nodes' kubelets: clients of this server over loopback (`api`, with their own
        token). As a real kubelet's, a pod's status may reach the API before the events that
        led to it: wait for what you read."""
        self.kubelets = Kubelets(
            api,
            world=self.world,
            kubelet_events=self.kubelet_events,
            awaiter_image=self.awaiter_image,
        )
        self.kubelets.host.on_log = self._notify
        self.kubelets.start()
        waiting, self._unregistered = self._unregistered, []
        with ThreadPoolExecutor(REGISTERING_THREADS, thread_name_prefix="sim-register") as pool:
            list(pool.map(lambda options: self._register(**options), waiting))

    def _notify(self) -> None:
        with self.store.lock:
            self.store.changed.notify_all()

    def add_node(
        self,
        name: str,
        *,
        ready: bool = True,
        unschedulable: bool = False,
        taints: Iterable[dict[str, Any]] = (),
        labels: dict[str, str] | None = None,
        images: Iterable[str] = (),
        runtime: str = "containerd",
        max_images: int = 50,
        max_pods: int = 110,
        arch: str = "amd64",
        os: str = "linux",
        status_lag: float = 0.0,
        serialize_pulls: bool = False,
    ) -> None:
        """Register a node served by a simulated kubelet (over HTTP, as every node is).
        `serialize_pulls`: pull one image at a time, as the kubelet does by default; a
        queued pull's Pulled event then says more time "including waiting" than pulling.
        Before start() the node waits until the kubelets run."""
        options = {
            "name": name, "ready": ready, "unschedulable": unschedulable,
            "taints": list(taints), "labels": labels, "images": list(images),
            "runtime": runtime, "max_images": max_images, "max_pods": max_pods, "arch": arch,
            "os": os, "status_lag": status_lag, "serialize_pulls": serialize_pulls,
        }  # fmt: skip
        if self.kubelets is None:
            self._unregistered.append(options)
        else:
            self._register(**options)

    def _register(self, **options: Any) -> None:
        assert self.kubelets is not None
        self.kubelets.add_node(**options)
        self._controllers.tick()  # its DaemonSet pods exist when add_node returns, as before

    def serves_node(self, name: str) -> bool:
        """Whether node `name` exists with a kubelet (this cluster's or any other client's) to
        finish the graceful deletion of its pods: not a stored synthetic node."""
        return name not in self.kubeletless and ("", name) in self.store.peek("nodes")

    @property
    def node_sims(self) -> dict[str, NodeSim]:
        """Each served node's kubelet state (its images, pulls in flight)."""
        kubelets = self.kubelets
        return {} if kubelets is None else {n: node.sim for n, node in kubelets.nodes.items()}

    @property
    def runtime(self) -> Runtime:
        """The kubelets' pod runtime (the processes of awaiter-image pods)."""
        assert self.kubelets is not None, "start() first"
        return self.kubelets.runtime

    @property
    def pod_logs(self) -> dict[tuple[str, str], bytes]:
        """(namespace, pod) -> what its process wrote, kept by its kubelet."""
        return {} if self.kubelets is None else self.kubelets.host.logs

    def pod_running(self, key: tuple[str, str]) -> bool:
        """Whether pod (namespace, name) has a process that may still write to its log."""
        return self.kubelets is not None and self.kubelets.runtime.running(key)

    def serve_synthetic_nodes(
        self, count: int, *, images_per_node: int = 50, seed: int = 0, prefix: str = "node"
    ) -> SyntheticNodes:
        """`count` realistic nodes rendered on demand (not stored), with a completed puller
        pod on each for every DaemonSet (listing.py): a 65,000-node cluster in little memory."""
        self.synthetic_nodes = SyntheticNodes(
            count, images_per_node=images_per_node, seed=seed, prefix=prefix
        )
        return self.synthetic_nodes

    def add_node_pool(
        self,
        name_prefix: str,
        count: int,
        *,
        labels: dict[str, str] | None = None,
        taints: Iterable[dict[str, Any]] = (),
        arch: str = "amd64",
        os: str = "linux",
        instance_type: str | None = None,
        zones: tuple[str, ...] = ("a", "b", "c"),
        runtime: str = "containerd",
        images: Iterable[str] = (),
        **options: Any,
    ) -> list[str]:
        """`count` nodes named `<name_prefix>-<i>` as a cloud node pool makes them: arch and os
        labels and nodeInfo, instance type, region and zone labels, the pool's name, plus
        `labels` and `taints`. E.g. a GPU pool: labels={"nvidia.com/gpu.present": "true"},
        taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]."""
        names = [f"{name_prefix}-{index}" for index in range(count)]
        images = list(images)

        def add(index: int) -> None:
            self.add_node(
                names[index],
                labels={
                    **pool_labels(
                        name_prefix, index, arch=arch, instance_type=instance_type, zones=zones
                    ),
                    **(labels or {}),
                },
                taints=[dict(t) for t in taints],
                arch=arch,
                os=os,
                runtime=runtime,
                images=images,
                **options,
            )

        with ThreadPoolExecutor(REGISTERING_THREADS, thread_name_prefix="sim-register") as pool:
            list(pool.map(add, range(count)))  # each is three requests: a few nodes at a time
        return names

    def load_synthetic_nodes(
        self, count: int, *, images_per_node: int = 50, seed: int = 0, prefix: str = "node"
    ) -> None:
        rng = random.Random(seed)
        with self.store.lock:
            for index in range(count):
                name = f"{prefix}-{index:05d}"
                obj = node_object(
                    name,
                    ready=True,
                    unschedulable=False,
                    taints=[],
                    labels={
                        "topology.kubernetes.io/zone": f"zone-{index % 3}",
                        "node.kubernetes.io/instance-type": "m6i.4xlarge",
                        "hub.jupyter.org/node-purpose": "user",
                    },
                    max_pods=110,
                    arch="amd64",
                    os="linux",
                    runtime="containerd",
                )
                obj["status"]["images"] = synthetic_images(rng, images_per_node)
                self.store.create("nodes", obj)
                self.kubeletless.add(name)

    def remove_node(self, name: str) -> None:
        """The node's kubelet stops and its Node object goes (its pods stay, as they would
        until a real cluster's pod garbage collector deletes them)."""
        if self.kubelets is not None and name in self.kubelets.nodes:
            self.kubelets.forget(name)
        self.store.delete("nodes", name)

    def set_node_ready(self, name: str, ready: bool) -> None:
        """Its kubelet reports the node Ready or NotReady (and starts no pod while NotReady);
        a node no kubelet serves has its stored condition changed. Then the `not-ready`
        NoSchedule taint follows, as the real node lifecycle controller keeps it (the simulated
        server has no such controller; a node registered NotReady carries it from the start)."""
        if self.kubelets is not None and name in self.kubelets.nodes:
            self.kubelets.set_ready(name, ready)
        else:

            def change(obj: dict[str, Any]) -> None:
                conditions = [c for c in obj["status"]["conditions"] if c["type"] != "Ready"]
                obj["status"]["conditions"] = [*conditions, ready_condition(ready)]

            self.store.mutate("nodes", name, None, change)

        def taint(obj: dict[str, Any]) -> bool:
            taints = obj["spec"].get("taints") or []
            kept = [t for t in taints if t.get("key") != NOT_READY_TAINT["key"]]
            wanted = kept if ready else [*kept, dict(NOT_READY_TAINT)]
            if wanted == taints:
                return False
            obj["spec"]["taints"] = wanted
            return True

        self.store.mutate("nodes", name, None, taint)

    def node_ready(self, name: str) -> bool:
        node = self.store.peek("nodes").get(("", name))
        return node is not None and any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]
        )

    def cordon(self, name: str, unschedulable: bool = True) -> None:
        def change(obj: dict[str, Any]) -> None:
            obj["spec"]["unschedulable"] = unschedulable

        self.store.mutate("nodes", name, None, change)

    def set_taints(self, name: str, taints: list[dict[str, Any]]) -> None:
        self.store.mutate(
            "nodes", name, None, lambda obj: obj["spec"].__setitem__("taints", taints)
        )

    # ------------------------------------------------------------------ pulls

    def fail_pull(
        self,
        image: str,
        *,
        kind: str | None = None,
        reason: str = "ErrImagePull",
        message: str | None = None,
        nodes: Iterable[str] | None = None,
        times: int | None = None,
    ) -> None:
        """Make pulls of `image` ("*": any image) fail on `nodes` (default all), `times` attempts
        (default every one). `kind` (failures.KINDS: "tag-not-found", "unauthorized",
        "rate-limited", "timeout", "tls", "connection-refused", "server-error", "disk-pressure",
        "invalid-reference", ...) picks the real runtime text for each node's runtime; `message`
        overrides it. `reason="InvalidImageName"` is the same as kind "invalid-reference"."""
        self.world.fail_pull(
            image, kind=kind, reason=reason, message=message, nodes=nodes, times=times
        )

    @property
    def pull_failures(self) -> list[PullFailure]:
        return self.world.pull_failures

    def pull_failure(self, key: str, node: str) -> PullFailure | None:
        return self.world.pull_failure(key, node)

    def registry_outage(
        self, target: str, *, until: float | None = None, kind: str = "server-error"
    ) -> None:
        """Pulls from registry host `target` ("quay.io", "docker.io") or of image `target` fail
        with a transient error (`kind`: "server-error" 503, "connection-refused", "timeout",
        "tls", "rate-limited") for `until` seconds (scaled by time_scale) or until
        `end_outage`; then the kubelet's next retry succeeds."""
        if kind not in failures.TRANSIENT:
            raise ValueError(
                f"an outage is transient; {kind!r} is not one of {sorted(failures.TRANSIENT)}"
            )
        parsed = parse(target)
        host_only = "/" not in target and ("." in target or ":" in target or target == "localhost")
        key = target if host_only or parsed is None else parsed.key
        ends = None if until is None else time.monotonic() + until * self.time_scale
        self.registry.start_outage(key, kind=kind, until=ends)

    def end_outage(self, target: str | None = None) -> None:
        """End the outage of `target` (as given to registry_outage; None: every outage)."""
        if target is not None and "/" in target and (parsed := parse(target)) is not None:
            target = parsed.key
        self.registry.end_outage(target)

    def pull_history(
        self, *, node: str | None = None, image: str | None = None
    ) -> list[PullRecord]:
        """What the kubelets did, in order: each pull attempt's outcome ("pulled" with the
        figures its Pulled event gave, "failed" with the kind and runtime text) and each
        "already present" container start; for checking an awaiter's report against."""
        log = [] if self.kubelets is None else list(self.kubelets.worker.pull_log)
        return [
            r
            for r in log
            if (node is None or r.node == node) and (image is None or r.image == image)
        ]

    @property
    def event_recorder(self) -> Recorder:
        """The kubelets' event recorder (its `dropped` counts what the spam filter dropped)."""
        assert self.kubelets is not None, "start() first"
        return self.kubelets.recorder

    def expected_pull_seconds(self, image: str, node: str) -> float:
        """How long the simulated kubelet on `node` takes to pull `image` (what its Pulled
        event says), in real seconds: the registry's pull_seconds x per-node jitter x scale."""
        found = self.registry.lookup(image)
        if found is None:
            raise ValueError(f"invalid image {image!r}")
        assert self.kubelets is not None, "start() first"
        return self.kubelets.worker.pull_seconds(found, node)

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until every write the kubelets made so far (pod statuses, events, node images)
        has reached the API: as a real kubelet's, its events may trail the pod status a test
        waited for."""
        return self.kubelets is None or self.kubelets.writers.drain(timeout=timeout)

"""`SimCluster`: the facade tests and the demo use. A real HTTP server on loopback that speaks
the Kubernetes API subset image-awaiter uses, plus the controllers that make it behave like a
cluster: DaemonSet pods on eligible nodes, image pulls with delays, the 50-image status cap,
pull errors, ownerReference garbage collection, node churn and injected faults."""

from __future__ import annotations

import collections
import copy
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.simcluster import failures
from tests.simcluster.controllers import Controllers, NodeSim, PullFailure, PullRecord
from tests.simcluster.factory import node_object, pool_labels, ready_condition, synthetic_images
from tests.simcluster.faults import Faults
from tests.simcluster.recording import EventRecorder
from tests.simcluster.registry import Registry, parse
from tests.simcluster.server import Handler, RequestRecord, Server
from tests.simcluster.store import (
    CLUSTER_SCOPED,
    KINDS,
    Store,
    StoreError,
    parse_field_selector,
    parse_label_selector,
)

DEFAULT_TOKEN = "sim-token-s3cr3t"


class SimCluster:
    def __init__(
        self,
        *,
        seed: int = 0,
        time_scale: float = 1.0,
        unknown_images: str = "present",
        kubelet_events: bool = True,
    ) -> None:
        """`unknown_images`: whether an image the registry was never told about exists
        ("present": any valid reference pulls, 10 MB in 0.2 s, as existing tests expect) or
        not ("missing": pulls fail with the runtime's not-found message).
        `kubelet_events`: whether kubelets record Events (Pulling, Pulled, Failed, ...)."""
        self.seed = seed
        self.time_scale = time_scale
        self.kubelet_events = kubelet_events
        self.rng = random.Random(seed)
        self.store = Store(seed=seed)
        self.registry = Registry(unknown=unknown_images)
        self.faults = Faults(seed=seed)
        self.tokens: set[str] = {DEFAULT_TOKEN}
        self.token_uses: collections.Counter[str] = collections.Counter()
        self.tls: tuple[str, str] | None = None  # (certificate, key) files: serve HTTPS
        self.forbidden: list[tuple[str, str, str | None]] = []
        self.requests: list[RequestRecord] = []
        self.requests_lock = threading.Lock()
        self.node_sims: dict[str, NodeSim] = {}
        self.pull_failures: list[PullFailure] = []
        self.bookmark_interval = 1.0
        self.continue_ttl = 300.0
        self._continues: dict[str, tuple[list[bytes], int, float]] = {}
        self._controllers = Controllers(self)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: Server | None = None
        self._offline_port = 0
        self.store.create("namespaces", {"metadata": {"name": "default"}})

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        loop = threading.Thread(target=self._loop, name="sim-controllers", daemon=True)
        self._threads = [self._serve(port=0), loop]
        for thread in self._threads:
            thread.start()

    def _serve(self, *, port: int) -> threading.Thread:
        self._server = Server(self, tls=self.tls, port=port)
        return threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="sim-http",
            daemon=True,
        )

    def take_offline(self) -> None:
        """Stop answering on the API port (connections are refused) until `bring_online`:
        an API server, or a sidecar proxy in front of it, that is not up yet."""
        assert self._server is not None, "start() first"
        self._offline_port = self.port
        self._server.shutdown()
        self._server.close_all()
        self._server.server_close()

    def bring_online(self) -> None:
        serve = self._serve(port=self._offline_port)
        self._threads.append(serve)
        serve.start()

    def stop(self) -> None:
        self._stop.set()
        with self.store.lock:
            self.store.changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_all()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> SimCluster:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.server_address[1])

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._controllers.tick()
            with self.store.lock:
                self.store.changed.wait(0.02)

    # ------------------------------------------------------------------ configuration

    def write_kubeconfig(
        self,
        path: str | Path,
        *,
        token: str = DEFAULT_TOKEN,
        namespace: str = "default",
        context: str = "sim",
    ) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
            "clusters": [{"name": "sim", "cluster": {"server": self.url}}],
            "users": [{"name": "sim-user", "user": {"token": token}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": "sim", "user": "sim-user", "namespace": namespace},
                }
            ],
        }
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(config))
        return target

    def forbid(self, verb: str, resource: str, namespace: str | None = None) -> None:
        self.forbidden.append((verb, resource, namespace))

    def add_namespace(self, name: str) -> None:
        self.store.create("namespaces", {"metadata": {"name": name}})

    # ------------------------------------------------------------------ nodes

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
        """`serialize_pulls`: pull one image at a time, as the kubelet does by default; a
        queued pull's Pulled event then says more time "including waiting" than pulling."""
        sim = NodeSim(
            name=name,
            runtime=runtime,
            max_images=max_images,
            max_pods=max_pods,
            status_lag=status_lag,
            serialize_pulls=serialize_pulls,
        )
        now = time.monotonic() - status_lag
        for ref in images:
            image = self.registry.lookup(ref)
            parsed = parse(ref)
            if image is None or parsed is None:
                raise ValueError(f"invalid image {ref!r}")
            sim.images[parsed.key] = (image, now)
            sim.images[f"{image.name}@{image.digest}"] = (image, now)
        obj = node_object(
            name,
            ready=ready,
            unschedulable=unschedulable,
            taints=list(taints),
            labels=labels or {},
            max_pods=max_pods,
            arch=arch,
            os=os,
            runtime=runtime,
        )
        with self.store.lock:
            self.node_sims[name] = sim
            self.store.create("nodes", obj)
            self._controllers.tick()

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
        names = []
        for index in range(count):
            name = f"{name_prefix}-{index}"
            self.add_node(
                name,
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
            names.append(name)
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
                entries = synthetic_images(rng, images_per_node)
                obj["status"]["images"] = entries
                sim = NodeSim(name=name, static_images=entries, rendered=entries, dirty=False)
                self.node_sims[name] = sim
                self.store.create("nodes", obj)

    def remove_node(self, name: str) -> None:
        with self.store.lock:
            self.store.delete("nodes", name)
            self.node_sims.pop(name, None)

    def set_node_ready(self, name: str, ready: bool) -> None:
        def change(obj: dict[str, Any]) -> None:
            conditions = [c for c in obj["status"]["conditions"] if c["type"] != "Ready"]
            obj["status"]["conditions"] = [*conditions, ready_condition(ready)]

        self.store.mutate("nodes", name, None, change)

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
        if kind is not None and kind not in failures.KINDS:
            raise ValueError(f"unknown pull failure kind {kind!r}; one of {sorted(failures.KINDS)}")
        if kind == "invalid-reference":
            reason = "InvalidImageName"
        if message is None and kind is None and reason != "InvalidImageName":
            kind = "tag-not-found"
        parsed = parse(image)
        key = parsed.key if parsed else image
        with self.store.lock:
            self.pull_failures.append(
                PullFailure(
                    key, reason, message, set(nodes) if nodes is not None else None, times, kind
                )
            )

    def pull_failure(self, key: str, node: str) -> PullFailure | None:
        for failure in self.pull_failures:
            if (
                failure.image_key in (key, "*")
                and (failure.nodes is None or node in failure.nodes)
                and (failure.times is None or failure.times > 0)
            ):
                return failure
        return None

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
        with self.store.lock:
            return [
                r
                for r in self._controllers.pull_log
                if (node is None or r.node == node) and (image is None or r.image == image)
            ]

    @property
    def event_recorder(self) -> EventRecorder:
        """The kubelets' event recorder (its `dropped` counts what the spam filter dropped)."""
        return self._controllers.recorder

    def expected_pull_seconds(self, image: str, node: str) -> float:
        """How long the simulated kubelet on `node` takes to pull `image` (what its Pulled
        event says), in real seconds: the registry's pull_seconds x per-node jitter x scale."""
        found = self.registry.lookup(image)
        if found is None:
            raise ValueError(f"invalid image {image!r}")
        return self._controllers.pull_seconds(found, node)

    # ------------------------------------------------------------------ objects for tests

    def objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.store.items(resource, namespace)

    def create(
        self,
        resource: str,
        obj: dict[str, Any],
        namespace: str | None = None,
    ) -> dict[str, Any]:
        return self.store.create(resource, obj, namespace)

    def delete(self, resource: str, name: str, namespace: str | None = None) -> None:
        self.store.delete(resource, name, namespace)

    def evict_pod(self, name: str, namespace: str) -> None:
        self.store.delete("pods", name, namespace)

    def compact(self) -> None:
        self.store.compact()

    def wait_for(self, predicate: Callable[[SimCluster], bool], timeout: float = 10.0) -> bool:
        with self.store.lock:
            return self.store.changed.wait_for(lambda: predicate(self), timeout=timeout)

    # ------------------------------------------------------------------ API verbs

    def api_create(
        self,
        resource: str,
        obj: dict[str, Any],
        namespace: str | None,
    ) -> dict[str, Any]:
        if resource == "daemonsets":
            _validate_daemonset(obj)
        obj = copy.deepcopy(obj)
        obj.pop("status", None)
        with self.store.lock:
            created = self.store.create(resource, obj, namespace)
            return created

    def api_delete(
        self, resource: str, name: str, namespace: str | None, options: dict[str, Any]
    ) -> dict[str, Any]:
        with self.store.lock:
            current = self.store.get(resource, name, namespace)
            if current is None:
                raise StoreError(
                    404, "NotFound", f'{resource} "{name}" not found', name=name, kind=resource
                )
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
                raise StoreError(
                    409,
                    "Conflict",
                    f"Precondition failed: UID in precondition: "
                    f"{pre['uid']}, UID in object meta: "
                    f"{current['metadata']['uid']}",
                    name=name,
                    kind=resource,
                )
            if (
                pre.get("resourceVersion")
                and pre["resourceVersion"] != current["metadata"]["resourceVersion"]
            ):
                raise StoreError(
                    409,
                    "Conflict",
                    "Precondition failed: resourceVersion",
                    name=name,
                    kind=resource,
                )
            deleted = self.store.delete(resource, name, namespace)
            if options.get("propagationPolicy") == "Orphan":
                self._orphan(current["metadata"]["uid"])
            return deleted or {}

    def _orphan(self, uid: str) -> None:
        for resource in ("pods", "daemonsets"):
            for (ns, name), obj in list(self.store.peek(resource).items()):
                owners = obj["metadata"].get("ownerReferences") or []
                if any(o.get("uid") == uid for o in owners):
                    kept = [o for o in owners if o.get("uid") != uid]
                    self.store.mutate(
                        resource,
                        name,
                        ns,
                        lambda o, k=kept: o["metadata"].__setitem__("ownerReferences", k),
                    )

    def api_update(
        self, resource: str, name: str, namespace: str | None, body: dict[str, Any], *, merge: bool
    ) -> dict[str, Any]:
        def change(obj: dict[str, Any]) -> None:
            if merge:
                _merge(obj, body)
            else:
                meta = obj["metadata"]
                obj.clear()
                obj.update(copy.deepcopy(body))
                obj["metadata"] = {
                    **body.get("metadata", {}),
                    "uid": meta["uid"],
                    "creationTimestamp": meta["creationTimestamp"],
                }

        updated = self.store.mutate(resource, name, namespace, change)
        if updated is None:
            raise StoreError(
                404, "NotFound", f'{resource} "{name}" not found', name=name, kind=resource
            )
        return updated

    # ------------------------------------------------------------------ lists and watches

    def start_list(self, items: list[bytes], rv: int, limit: int) -> tuple[list[bytes], str]:
        if not limit or len(items) <= limit:
            return items, ""
        token = uuid.uuid4().hex
        with self.store.lock:
            self._continues[token] = (items, rv, time.monotonic())
        return items[:limit], f"{token}:{limit}"

    def continue_list(self, token: str, limit: int) -> tuple[list[bytes], int, str]:
        key, _, offset_text = token.partition(":")
        with self.store.lock:
            entry = self._continues.get(key)
        if entry is None or time.monotonic() - entry[2] > self.continue_ttl:
            raise StoreError(
                410,
                "Expired",
                "The provided continue parameter is too old to "
                "display a consistent list result. You can start a new list "
                "without the continue parameter.",
            )
        items, rv, _ = entry
        offset = int(offset_text or 0)
        end = offset + limit if limit else len(items)
        more = f"{key}:{end}" if end < len(items) else ""
        return items[offset:end], rv, more

    def expire_continues(self) -> None:
        with self.store.lock:
            self._continues.clear()

    def watch(
        self,
        handler: Handler,
        record: RequestRecord,
        *,
        resource: str,
        namespace: str | None,
        query: dict[str, str],
        cut: int | None,
    ) -> None:
        store = self.store
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""))
        timeout = float(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        kind, api_version, _ = KINDS[resource]

        def matches(obj: dict[str, Any]) -> bool:
            meta = obj.get("metadata") or {}
            return (
                (
                    namespace is None
                    or resource in CLUSTER_SCOPED
                    or meta.get("namespace") == namespace
                )
                and labels(meta.get("labels") or {})
                and fields(obj)
            )

        handler.start_stream(record)
        sent = 0
        with store.lock:
            requested = query.get("resourceVersion") or "0"
            start = int(requested) if requested.isdigit() else 0
            visible: set[tuple[str, str]] = set()
            pending: list[bytes] = []
            if start == 0:
                for key, obj in sorted(store.peek(resource).items()):
                    if matches(obj):
                        visible.add(key)
                        pending.append(
                            b'{"type":"ADDED","object":'
                            + json.dumps(obj, separators=(",", ":")).encode()
                            + b"}"
                        )
                start = store.rv
            elif start < store.floor[resource]:
                status = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "reason": "Expired",
                    "code": 410,
                    "message": f"too old resource version: {start} ({store.floor[resource]})",
                }
                pending.append(json.dumps({"type": "ERROR", "object": status}).encode())
                start = -1
            else:
                for key, obj in store.peek(resource).items():
                    if matches(obj):
                        visible.add(key)
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + self.bookmark_interval
        try:
            for line in pending:
                handler.write_chunk(record, line + b"\n")
                sent += 1
                if cut is not None and sent >= cut:
                    handler.cut(record)
                    return
            if start < 0:
                handler.end_stream()
                return
            position = start
            while not self._stop.is_set() and time.monotonic() < deadline:
                with store.lock:
                    events = store.events_since(resource, position)
                    if not events:
                        store.changed.wait(min(0.2, max(0.0, deadline - time.monotonic())))
                        events = store.events_since(resource, position)
                    floor = store.floor[resource]
                if position < floor and not events:
                    break
                lines = []
                for event in events:
                    position = event.rv
                    key = (event.namespace, event.obj["metadata"]["name"])
                    now_matches = event.type != "DELETED" and matches(event.obj)
                    if now_matches:
                        kind_of = "ADDED" if key not in visible else event.type
                        visible.add(key)
                        lines.append(
                            b'{"type":"' + kind_of.encode() + b'","object":' + event.data + b"}"
                        )
                    elif key in visible or (event.type == "DELETED" and matches(event.obj)):
                        visible.discard(key)
                        lines.append(b'{"type":"DELETED","object":' + event.data + b"}")
                for line in lines:
                    handler.write_chunk(record, line + b"\n")
                    sent += 1
                    if cut is not None and sent >= cut:
                        handler.cut(record)
                        return
                if bookmarks and time.monotonic() >= next_bookmark:
                    next_bookmark = time.monotonic() + self.bookmark_interval
                    mark = {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": kind,
                            "apiVersion": api_version,
                            "metadata": {"resourceVersion": str(position)},
                        },
                    }
                    handler.write_chunk(record, json.dumps(mark).encode() + b"\n")
            handler.end_stream()
        except (BrokenPipeError, ConnectionResetError, OSError):
            handler.close_connection = True


def _validate_daemonset(obj: dict[str, Any]) -> None:
    causes = []
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    selector = (spec.get("selector") or {}).get("matchLabels")
    if not selector:
        causes.append(("spec.selector", "Required value"))
    elif any(labels.get(k) != v for k, v in selector.items()):
        causes.append(
            (
                "spec.template.metadata.labels",
                "Invalid value: `selector` does not match template `labels`",
            )
        )
    pod = template.get("spec") or {}
    containers = pod.get("containers") or []
    if not containers:
        causes.append(("spec.template.spec.containers", "Required value"))
    names = set()
    for c in (pod.get("initContainers") or []) + containers:
        if not c.get("name") or not c.get("image"):
            causes.append(("spec.template.spec.containers", "name and image required"))
        if c.get("name") in names:
            causes.append(("spec.template.spec.containers", f"Duplicate value: {c['name']}"))
        names.add(c.get("name"))
    if causes:
        name = (obj.get("metadata") or {}).get("name", "")
        message = f'DaemonSet.apps "{name}" is invalid: ' + ", ".join(
            f"{f}: {m}" for f, m in causes
        )
        raise StoreError(
            422,
            "Invalid",
            message,
            name=name,
            group="apps",
            kind="DaemonSet",
            causes=[{"field": f, "message": m} for f, m in causes],
        )


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)

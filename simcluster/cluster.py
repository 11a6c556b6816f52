"""`SimCluster`: the facade tests and the demo use. A real HTTP server on loopback that speaks
the Kubernetes API subset image-awaiter uses, with the controllers that make it behave like a
control plane (DaemonSet, Job, garbage collection: apiserver/), and simulated kubelets that are
its clients over HTTP (nodes/kubelet.py, the same ones that serve the real control plane):
image pulls with delays and the runtime's texts, the 50-image status cap, pull errors, the
awaiter image run as a process. Plus node churn and injected faults."""

from __future__ import annotations

import base64
import collections
import json
import random
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from simcluster.apiclient import Api, Credentials
from simcluster.apiserver import rest
from simcluster.apiserver.audit import AuditLog
from simcluster.apiserver.continues import Continues
from simcluster.apiserver.controllers import Controllers
from simcluster.apiserver.faults import Faults
from simcluster.apiserver.jobs import JobController
from simcluster.apiserver.kinds import BY_RESOURCE
from simcluster.apiserver.listing import SyntheticNodes
from simcluster.apiserver.server import RequestRecord, Server
from simcluster.apiserver.store import (
    Store,
)
from simcluster.nodes import failures
from simcluster.nodes.factory import node_object, pool_labels, ready_condition, synthetic_images
from simcluster.nodes.kubelet import REGISTERING_THREADS, Kubelets
from simcluster.nodes.pulling import NodeSim, PullFailure, PullRecord
from simcluster.nodes.recording import Recorder
from simcluster.nodes.registry import parse
from simcluster.nodes.runtime import DEFAULT_AWAITER_IMAGE, Runtime
from simcluster.nodes.world import NodeWorld

DEFAULT_TOKEN = "sim-token-s3cr3t"
# the kubelets' own credential (an administrator's here, as in `serve --control-plane real`):
# apart from `tokens`, which tests rotate and revoke
KUBELET_TOKEN = "sim-kubelet-token"


class SimCluster:
    def __init__(
        self,
        *,
        seed: int = 0,
        time_scale: float = 1.0,
        unknown_images: str = "present",
        kubelet_events: bool = True,
        audit_log: str | Path | None = None,
        awaiter_image: str = DEFAULT_AWAITER_IMAGE,
    ) -> None:
        """`unknown_images`: whether an image the registry was never told about exists
        ("present": any valid reference pulls, 10 MB in 0.2 s, as existing tests expect) or
        not ("missing": pulls fail with the runtime's not-found message).
        `kubelet_events`: whether kubelets record Events (Pulling, Pulled, Failed, ...).
        `audit_log`: a file to append one JSON line per request to.
        `awaiter_image`: the repository whose pods run the real image-awaiter CLI."""
        self.seed = seed
        self.time_scale = time_scale
        self.kubelet_events = kubelet_events
        self.rng = random.Random(seed)
        self.store = Store(seed=seed)
        self.world = NodeWorld(unknown_images=unknown_images, time_scale=time_scale)
        self.registry = self.world.registry
        self.faults = Faults(seed=seed)
        self.tokens: set[str] = {DEFAULT_TOKEN}
        self.kubelet_tokens: set[str] = {KUBELET_TOKEN}
        self.token_uses: collections.Counter[str] = collections.Counter()
        # token -> (namespace, name) of the ServiceAccount it authenticates as
        self.service_account_tokens: dict[str, tuple[str, str]] = {}
        self.audit = AuditLog(audit_log)
        self.awaiter_image = awaiter_image  # pods with this image (any tag) run the real CLI
        self.tls: tuple[str, str] | None = None  # (certificate, key) files: serve HTTPS
        self.root_ca: str | None = None  # PEM in every namespace's kube-root-ca.crt, once on
        self.forbidden: list[tuple[str, str, str | None]] = []
        self.requests: list[RequestRecord] = []  # every client's but the HTTP kubelets'
        self.kubelet_requests: list[RequestRecord] = []  # theirs (User-Agent kubelet/...)
        self.requests_lock = threading.Lock()
        self.bookmark_interval = 1.0
        self.continues = Continues()  # paginated lists' tokens
        self.synthetic_nodes: SyntheticNodes | None = None  # rendered on demand (listing.py)
        self.watch_list = True  # False: streaming lists are refused, as with the gate off
        # False: a streaming list is accepted but never ends with the initial-events-end
        # bookmark, as from a proxy that drops sendInitialEvents (a plain watch's ADDED events)
        self.initial_events_end = True
        self.kubelets: Kubelets | None = None  # from start(): they need the server's address
        self._unregistered: list[dict[str, Any]] = []  # add_node's before start()
        self.kubeletless: set[str] = set()  # stored nodes no kubelet runs (benchmarks)
        self.jobs = JobController(self)
        self._controllers = Controllers(self)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: Server | None = None
        self._offline_port = 0
        # the namespaces a real control plane starts with, each with its `default` account
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.add_namespace(name)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.start_on(0)

    def start_on(self, port: int) -> None:
        loop = threading.Thread(target=self._loop, name="sim-controllers", daemon=True)
        self._threads = [self._serve(port=port), loop]
        for thread in self._threads:
            thread.start()
        self._start_kubelets()

    def _start_kubelets(self) -> None:
        """The nodes' kubelets: clients of this server over loopback, with their own token.
        As a real kubelet's, a pod's status may reach the API before the events that led to
        it: wait for what you read."""
        ca = Path(self.tls[0]).read_bytes() if self.tls else None
        api = Api(Credentials(server=self.url, token=KUBELET_TOKEN, ca_data=ca))
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

    def _serve(self, *, port: int) -> threading.Thread:
        self._server = Server(self, tls=self.tls, port=port)
        return threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="sim-http",
            daemon=True,
        )

    def use_self_signed_tls(self, directory: str | Path) -> None:
        """Serve HTTPS with a fresh self-signed certificate for 127.0.0.1 (call before start()).
        Real clients need it: kubectl and helm send bearer tokens only over TLS."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        cert, key = folder / "apiserver.crt", folder / "apiserver.key"
        made = subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "30",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-subj",
                "/CN=sim-apiserver",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            raise RuntimeError(f"openssl could not make a certificate: {made.stderr.strip()}")
        self.tls = (str(cert), str(key))

    def publish_root_ca(self) -> None:
        """The root CA publisher of a real controller manager: the API server's certificate as
        ConfigMap `kube-root-ca.crt` in every namespace, now and created later (off by
        default: tests count the ConfigMaps they make). Call after use_self_signed_tls."""
        assert self.tls is not None, "use_self_signed_tls() first"
        with self.store.lock:
            self.root_ca = Path(self.tls[0]).read_text()
            for _, name in list(self.store.peek("namespaces")):
                config_map = {
                    "metadata": {"name": "kube-root-ca.crt"},
                    "data": {"ca.crt": self.root_ca},
                }
                self.store.create("configmaps", config_map, name)

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
        if self.kubelets is not None:  # first, while the API answers their last writes
            self.kubelets.stop()
        self._stop.set()
        with self.store.lock:
            self.store.changed.notify_all()
        for thread in self._threads:
            if thread.name == "sim-controllers":
                thread.join(timeout=5)
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

    @property
    def stopping(self) -> bool:
        """Whether stop() was called: watch streams end."""
        return self._stop.is_set()

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
        cluster: dict[str, Any] = {"server": self.url}
        if self.tls:
            authority = Path(self.tls[0]).read_bytes()
            cluster["certificate-authority-data"] = base64.b64encode(authority).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
            "clusters": [{"name": "sim", "cluster": cluster}],
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

    def token_for_service_account(self, namespace: str, name: str) -> str:
        """A bearer token that authenticates as system:serviceaccount:<namespace>:<name> (while
        that ServiceAccount exists); RBAC then decides what it may do."""
        for token, account in self.service_account_tokens.items():
            if account == (namespace, name):
                return token
        token = f"sa-{namespace}-{name}-{uuid.UUID(int=self.rng.getrandbits(128)).hex[:16]}"
        self.service_account_tokens[token] = (namespace, name)
        return token

    def forbid(self, verb: str, resource: str, namespace: str | None = None) -> None:
        self.forbidden.append((verb, resource, namespace))

    def add_namespace(self, name: str) -> None:
        with self.store.lock:
            self.store.create("namespaces", {"metadata": {"name": name}})
            rest.populate_namespace(self, name)

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
        a node no kubelet serves has its stored condition changed."""
        if self.kubelets is not None and name in self.kubelets.nodes:
            self.kubelets.set_ready(name, ready)
            return

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

    def expire_continues(self) -> None:
        """Every continue token given so far expires (the next page is a 410)."""
        self.continues.expire()

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until every write the kubelets made so far (pod statuses, events, node images)
        has reached the API: as a real kubelet's, its events may trail the pod status a test
        waited for."""
        return self.kubelets is None or self.kubelets.writers.drain(timeout=timeout)

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
        return rest.create(self, BY_RESOURCE[resource], obj, namespace)

    def api_delete(
        self, resource: str, name: str, namespace: str | None, options: dict[str, Any]
    ) -> dict[str, Any]:
        return rest.delete(self, BY_RESOURCE[resource], name, namespace, options)

    def api_update(
        self, resource: str, name: str, namespace: str | None, body: dict[str, Any], *, merge: bool
    ) -> dict[str, Any]:
        kind = BY_RESOURCE[resource]
        if merge:
            data = json.dumps(body).encode()
            return rest.patch(self, kind, name, namespace, data, "application/merge-patch+json")[0]
        return rest.update(self, kind, name, namespace, body)

"""`SimCluster`: the facade tests and the demo use. A real HTTP server on loopback that speaks
the Kubernetes API subset image-awaiter uses, with the controllers that make it behave like a
control plane (DaemonSet, Job, garbage collection: apiserver/), and simulated kubelets that are
its clients over HTTP (nodes/kubelet.py, the same ones that serve the real control plane):
image pulls with delays and the runtime's texts, the 50-image status cap, pull errors, the
awaiter image run as a process. Plus node churn and injected faults. The nodes' half of the
facade (adding and changing nodes, pulls, what the kubelets did) is `clusternodes.py`; the
server's watch streams and list pages are `apiserver/watchstream.py` and `continues.py`."""

from __future__ import annotations

import base64
import collections
import json
import random
import subprocess
import threading
import uuid
from collections.abc import Callable
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
from simcluster.apiserver.server import RequestRecord, Server
from simcluster.apiserver.store import Store
from simcluster.clusternodes import ClusterNodes
from simcluster.nodes.runtime import DEFAULT_AWAITER_IMAGE

DEFAULT_TOKEN = "sim-token-s3cr3t"
# the kubelets' own credential (an administrator's here, as in `serve --control-plane real`):
# apart from `tokens`, which tests rotate and revoke
KUBELET_TOKEN = "sim-kubelet-token"


class SimCluster(ClusterNodes):
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
        super().__init__(
            unknown_images=unknown_images,
            time_scale=time_scale,
            kubelet_events=kubelet_events,
            awaiter_image=awaiter_image,
        )
        self.seed = seed
        self.rng = random.Random(seed)
        self.store = Store(seed=seed)
        self.faults = Faults(seed=seed)
        self.tokens: set[str] = {DEFAULT_TOKEN}
        self.kubelet_tokens: set[str] = {KUBELET_TOKEN}
        self.token_uses: collections.Counter[str] = collections.Counter()
        # token -> (namespace, name) of the ServiceAccount it authenticates as
        self.service_account_tokens: dict[str, tuple[str, str]] = {}
        self.audit = AuditLog(audit_log)
        self.tls: tuple[str, str] | None = None  # (certificate, key) files: serve HTTPS
        self.root_ca: str | None = None  # PEM in every namespace's kube-root-ca.crt, once on
        self.forbidden: list[tuple[str, str, str | None]] = []
        self.requests: list[RequestRecord] = []  # every client's but the HTTP kubelets'
        self.kubelet_requests: list[RequestRecord] = []  # theirs (User-Agent kubelet/...)
        self.requests_lock = threading.Lock()
        self.bookmark_interval = 1.0
        self.continues = Continues()  # paginated lists' tokens
        self.watch_list = True  # False: streaming lists are refused, as with the gate off
        # False: a streaming list is accepted but never ends with the initial-events-end
        # bookmark, as from a proxy that drops sendInitialEvents (a plain watch's ADDED events)
        self.initial_events_end = True
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
        ca = Path(self.tls[0]).read_bytes() if self.tls else None
        self._start_kubelets(Api(Credentials(server=self.url, token=KUBELET_TOKEN, ca_data=ca)))

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
        return f"{'https' if self.tls else 'http'}://{host!s}:{port}"

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

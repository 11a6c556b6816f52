"""The HTTP face of the simulated cluster: each request, over HTTP/1.1 keep-alive on loopback,
counted and matched against the fault rules, authenticated, authorised and handed on (paths
that name no resource to `nonresource.py`, resources to `verbs.py`), its StoreError turned into
a Status, and audited. What a path names is `targets.py`; who asks, `authentication.py`; what
they may, `authorization.py`; how answers are written, `responses.py`."""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from simcluster.apiserver import rbac, responses
from simcluster.apiserver.authentication import UNAUTHENTICATED_PATHS, authenticate
from simcluster.apiserver.authorization import authorise
from simcluster.apiserver.faults import KUBELET_AGENT, Fault
from simcluster.apiserver.nonresource import serve_non_resource
from simcluster.apiserver.responses import RequestRecord, status_body
from simcluster.apiserver.store import StoreError
from simcluster.apiserver.targets import Target, named_by_fields, parse_target, verb_of
from simcluster.apiserver.verbs import Call, serve_resource

if TYPE_CHECKING:
    from simcluster.cluster import SimCluster

__all__ = [
    "UNAUTHENTICATED_PATHS",
    "Handler",
    "RequestRecord",
    "Server",
    "Target",
    "parse_target",
    "status_body",
    "verb_of",
]

FAULT_REASONS = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, sim: SimCluster, *, tls: tuple[str, str] | None = None, port: int = 0
    ) -> None:
        self.sim = sim
        self.open_connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.socket = context.wrap_socket(self.socket, server_side=True)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conn_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a killed awaiter, a reset) is normal here, not a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.conn_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        with self.conn_lock:
            for conn in list(self.open_connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server
    timeout = 120
    # TCP_NODELAY: a response's headers and body go in separate writes; with Nagle's algorithm
    # the body waited for the client's delayed ACK, 40 ms on every request over keep-alive
    disable_nagle_algorithm = True
    # who the request authenticated as (the reviews answer about them)
    current_user: rbac.User | None = None
    # who asked for the stream this request may start: (user, verb, target), for the audit log
    _streaming: tuple[rbac.User | None, str, Target | None] = (None, "", None)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        sim = self.server.sim
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        watch = query.get("watch") in ("true", "1")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = RequestRecord(method, url.path, query, watch=watch)
        agent = self.headers.get("User-Agent") or ""
        with sim.requests_lock:  # the nodes' requests apart: tests count the clients'
            kubelet = KUBELET_AGENT.search(agent) is not None
            (sim.kubelet_requests if kubelet else sim.requests).append(record)
        with sim.store.lock:  # `wait_for` predicates read the request log too
            sim.store.changed.notify_all()
        fault = sim.faults.pick(method, url.path, watch, agent)
        if fault is not None and self._injected(record, fault):
            return
        user: rbac.User | None = None
        target = parse_target(url.path)
        verb = verb_of(method, target, watch) if target else method.lower()
        if target is not None:
            target = named_by_fields(target, verb, query)
        record.on_answer = lambda: self._audit(record, user, verb, target)  # `user` once known
        try:
            user = self.current_user = authenticate(sim, self.headers, url.path)
            if target is None:
                serve_non_resource(self, record, method, url.path)
                return
            authorise(sim, user, verb, target)
            self._streaming = (user, verb, target)
            cut = fault.cut_after_events if fault else None
            serve_resource(self, record, Call(verb, target, query, body, cut))
        except StoreError as error:
            status = status_body(error.code, error.reason, error.message, **error.details)
            responses.send(self, record, error.code, status)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self._audit(record, user, verb, target)

    def _injected(self, record: RequestRecord, fault: Fault) -> bool:
        """A fault rule's delay, then its reset or its error status; whether that answered."""
        if fault.delay:
            time.sleep(fault.delay)
        if fault.reset:
            responses.reset(self, record)
            return True
        if fault.cut_after_events is None and fault.status:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after else {}
            reason = FAULT_REASONS.get(fault.status, "InternalError")
            status = status_body(fault.status, reason, f"injected fault {fault.status}")
            responses.send(self, record, fault.status, status, headers)
            return True
        return False

    def _audit(
        self, record: RequestRecord, user: rbac.User | None, verb: str, target: Target | None
    ) -> None:
        """One audit entry per request: as its whole answer goes out (before its body, so a
        client that has the answer finds the entry), or, for a watch or a streaming list, when
        its response starts (as kube-apiserver's ResponseStarted stage),
        so that a stream still open says who is watching what."""
        if record.audited:
            return
        record.audited = True
        self.server.sim.audit.add(
            user=user.name if user else "system:anonymous",
            verb=verb,
            resource=(
                target.kind.resource + (f"/{target.subresource}" if target.subresource else "")
            )
            if target
            else "",
            namespace=(target.namespace or "") if target else "",
            name=(target.name or "") if target else "",
            code=record.status,
            uri=self.path,
            group=target.kind.group if target else "",
            user_agent=self.headers.get("User-Agent") or "",
        )

    # ------------------------------------------------------------------ what watch streams write

    def start_stream(self, record: RequestRecord) -> None:
        responses.start_chunked(self, record, content_type="application/json")
        self._audit(record, *self._streaming)

    def write_chunk(self, record: RequestRecord, data: bytes) -> None:
        responses.write_chunk(self, record, data)

    def end_stream(self) -> None:
        responses.end_chunked(self)

    def cut(self, record: RequestRecord) -> None:
        responses.reset(self, record)

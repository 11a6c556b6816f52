"""The HTTP face of the simulated cluster: routing, auth, RBAC denials, faults, Status errors,
list with pagination and watch streams, over HTTP/1.1 keep-alive on loopback."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tests.simcluster.store import (
    CLUSTER_SCOPED,
    KINDS,
    StoreError,
    group_resource,
    parse_field_selector,
    parse_label_selector,
)

if TYPE_CHECKING:
    from tests.simcluster.cluster import SimCluster

import re

ROUTES = [
    re.compile(
        r"^/api/v1/(?:namespaces/(?P<ns>[^/]+)/)?"
        r"(?P<res>nodes|pods|configmaps|namespaces|secrets|events)(?:/(?P<name>[^/]+))?/?$"
    ),
    re.compile(
        r"^/apis/batch/v1/(?:namespaces/(?P<ns>[^/]+)/)?"
        r"(?P<res>jobs)(?:/(?P<name>[^/]+))?/?$"
    ),
    re.compile(
        r"^/apis/apps/v1/(?:namespaces/(?P<ns>[^/]+)/)?"
        r"(?P<res>daemonsets)(?:/(?P<name>[^/]+))?/?$"
    ),
]


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    status: int = 0
    bytes_sent: int = 0
    watch: bool = False
    at: float = field(default_factory=time.monotonic)


def status_body(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


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

    # ------------------------------------------------------------------ dispatch

    def _handle(self, method: str) -> None:
        sim = self.server.sim
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        watch = query.get("watch") in ("true", "1")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = RequestRecord(method, url.path, query, watch=watch)
        with sim.requests_lock:
            sim.requests.append(record)
        fault = sim.faults.pick(method, url.path, watch)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.reset:
            self._reset(record)
            return
        if fault is not None and fault.cut_after_events is None and fault.status:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after else {}
            reason = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}.get(
                fault.status, "InternalError"
            )
            self._send(
                record,
                fault.status,
                status_body(fault.status, reason, f"injected fault {fault.status}"),
                headers,
            )
            return
        try:
            self._authorise(method, url.path, query, watch)
            self._route(
                record,
                method,
                url.path,
                query,
                body,
                watch,
                cut=fault.cut_after_events if fault else None,
            )
        except StoreError as error:
            self._send(
                record,
                error.code,
                status_body(error.code, error.reason, error.message, **error.details),
            )
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _authorise(self, method: str, path: str, query: dict[str, str], watch: bool) -> None:
        sim = self.server.sim
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if path in ("/version", "/api", "/apis"):
            return
        sim.token_uses[token] += 1
        if token not in sim.tokens:
            raise StoreError(401, "Unauthorized", "Unauthorized")
        match = _route(path)
        if match is None:
            return
        ns, resource, name = match
        verb = {"POST": "create", "DELETE": "delete", "PUT": "update", "PATCH": "patch"}.get(
            method, "watch" if watch else ("get" if name else "list")
        )
        for rule_verb, rule_resource, rule_ns in sim.forbidden:
            if rule_verb == verb and rule_resource == resource and rule_ns in (None, ns):
                user = "system:serviceaccount:default:image-awaiter"
                group = KINDS[resource][2]
                scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
                named = f' "{name}"' if name else ""
                raise StoreError(
                    403,
                    "Forbidden",
                    f"{group_resource(resource)}{named} "
                    f'is forbidden: User "{user}" cannot {verb} resource '
                    f'"{resource}" in API group "{group}" {scope}',
                    kind=resource,
                    group=group,
                    name=name or "",
                )

    def _route(
        self,
        record: RequestRecord,
        method: str,
        path: str,
        query: dict[str, str],
        body: bytes,
        watch: bool,
        cut: int | None,
    ) -> None:
        sim = self.server.sim
        if path == "/version":
            self._send(record, 200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0-sim"})
            return
        match = _route(path)
        if match is None:
            raise StoreError(404, "NotFound", "the server could not find the requested resource")
        ns, resource, name = match
        if (
            ns
            and resource not in CLUSTER_SCOPED
            and method in ("POST", "GET")
            and sim.store.get("namespaces", ns) is None
            and not name
            and method == "POST"
        ):
            raise StoreError(
                404, "NotFound", f'namespaces "{ns}" not found', name=ns, kind="namespaces"
            )
        if method == "GET" and name:
            obj = sim.store.get(resource, name, ns)
            if obj is None:
                raise _not_found(resource, name)
            self._send(record, 200, obj)
        elif method == "GET" and watch:
            sim.watch(self, record, resource=resource, namespace=ns, query=query, cut=cut)
        elif method == "GET":
            self._list(record, resource, ns, query)
        elif method == "POST":
            obj = _json(body)
            self._send(record, 201, sim.api_create(resource, obj, ns))
        elif method == "DELETE":
            options = _json(body) if body else {}
            self._send(record, 200, sim.api_delete(resource, name or "", ns, options))
        elif method in ("PUT", "PATCH"):
            self._send(
                record,
                200,
                sim.api_update(resource, name or "", ns, _json(body), merge=method == "PATCH"),
            )

    def _list(
        self, record: RequestRecord, resource: str, ns: str | None, query: dict[str, str]
    ) -> None:
        sim = self.server.sim
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""))
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        if token:
            items, rv, remaining = sim.continue_list(token, limit)
        else:
            items, rv = sim.store.raw_items(
                resource,
                ns,
                lambda o: labels((o.get("metadata") or {}).get("labels") or {}) and fields(o),
            )
            items, remaining = sim.start_list(items, rv, limit)
        kind = KINDS[resource][0] + "List"
        meta = {"resourceVersion": str(rv)}
        if remaining:
            meta["continue"] = remaining
        head = json.dumps({"kind": kind, "apiVersion": KINDS[resource][1], "metadata": meta})[
            :-1
        ].encode()
        data = head + b',"items":[' + b",".join(items) + b"]}"
        self._send_bytes(record, 200, data)

    # ------------------------------------------------------------------ responses

    def _send(
        self,
        record: RequestRecord,
        code: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        self._send_bytes(record, code, json.dumps(body).encode(), headers)

    def _send_bytes(
        self, record: RequestRecord, code: int, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        record.status = code
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        record.bytes_sent += len(data)

    def start_stream(self, record: RequestRecord) -> None:
        record.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, record: RequestRecord, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
        record.bytes_sent += len(data)

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _reset(self, record: RequestRecord) -> None:
        record.status = -1
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def cut(self, record: RequestRecord) -> None:
        self._reset(record)


def _route(path: str) -> tuple[str | None, str, str | None] | None:
    for pattern in ROUTES:
        match = pattern.match(path)
        if match:
            ns, resource, name = match.group("ns", "res", "name")
            if resource == "namespaces" and ns is None:
                return None, resource, name
            return ns, resource, name
    return None


def _not_found(resource: str, name: str) -> StoreError:
    return StoreError(
        404,
        "NotFound",
        f'{group_resource(resource)} "{name}" not found',
        name=name,
        kind=resource,
        group=KINDS[resource][2],
    )


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise StoreError(400, "BadRequest", "request body is not JSON") from None
    if not isinstance(value, dict):
        raise StoreError(400, "BadRequest", "request body is not an object")
    return value

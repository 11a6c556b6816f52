"""The HTTP face of the simulated cluster: discovery and OpenAPI, the REST verbs on every served
kind, Status errors, lists (JSON or Table, paginated), watch streams and pod logs, over HTTP/1.1
keep-alive on loopback, each request in the audit log. Who asks is `authentication.py`, what they
may `authorization.py`, what a path names `targets.py`, how answers are written `responses.py`,
request bodies `bodies.py`."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from simcluster.apiserver import (
    authentication,
    authorization,
    bodies,
    discovery,
    listing,
    rbac,
    responses,
    rest,
    tables,
    watchstream,
)
from simcluster.apiserver.authentication import UNAUTHENTICATED_PATHS, authenticate
from simcluster.apiserver.authorization import authorise
from simcluster.apiserver.faults import KUBELET_AGENT
from simcluster.apiserver.kinds import CREATE_ONLY, Kind, group_versions
from simcluster.apiserver.responses import RequestRecord, status_body
from simcluster.apiserver.store import (
    DRY_RUN,
    StoreError,
    parse_field_selector,
    parse_label_selector,
)
from simcluster.apiserver.targets import Target, named_by_fields, parse_target, verb_of

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

    # ------------------------------------------------------------------ dispatch

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
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.reset:
            responses.reset(self, record)
            return
        if fault is not None and fault.cut_after_events is None and fault.status:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after else {}
            reason = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}.get(
                fault.status, "InternalError"
            )
            responses.send(
                self,
                record,
                fault.status,
                status_body(fault.status, reason, f"injected fault {fault.status}"),
                headers,
            )
            return
        user: rbac.User | None = None
        target = parse_target(url.path)
        verb = verb_of(method, target, watch) if target else method.lower()
        if target is not None:
            target = named_by_fields(target, verb, query)
        try:
            user = self.current_user = authenticate(sim, self.headers, url.path)
            if target is None:
                self._non_resource(record, method, url.path)
                return
            authorise(sim, user, verb, target)
            self._streaming = (user, verb, target)
            self._resource(
                record,
                method,
                verb,
                target,
                query,
                body,
                cut=fault.cut_after_events if fault else None,
            )
        except StoreError as error:
            responses.send(
                self,
                record,
                error.code,
                status_body(error.code, error.reason, error.message, **error.details),
            )
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self._audit(record, user, verb, target)

    def _audit(
        self, record: RequestRecord, user: rbac.User | None, verb: str, target: Target | None
    ) -> None:
        """One audit entry per request: when its response completes, or, for a watch or a
        streaming list, when its response starts (as kube-apiserver's ResponseStarted stage),
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

    # ------------------------------------------------------------------ non-resource paths

    def _non_resource(self, record: RequestRecord, method: str, path: str) -> None:
        path = path.rstrip("/") or "/"
        if method != "GET":
            raise StoreError(405, "MethodNotAllowed", "the server does not allow this method")
        if path == "/version":
            responses.send(self, record, 200, discovery.VERSION)
        elif path in ("/healthz", "/livez", "/readyz"):
            responses.send_bytes(self, record, 200, b"ok", content_type="text/plain")
        elif path == "/api":
            responses.send(self, record, 200, discovery.core_versions())
        elif path == "/apis":
            responses.send(self, record, 200, discovery.group_list())
        elif path == "/openapi/v3":
            responses.send(self, record, 200, discovery.openapi_root())
        elif path.startswith("/openapi/v3/") and discovery.openapi_document(path[12:]):
            responses.send_bytes(self, record, 200, discovery.openapi_document(path[12:]) or b"")
        elif path in group_versions():
            responses.send(self, record, 200, discovery.resource_list(path) or {})
        elif path.startswith("/apis/") and path.count("/") == 2 and discovery.group(path[6:]):
            responses.send(self, record, 200, discovery.group(path[6:]) or {})
        else:
            raise StoreError(404, "NotFound", "the server could not find the requested resource")

    # ------------------------------------------------------------------ resources

    def _body(self, body: bytes) -> dict[str, Any]:
        return bodies.decode(body, content_type=self.headers.get("Content-Type") or "")

    def _manager(self, query: dict[str, str]) -> str:
        """The field manager: ?fieldManager=, else the user agent's program name."""
        agent = (self.headers.get("User-Agent") or "unknown").split("/")[0]
        return query.get("fieldManager") or agent

    def _resource(
        self,
        record: RequestRecord,
        method: str,
        verb: str,
        target: Target,
        query: dict[str, str],
        body: bytes,
        cut: int | None,
    ) -> None:
        sim = self.server.sim
        kind, ns, name, sub = target.kind, target.namespace, target.name, target.subresource
        if verb == "delete" and body and (options := self._body(body)).get("dryRun"):
            query = {**query, "dryRun": ",".join(options.pop("dryRun"))}
            body = json.dumps(options).encode()  # kubectl delete says dryRun in DeleteOptions
        if "dryRun" in query and verb in ("create", "update", "patch", "delete"):
            if query["dryRun"] != "All":
                raise StoreError(
                    400,
                    "BadRequest",
                    f'dryRun: Unsupported value: "{query["dryRun"]}": supported values: "All"',
                )
            token = DRY_RUN.set(True)  # answered as if written; the store keeps nothing
            try:
                self._resource(
                    record, method, verb, target, {k: v for k, v in query.items() if k != "dryRun"},
                    body, cut,
                )  # fmt: skip
            finally:
                DRY_RUN.reset(token)
            return
        if kind.resource in CREATE_ONLY:
            if verb != "create" or name:
                raise StoreError(405, "MethodNotAllowed", "the server does not allow this method")
            if kind.resource == "selfsubjectreviews":
                responses.send(self, record, 201, authentication.who_am_i(self.current_user))
            elif kind.resource == "selfsubjectrulesreviews":
                responses.send(
                    self,
                    record,
                    201,
                    authorization.rules_review(sim, self.current_user, self._body(body)),
                )
            else:
                responses.send(
                    self,
                    record,
                    201,
                    authorization.access_review(sim, self.current_user, self._body(body)),
                )
        elif verb == "watch":
            if target.watch_path and name:
                query = {**query, "fieldSelector": f"metadata.name={name}"}
            listing.check_watch(sim, query)
            watchstream.serve_watch(
                sim,
                self,
                record,
                resource=kind.resource,
                namespace=ns,
                query=query,
                cut=cut,
                render=self._table_renderer(kind, query) if self._wants_table() else None,
            )
        elif verb == "list":
            self._list(record, kind, ns, query)
        elif verb == "get" and sub == "log":
            self._log(record, kind, ns, name or "", query)
        elif verb == "get":
            obj = sim.store.get(kind.resource, name or "", ns)
            if obj is None:
                raise rest.not_found(kind, name or "")
            self._send_object(record, 200, kind, obj, query)
        elif verb == "create" and sub == "token" and name:
            token = authentication.token_request(
                sim,
                kind,
                namespace=ns or "default",
                name=name,
                body=body,
                content_type=self.headers.get("Content-Type") or "",
            )
            responses.send(self, record, 201, token)
        elif verb == "create" and not name:
            obj = self._body(body)
            bodies.check_fields(kind, obj, query)
            created = rest.create(sim, kind, obj, ns, manager=self._manager(query))
            responses.send(self, record, 201, created)
        elif verb == "update" and name:
            obj = self._body(body)
            bodies.check_fields(kind, obj, query)
            responses.send(
                self,
                record,
                200,
                rest.update(
                    sim, kind, name, ns, obj, subresource=sub, manager=self._manager(query)
                ),
            )
        elif verb == "patch" and name:
            content_type = self.headers.get("Content-Type") or ""
            patched, created = rest.patch(
                sim,
                kind,
                name,
                ns,
                body,
                content_type,
                subresource=sub,
                manager=query.get("fieldManager")
                or ("" if "apply" in content_type else self._manager(query)),
                force=query.get("force") in ("true", "1"),
            )
            responses.send(self, record, 201 if created else 200, patched)
        elif verb == "delete" and name and not sub:
            options = self._body(body) if body else {}
            if "propagationPolicy" in query:
                options["propagationPolicy"] = query["propagationPolicy"]
            if (query.get("gracePeriodSeconds") or "").isdigit():  # kubectl --grace-period
                options["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
            deleted = rest.delete(sim, kind, name, ns, options)
            responses.send(self, record, 200, deleted)
        elif verb == "deletecollection":
            self._delete_collection(record, kind, ns, query, body)
        else:
            raise StoreError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )

    def _delete_collection(
        self, record: RequestRecord, kind: Kind, ns: str | None, query: dict[str, str], body: bytes
    ) -> None:
        sim = self.server.sim
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""))
        options = self._body(body) if body else {}
        deleted = []
        for obj in sim.store.items(kind.resource, ns):
            if labels(obj["metadata"].get("labels") or {}) and fields(obj):
                deleted.append(
                    rest.delete(
                        sim,
                        kind,
                        obj["metadata"]["name"],
                        obj["metadata"].get("namespace"),
                        options,
                    )
                )
        responses.send(
            self,
            record,
            200,
            {
                "kind": kind.kind + "List",
                "apiVersion": kind.api_version,
                "metadata": {},
                "items": deleted,
            },
        )

    def _log(
        self, record: RequestRecord, kind: Kind, ns: str | None, name: str, query: dict[str, str]
    ) -> None:
        sim = self.server.sim
        pod = sim.store.get("pods", name, ns)
        if pod is None:
            raise rest.not_found(kind, name)
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        container = query.get("container") or (containers[0] if containers else "")
        if container not in containers:
            raise StoreError(
                400,
                "BadRequest",
                f"container {container} is not valid for pod {name}",
            )
        data = sim.pod_logs.get((ns or "", name))
        if data is None:
            if (pod.get("status") or {}).get("phase", "Pending") == "Pending":
                raise StoreError(
                    400,
                    "BadRequest",
                    f'container "{container}" in pod "{name}" is waiting to start: '
                    "ContainerCreating",
                )
            data = b""
        whole = len(data)
        tail = query.get("tailLines")
        if tail and tail.isdigit():
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(tail) :]) if int(tail) else b""
        if query.get("follow") in ("true", "1"):
            self._follow_log(record, (ns or "", name), data, whole)
            return
        responses.send_bytes(self, record, 200, data, content_type="text/plain")

    def _follow_log(
        self, record: RequestRecord, key: tuple[str, str], data: bytes, sent: int
    ) -> None:
        """`kubectl logs -f`: what the log holds, then what the process writes, until it ends
        (pod runtime, runtime.py)."""
        sim = self.server.sim
        responses.start_chunked(self, record, content_type="text/plain")
        try:
            if data:
                self.write_chunk(record, data)
            while True:
                with sim.store.lock:
                    sim.store.changed.wait_for(
                        lambda offset=sent: (
                            len(sim.pod_logs.get(key, b"")) > offset or not sim.pod_running(key)
                        ),
                        timeout=1.0,
                    )
                    log, running = sim.pod_logs.get(key, b""), sim.pod_running(key)
                if len(log) > sent:
                    self.write_chunk(record, log[sent:])
                    sent = len(log)
                if not running:
                    break
            self.end_stream()
        except OSError:
            self.close_connection = True

    @staticmethod
    def _table_renderer(kind: Kind, query: dict[str, str]) -> Callable[[bytes], bytes]:
        def render(data: bytes) -> bytes:
            obj = json.loads(data)
            table = tables.table(
                kind.resource,
                [obj],
                resource_version=obj["metadata"].get("resourceVersion", ""),
                include_object=query.get("includeObject", "Metadata"),
            )
            return json.dumps(table, separators=(",", ":")).encode()

        return render

    def _wants_table(self) -> bool:
        return "as=Table" in (self.headers.get("Accept") or "")

    def _send_object(
        self,
        record: RequestRecord,
        code: int,
        kind: Kind,
        obj: dict[str, Any],
        query: dict[str, str],
    ) -> None:
        if self._wants_table():
            table = tables.table(
                kind.resource,
                [obj],
                resource_version=obj["metadata"].get("resourceVersion", ""),
                include_object=query.get("includeObject", "Metadata"),
            )
            responses.send(self, record, code, table)
        else:
            responses.send(self, record, code, obj)

    def _list(
        self, record: RequestRecord, kind: Kind, ns: str | None, query: dict[str, str]
    ) -> None:
        sim = self.server.sim
        resource = kind.resource
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""))
        limit = listing.list_limit(query)
        token = query.get("continue")
        if token:
            items, rv, remaining = sim.continues.resume(token, limit)
        else:
            items, rv = sim.store.raw_items(
                resource,
                ns,
                lambda o: labels((o.get("metadata") or {}).get("labels") or {}) and fields(o),
            )
            items, remaining = sim.continues.start(
                listing.list_items(sim, resource, ns, query, items), rv, limit
            )
        meta = {"resourceVersion": str(rv)}
        if remaining:
            meta["continue"] = remaining
        if self._wants_table():
            table = tables.table(
                resource,
                [json.loads(i) for i in items],
                resource_version=str(rv),
                include_object=query.get("includeObject", "Metadata"),
            )
            table["metadata"] = meta
            responses.send(self, record, 200, table)
            return
        head = json.dumps(
            {"kind": kind.kind + "List", "apiVersion": kind.api_version, "metadata": meta}
        )[:-1].encode()
        data = head + b',"items":[' + b",".join(items) + b"]}"
        responses.send_bytes(self, record, 200, data)

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

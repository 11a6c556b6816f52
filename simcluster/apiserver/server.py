"""The HTTP face of the simulated cluster: discovery and OpenAPI, authentication, RBAC, faults,
the REST verbs on every served kind, Status errors, lists (JSON or Table, paginated), watch
streams and pod logs, over HTTP/1.1 keep-alive on loopback, each request in the audit log."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from simcluster.apiserver import discovery, listing, protobuf, rbac, rest, tables, watchstream
from simcluster.apiserver.faults import KUBELET_AGENT
from simcluster.apiserver.kinds import CREATE_ONLY, Kind, group_versions, lookup
from simcluster.apiserver.store import (
    DRY_RUN,
    StoreError,
    parse_field_selector,
    parse_label_selector,
)

if TYPE_CHECKING:
    from simcluster.cluster import SimCluster

UNAUTHENTICATED_PATHS = ("/version", "/healthz", "/livez", "/readyz")


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    status: int = 0
    bytes_sent: int = 0
    watch: bool = False
    at: float = field(default_factory=time.monotonic)
    audited: bool = False


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


@dataclass(frozen=True)
class Target:
    """What a resource request names (the apiserver's RequestInfo, less the verb)."""

    kind: Kind
    namespace: str | None
    name: str | None
    subresource: str
    watch_path: bool


def parse_target(path: str) -> Target | None:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        prefix, rest_ = "/api/v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        prefix, rest_ = f"/apis/{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    watch = rest_[:1] == ["watch"]
    rest_ = rest_[1:] if watch else rest_
    namespace = None
    if len(rest_) >= 3 and rest_[0] == "namespaces":
        inner = lookup(prefix, rest_[2])
        if inner is not None and inner.namespaced:
            namespace, rest_ = rest_[1], rest_[2:]
    if not rest_ or len(rest_) > 3:
        return None
    kind = lookup(prefix, rest_[0])
    if kind is None:
        return None
    name = rest_[1] if len(rest_) > 1 else None
    sub = rest_[2] if len(rest_) > 2 else ""
    if sub and sub not in kind.subresources:
        return None
    return Target(kind, namespace, name, sub, watch)


def verb_of(method: str, target: Target, watch: bool) -> str:
    if method == "GET":
        if watch or target.watch_path:
            return "watch"
        return "get" if target.name else "list"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server
    timeout = 120
    # TCP_NODELAY: a response's headers and body go in separate writes; with Nagle's algorithm
    # the body waited for the client's delayed ACK, 40 ms on every request over keep-alive
    disable_nagle_algorithm = True
    _current_user: rbac.User | None = None
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
        user: rbac.User | None = None
        target = parse_target(url.path)
        verb = verb_of(method, target, watch) if target else method.lower()
        if target is not None and verb in ("list", "watch") and not target.name:
            named = _name_from_fields(query.get("fieldSelector", ""))
            if named:
                target = Target(target.kind, target.namespace, named, "", target.watch_path)
        try:
            user = self._current_user = self._authenticate(url.path)
            if target is None:
                self._non_resource(record, method, url.path)
                return
            self._authorise(user, verb, target)
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
            self._send(
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

    def _granted(self, user: rbac.User, request: rbac.Attributes) -> bool:
        """What the stored Roles, ClusterRoles and their bindings grant `user`."""
        store = self.server.sim.store
        with store.lock:
            return rbac.allowed(
                user,
                request,
                roles=store.peek("roles"),
                cluster_roles=store.peek("clusterroles"),
                role_bindings=store.peek("rolebindings"),
                cluster_role_bindings=store.peek("clusterrolebindings"),
            )

    def _authenticate(self, path: str) -> rbac.User | None:
        sim = self.server.sim
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if path in UNAUTHENTICATED_PATHS and not token:
            return None
        sim.token_uses[token] += 1
        if token in sim.tokens or token in sim.kubelet_tokens:
            return self._impersonated(rbac.ADMIN_USER)
        account = sim.service_account_tokens.get(token)
        if account is not None and sim.store.get("serviceaccounts", account[1], account[0]):
            return self._impersonated(rbac.service_account_user(*account))
        raise StoreError(401, "Unauthorized", "Unauthorized")

    def _impersonated(self, user: rbac.User) -> rbac.User:
        """`Impersonate-User` (kubectl --as) and `Impersonate-Group` (--as-group): the request
        then acts as that user; only an administrator may impersonate here (the `impersonate`
        verb is not granted to anyone else)."""
        name = self.headers.get("Impersonate-User")
        if not name:
            return user
        if not user.is_admin:
            raise StoreError(
                403,
                "Forbidden",
                f'users "{name}" is forbidden: User "{user.name}" cannot impersonate resource '
                '"users" in API group "" at the cluster scope',
                name=name,
                kind="users",
            )
        groups = tuple(self.headers.get_all("Impersonate-Group") or ())
        prefix = "system:serviceaccount:"
        if name.startswith(prefix) and name.count(":") == 3 and not groups:
            namespace, account = name[len(prefix) :].split(":")
            return rbac.service_account_user(namespace, account)
        return rbac.User(name, (*groups, "system:authenticated"))

    def _authorise(self, user: rbac.User | None, verb: str, target: Target) -> None:
        sim = self.server.sim
        kind = target.kind
        resource = kind.resource + (f"/{target.subresource}" if target.subresource else "")
        request = rbac.Attributes(
            verb, kind.group, resource, target.namespace or "", target.name or ""
        )
        user = user or rbac.User("system:anonymous", ("system:unauthenticated",))
        for rule_verb, rule_resource, rule_ns in sim.forbidden:
            if (
                rule_verb == verb
                and rule_resource == kind.resource
                and rule_ns
                in (
                    None,
                    target.namespace,
                )
            ):
                raise self._forbidden(user, request)
        if user.is_admin or (kind.resource in CREATE_ONLY and user.name != "system:anonymous"):
            return  # every authenticated user may review itself (ClusterRole system:basic-user)
        ok = self._granted(user, request)
        if not ok:
            raise self._forbidden(user, request)

    @staticmethod
    def _forbidden(user: rbac.User, request: rbac.Attributes) -> StoreError:
        return StoreError(
            403,
            "Forbidden",
            rbac.forbidden_message(user, request),
            name=request.name,
            group=request.group,
            kind=request.resource.partition("/")[0],
        )

    # ------------------------------------------------------------------ non-resource paths

    def _non_resource(self, record: RequestRecord, method: str, path: str) -> None:
        path = path.rstrip("/") or "/"
        if method != "GET":
            raise StoreError(405, "MethodNotAllowed", "the server does not allow this method")
        if path == "/version":
            self._send(record, 200, discovery.VERSION)
        elif path in ("/healthz", "/livez", "/readyz"):
            self._send_bytes(record, 200, b"ok", content_type="text/plain")
        elif path == "/api":
            self._send(record, 200, discovery.core_versions())
        elif path == "/apis":
            self._send(record, 200, discovery.group_list())
        elif path == "/openapi/v3":
            self._send(record, 200, discovery.openapi_root())
        elif path.startswith("/openapi/v3/") and discovery.openapi_document(path[12:]):
            self._send_bytes(record, 200, discovery.openapi_document(path[12:]) or b"")
        elif path in group_versions():
            self._send(record, 200, discovery.resource_list(path) or {})
        elif path.startswith("/apis/") and path.count("/") == 2 and discovery.group(path[6:]):
            self._send(record, 200, discovery.group(path[6:]) or {})
        else:
            raise StoreError(404, "NotFound", "the server could not find the requested resource")

    # ------------------------------------------------------------------ resources

    def _manager(self, query: dict[str, str]) -> str:
        """The field manager: ?fieldManager=, else the user agent's program name."""
        agent = (self.headers.get("User-Agent") or "unknown").split("/")[0]
        return query.get("fieldManager") or agent

    def _token_request(self, kind: Kind, namespace: str, name: str, body: bytes) -> dict[str, Any]:
        """The TokenRequest API (`serviceaccounts/<name>/token`), as the kubelet asks it for a
        pod's projected token: a token that authenticates as the account while it exists."""
        sim = self.server.sim
        if sim.store.get("serviceaccounts", name, namespace) is None:
            raise rest.not_found(kind, name)
        request = self._body(body) if body else {}
        spec = dict(request.get("spec") or {})
        seconds = int(spec.get("expirationSeconds") or 3607)
        spec["expirationSeconds"] = seconds
        expires = datetime.now(UTC) + timedelta(seconds=seconds)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": spec,
            "status": {
                "token": sim.token_for_service_account(namespace, name),
                "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        }

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
                self._send(record, 201, self._who_am_i())
            elif kind.resource == "selfsubjectrulesreviews":
                self._send(record, 201, self._rules_review(self._body(body)))
            else:
                self._send(record, 201, self._review(self._body(body)))
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
            self._send(record, 201, self._token_request(kind, ns or "default", name, body))
        elif verb == "create" and not name:
            obj = self._body(body)
            self._check_fields(kind, obj, query)
            created = rest.create(sim, kind, obj, ns, manager=self._manager(query))
            self._send(record, 201, created)
        elif verb == "update" and name:
            obj = self._body(body)
            self._check_fields(kind, obj, query)
            self._send(
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
            self._send(record, 201 if created else 200, patched)
        elif verb == "delete" and name and not sub:
            options = self._body(body) if body else {}
            if "propagationPolicy" in query:
                options["propagationPolicy"] = query["propagationPolicy"]
            if (query.get("gracePeriodSeconds") or "").isdigit():  # kubectl --grace-period
                options["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
            deleted = rest.delete(sim, kind, name, ns, options)
            self._send(record, 200, deleted)
        elif verb == "deletecollection":
            self._delete_collection(record, kind, ns, query, body)
        else:
            raise StoreError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )

    def _rules_review(self, review: dict[str, Any]) -> dict[str, Any]:
        """A SelfSubjectRulesReview (`kubectl auth can-i --list`): the rules bound to the user
        in the namespace, from the same stored roles requests are decided by."""
        namespace = (review.get("spec") or {}).get("namespace") or ""
        user = self._current_user or rbac.User("system:anonymous", ("system:unauthenticated",))
        store = self.server.sim.store
        with store.lock:
            resource_rules, other_rules = rbac.rules_for(
                user,
                namespace,
                roles=store.peek("roles"),
                cluster_roles=store.peek("clusterroles"),
                role_bindings=store.peek("rolebindings"),
                cluster_role_bindings=store.peek("clusterrolebindings"),
            )
        return {
            "kind": "SelfSubjectRulesReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": {"namespace": namespace},
            "status": {
                "resourceRules": resource_rules,
                "nonResourceRules": other_rules,
                "incomplete": False,
            },
        }

    def _who_am_i(self) -> dict[str, Any]:
        """A SelfSubjectReview (`kubectl auth whoami`): the user the request authenticated as."""
        user = self._current_user or rbac.User("system:anonymous", ("system:unauthenticated",))
        return {
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "status": {"userInfo": {"username": user.name, "groups": list(user.groups)}},
        }

    def _review(self, review: dict[str, Any]) -> dict[str, Any]:
        """A SelfSubjectAccessReview answered by the same RBAC decision requests get."""
        attributes = (review.get("spec") or {}).get("resourceAttributes")
        allowed = True
        if attributes is not None:
            resource = attributes.get("resource", "")
            if attributes.get("subresource"):
                resource += "/" + attributes["subresource"]
            request = rbac.Attributes(
                attributes.get("verb", ""),
                attributes.get("group", ""),
                resource,
                attributes.get("namespace", ""),
                attributes.get("name", ""),
            )
            user = self._current_user or rbac.User("system:anonymous", ())
            allowed = self._granted(user, request)
        return {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": review.get("spec") or {},
            "status": {"allowed": allowed},
        }

    def _body(self, body: bytes) -> dict[str, Any]:
        if "protobuf" not in (self.headers.get("Content-Type") or ""):
            return _json(body)
        try:
            return protobuf.decode(body)
        except (ValueError, IndexError, UnicodeDecodeError) as error:
            raise StoreError(415, "UnsupportedMediaType", str(error)) from None

    def _check_fields(self, kind: Kind, obj: dict[str, Any], query: dict[str, str]) -> None:
        from simcluster.apiserver import schemas

        if obj.get("kind") not in (None, kind.kind) or obj.get("apiVersion") not in (
            None,
            kind.api_version,
        ):
            raise StoreError(
                400,
                "BadRequest",
                f"the API version in the data ({obj.get('apiVersion')}) does not match the "
                f"expected API version ({kind.api_version})",
            )
        if query.get("fieldValidation") != "Strict":
            return
        unknown = _unknown_fields(obj, schemas.for_kind(kind), "")
        if unknown:
            raise StoreError(
                400,
                "BadRequest",
                "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown),
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
        self._send(
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
        self._send_bytes(record, 200, data, content_type="text/plain")

    def _follow_log(
        self, record: RequestRecord, key: tuple[str, str], data: bytes, sent: int
    ) -> None:
        """`kubectl logs -f`: what the log holds, then what the process writes, until it ends
        (pod runtime, runtime.py)."""
        sim = self.server.sim
        record.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
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
            self._send(record, code, table)
        else:
            self._send(record, code, obj)

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
            self._send(record, 200, table)
            return
        head = json.dumps(
            {"kind": kind.kind + "List", "apiVersion": kind.api_version, "metadata": meta}
        )[:-1].encode()
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
        self,
        record: RequestRecord,
        code: int,
        data: bytes,
        headers: dict[str, str] | None = None,
        *,
        content_type: str = "application/json",
    ) -> None:
        record.status = code
        self.send_response(code)
        self.send_header("Content-Type", content_type)
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
        self._audit(record, *self._streaming)

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


def _name_from_fields(text: str) -> str:
    for part in (text or "").split(","):
        key, _, value = part.partition("=")
        if key.strip() == "metadata.name" and not key.endswith("!"):
            return value.strip().lstrip("=")
    return ""


def _unknown_fields(obj: Any, schema: dict[str, Any], prefix: str) -> list[str]:
    from simcluster.apiserver import schemas

    resolved = schemas.field({"properties": {"x": schema}}, "x") if schema else {}
    if not isinstance(obj, dict) or not resolved:
        return []
    properties = resolved.get("properties")
    if properties is None:
        return []
    out = []
    for key, value in obj.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in properties:
            out.append(path)
        elif isinstance(value, dict):
            out += _unknown_fields(value, schemas.field(resolved, key), path)
        elif isinstance(value, list):
            item = schemas.items(schemas.field(resolved, key))
            for index, element in enumerate(value):
                out += _unknown_fields(element, item, f"{path}[{index}]")
    return out


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise StoreError(400, "BadRequest", "request body is not JSON") from None
    if not isinstance(value, dict):
        raise StoreError(400, "BadRequest", "request body is not an object")
    return value

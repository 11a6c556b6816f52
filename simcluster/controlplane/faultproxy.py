"""A fault-injecting proxy between a client (the awaiter, kubectl) and the real API server, on
loopback: the faults the simulated API server injects, with the same rules (`Fault`: method,
path, watch, status, retry_after, reset, delay, cut_after_events, times, probability), so that
a chaos or integration test switches between the two by what it points the client at.

What a matching rule does:
- `delay`: the request waits that long first (a stall), then the rest of the rule applies;
- `reset`: the connection is reset (RST), no answer;
- `status` (with no `cut_after_events`): answered by the proxy with a `Status` of that code
  (`Retry-After` from `retry_after`; 410 is the real `Expired` "too old resource version");
- `cut_after_events=N` on a watch: N events pass, then the connection drops mid-stream;
  with `status=410` the stream instead ends cleanly with the ERROR event the real server sends
  when a watch's resourceVersion is too old. The API server's watch cache can hide an etcd
  compaction, so this is the dependable way to see a 410 from the real control plane.

TLS both ways: the proxy serves its own certificate (signed by the control plane's CA, so the
admin kubeconfig's CA verifies it) and talks TLS to the API server, so the API server still
sees the client's own identity:
- a bearer token (a ServiceAccount's) passes through as it is;
- a client certificate cannot pass a TLS proxy, so the proxy checks it against the cluster CA
  and goes upstream as `upstream_identity` (the admin) impersonating the certificate's user and
  groups (`Impersonate-User`, `Impersonate-Group`): RBAC decides for that user, and the audit
  log names it as `impersonatedUser`. A kubeconfig with client certificates works through the
  proxy by changing only its server;
- a request with neither goes upstream as `upstream_identity` (none: anonymous).
Not proxied: protocol upgrades (`kubectl exec`, `port-forward`); a 410 rule's ERROR event is
JSON, for JSON watches (what the awaiter asks for).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from simcluster.controlplane.certificates import KeyPair
from simcluster.controlplane.endpoints import Endpoint

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
REASONS = {
    410: "Expired",
    429: "TooManyRequests",
    500: "InternalError",
    502: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class Rule(Protocol):
    """A fault rule, as the simulated API server's `Fault` has it."""

    status: int
    retry_after: float | None
    reset: bool
    delay: float
    cut_after_events: int | None


class Rules(Protocol):
    """The rule book, as the simulated API server's `Faults`: the rule for one request, if any
    (counting it), so the same `Faults` object can drive either server."""

    def pick(self, method: str, path: str, watch: bool, agent: str = "") -> Rule | None: ...


@dataclass(frozen=True)
class Exchange:
    """One request through the proxy, for tests: what it was and what the proxy did."""

    method: str
    path: str
    watch: bool
    outcome: str  # "forwarded 200", "injected 503", "reset", "cut after 2", "gone after 0"


def status_body(code: int, message: str, *, retry_after: float | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": REASONS.get(code, "InternalError"),
        "code": code,
    }
    if retry_after is not None:
        body["details"] = {"retryAfterSeconds": max(1, round(retry_after))}
    return body


def gone_event(resource_version: str) -> bytes:
    """The ERROR event a real API server sends when a watch starts from a compacted version."""
    status = status_body(410, f"too old resource version: {resource_version or '1'} (0)")
    return json.dumps({"type": "ERROR", "object": status}, separators=(",", ":")).encode() + b"\n"


class FaultProxy:
    """`FaultProxy(upstream=..., upstream_ca=..., serving=..., rules=...)`, `start()`, point the
    client at `url`, `stop()`. `exchanges` lists every request it saw."""

    def __init__(
        self,
        *,
        upstream: str,
        upstream_ca: Path,
        serving: KeyPair,
        rules: Rules,
        upstream_identity: KeyPair | None = None,
    ) -> None:
        target = urlsplit(upstream)
        self.upstream_host = target.hostname or "127.0.0.1"
        self.upstream_port = target.port or 443
        self.rules = rules
        self.exchanges: list[Exchange] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._open: set[http.client.HTTPSConnection] = set()
        self._anonymous = ssl.create_default_context(cafile=str(upstream_ca))
        self._identified = ssl.create_default_context(cafile=str(upstream_ca))
        if upstream_identity is not None:
            self._identified.load_cert_chain(
                str(upstream_identity.cert), str(upstream_identity.key)
            )
        self.impersonates = upstream_identity is not None
        serving_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        serving_context.load_cert_chain(str(serving.cert), str(serving.key))
        serving_context.verify_mode = ssl.CERT_OPTIONAL  # client certificates: impersonated
        serving_context.load_verify_locations(cafile=str(upstream_ca))
        serving_context.set_alpn_protocols(["http/1.1"])
        self._server = _Server(("127.0.0.1", 0), _Handler, proxy=self, tls=serving_context)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fault-proxy", daemon=True
        )

    @classmethod
    def in_front_of(cls, endpoint: Endpoint, *, rules: Rules, directory: Path) -> FaultProxy:
        """A proxy before a running control plane, with a serving certificate from its CA and
        its admin as the upstream identity (impersonating certificate users). Not started."""
        return cls(
            upstream=endpoint.server,
            upstream_ca=endpoint.ca_cert,
            serving=endpoint.serving_certificate(directory=directory),
            rules=rules,
            upstream_identity=KeyPair(endpoint.admin_cert, endpoint.admin_key),
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        with self.lock:
            open_now = list(self._open)
        for connection in open_now:  # ends the watches still streaming
            if connection.sock is not None:
                with contextlib.suppress(OSError):
                    connection.sock.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def record(self, exchange: Exchange) -> None:
        with self.lock:
            self.exchanges.append(exchange)

    def connect(self, *, authorized: bool) -> http.client.HTTPSConnection:
        """A new connection upstream; with the upstream identity when the client sent no
        token of its own."""
        context = self._anonymous if authorized else self._identified
        connection = http.client.HTTPSConnection(
            self.upstream_host, self.upstream_port, context=context, timeout=None
        )
        with self.lock:
            self._open.add(connection)
        return connection

    def release(self, connection: http.client.HTTPSConnection) -> None:
        with self.lock:
            self._open.discard(connection)
        connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        proxy: FaultProxy,
        tls: ssl.SSLContext,
    ) -> None:
        self.proxy = proxy
        self.tls = tls
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        raw, address = super().get_request()
        return self.tls.wrap_socket(raw, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-stream is normal here (resets, cut watches)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:
        try:
            self.connection.do_handshake()
        except (OSError, ssl.SSLError):
            return
        super().handle()

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # ------------------------------------------------------------------ one request

    def _handle(self) -> None:
        proxy = self.server.proxy
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        watch = query.get("watch", [""])[-1] in ("true", "1")
        body = self._read_body()
        rule = proxy.rules.pick(self.command, url.path, watch, self.headers.get("User-Agent") or "")

        def done(outcome: str) -> None:
            proxy.record(Exchange(self.command, url.path, watch, outcome))

        if rule is not None and rule.delay and proxy.stopping.wait(rule.delay):
            return
        if rule is not None and rule.reset:
            done("reset")
            self._reset()
            return
        if rule is not None and rule.cut_after_events is None and rule.status:
            done(f"injected {rule.status}")
            self._answer_status(rule)
            return
        cut = rule.cut_after_events if rule is not None else None
        gone = rule is not None and rule.status == 410
        self._forward(body=body, watch=watch, cut=cut, gone=gone, query=query, done=done)

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def _answer_status(self, rule: Rule) -> None:
        message = (
            "too old resource version" if rule.status == 410 else f"injected fault {rule.status}"
        )
        payload = json.dumps(status_body(rule.status, message, retry_after=rule.retry_after))
        self.send_response(rule.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if rule.retry_after is not None:
            self.send_header("Retry-After", f"{rule.retry_after:g}")
        self.end_headers()
        self.wfile.write(payload.encode())

    def _reset(self) -> None:
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raw = socket.socket(fileno=self.connection.detach())
            raw.close()  # close the TCP socket itself, with no TLS goodbye: a reset
        except OSError:
            pass

    def _cut(self) -> None:
        """End a stream mid-way: TCP FIN with no TLS close_notify and no last chunk, as a
        dropped connection looks to the client (a reset here would make the kernel discard
        the events it has not read yet)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # ------------------------------------------------------------------ forwarding

    def _forward(
        self,
        *,
        body: bytes | None,
        watch: bool,
        cut: int | None,
        gone: bool,
        query: dict[str, list[str]],
        done: Any,
    ) -> None:
        proxy = self.server.proxy
        if not watch:  # only watches are cut or ended with a 410 event
            cut, gone = None, False
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        names = {k.lower() for k, _ in headers}
        authorized = "authorization" in names
        certified = _certificate_identity(self.connection.getpeercert())
        asks_impersonation = any(name.startswith("impersonate-") for name in names)
        if certified and proxy.impersonates and not (authorized or asks_impersonation):
            user, groups = certified
            headers += [("Impersonate-User", user)]
            headers += [("Impersonate-Group", group) for group in groups]
        upstream = proxy.connect(authorized=authorized)
        try:
            if cut == 0 and gone:  # the real server answers an expired start at once
                done("gone after 0")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._end_gone(query)
                return
            upstream.putrequest(self.command, self.path, skip_accept_encoding=True)
            for key, value in headers:  # a list: Impersonate-Group repeats
                upstream.putheader(key, value)
            if body is not None:
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            if response.getheader("Transfer-Encoding", "").lower() != "chunked":
                payload = response.read()
                done(f"forwarded {response.status}")
                self._send_head(response, length=len(payload))
                self.wfile.write(payload)
                return
            self._send_head(response, length=None)
            content_type = response.getheader("Content-Type", "")
            parts = _events(response, content_type) if watch else _blocks(response)
            sent = self._stream(parts, cut=cut)
            if cut is not None and sent >= cut:
                done(f"{'gone' if gone else 'cut'} after {sent}")
                if gone:
                    self._end_gone(query)
                else:
                    self._cut()
                return
            done(f"forwarded {response.status}")
            self._write_chunk(b"")
        except (OSError, http.client.HTTPException):
            self.close_connection = True
        finally:
            proxy.release(upstream)

    def _send_head(self, response: http.client.HTTPResponse, *, length: int | None) -> None:
        self.log_request(response.status)
        self.send_response_only(response.status, response.reason)  # Date: the upstream's
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _stream(self, events: Iterator[bytes], *, cut: int | None) -> int:
        """Pass events on, one chunk each, until the upstream ends or `cut` were sent."""
        sent = 0
        if cut == 0:
            return sent
        for event in events:
            self._write_chunk(event)
            sent += 1
            if cut is not None and sent >= cut:
                break
        return sent

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_gone(self, query: dict[str, list[str]]) -> None:
        self._write_chunk(gone_event(query.get("resourceVersion", [""])[-1]))
        self._write_chunk(b"")
        self.close_connection = True


def _blocks(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """Any other chunked body (a large list), passed on as it comes."""
    while block := response.read1(65536):
        yield block


def _events(response: http.client.HTTPResponse, content_type: str) -> Iterator[bytes]:
    """A watch stream's events: JSON lines, or length-prefixed protobuf frames."""
    if "protobuf" in content_type:
        while True:
            prefix = response.read(4)
            if len(prefix) < 4:
                return
            (length,) = struct.unpack(">I", prefix)
            yield prefix + response.read(length)
    while True:
        line = response.readline()
        if not line:
            return
        yield line


def _certificate_identity(certificate: Any) -> tuple[str, list[str]] | None:
    """A verified client certificate's user (CN) and groups (O), as the API server reads them."""
    if not certificate:
        return None
    user, groups = "", []
    for relative_name in certificate.get("subject", ()):
        for key, value in relative_name:
            if key == "commonName":
                user = value
            elif key == "organizationName":
                groups.append(value)
    return (user, groups) if user else None

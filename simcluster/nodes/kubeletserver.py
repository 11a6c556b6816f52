"""`KubeletServer`: the kubelets' HTTPS port, which kube-apiserver asks for `kubectl logs`.

A real kube-apiserver answers `GET pods/NAME/log` by asking the kubelet of the pod's node for
`/containerLogs/{namespace}/{pod}/{container}` on the node's `daemonEndpoints.kubeletEndpoint`
port, forwarding `follow`, `tailLines`, `timestamps`, `limitBytes`, `sinceSeconds` and
`previous`. One server serves every simulated node (they all live in this process), on
127.0.0.1, from the logs the kubelets keep (`ApiHost.logs`): as the simulated API server does,
an awaiter pod's process output, an empty log for any other started pod, 400 for a container
that is still waiting or not in the pod. `follow` streams until the process ends; `tailLines`
and `limitBytes` are honoured; `timestamps` and `sinceSeconds` are accepted and ignored (lines
carry no times here). `exec`, `attach` and `portForward` are not served.

With a `client_ca`, it asks every client for a certificate that CA signed (as a kubelet with
`--client-ca-file`; a real one then asks the API server to authorize `nodes/proxy`, which this
one does not)."""

from __future__ import annotations

import itertools
import ssl
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from simcluster.apiclient import Json
from simcluster.nodes.logview import LogError, log_view

LOGS_PREFIX = "/containerLogs/"
FOLLOW_POLL_SECONDS = 1.0  # a follower rechecks this often even if nothing wakes it


@dataclass(frozen=True)
class ServingTls:
    """The kubelet's serving certificate and key, and the CA its clients' certificates must
    come from (None: no client certificate asked for)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


class PodLogs(Protocol):
    """What the server reads of the kubelets (apihost.ApiHost)."""

    def pod_named(self, namespace: str, name: str) -> Json | None: ...

    def logged(self, key: tuple[str, str]) -> bytes | None: ...

    def running(self, key: tuple[str, str]) -> bool: ...

    def wait_for_log(self, key: tuple[str, str], *, longer_than: int, timeout: float) -> None: ...


@dataclass(frozen=True)
class LogQuery:
    namespace: str
    pod: str
    container: str
    follow: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None


def parse(target: str) -> LogQuery | None:
    """The log request a kubelet URL names, or None for any other path."""
    url = urlsplit(target)
    if not url.path.startswith(LOGS_PREFIX):
        return None
    parts = [unquote(part) for part in url.path[len(LOGS_PREFIX) :].split("/")]
    if len(parts) != 3 or not all(parts):
        return None
    query = {key: values[-1] for key, values in parse_qs(url.query).items()}
    return LogQuery(
        namespace=parts[0],
        pod=parts[1],
        container=parts[2],
        follow=query.get("follow") in ("true", "1"),
        tail_lines=_count(query.get("tailLines")),
        limit_bytes=_count(query.get("limitBytes")),
    )


def _count(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def opening(logs: PodLogs, query: LogQuery) -> tuple[bytes, int]:
    """What the log holds now, cut to `tailLines`, and how long it is whole (where a follower
    goes on from); `LogError` as the simulated API server answers (apiserver/podlogs.py)."""
    pod = logs.pod_named(query.namespace, query.pod)
    if pod is None:
        raise LogError(HTTPStatus.NOT_FOUND, f'pod "{query.pod}" does not exist')
    data = logs.logged((query.namespace, query.pod))
    return log_view(pod, container=query.container, data=data, tail_lines=query.tail_lines)


def following(logs: PodLogs, key: tuple[str, str], sent: int) -> Iterator[bytes]:
    """What the process writes after byte `sent` of its log, until it ends."""
    while True:
        logs.wait_for_log(key, longer_than=sent, timeout=FOLLOW_POLL_SECONDS)
        running = logs.running(key)  # before reading: nothing written after it is lost
        data = logs.logged(key) or b""
        if len(data) > sent:
            yield data[sent:]
            sent = len(data)
        if not running:
            return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # headers and body go in separate writes: with Nagle's algorithm the body waited for the
    # API server's delayed ACK on a kept-alive connection, 40 ms a request (measured: 48 ms)
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        query = parse(self.path)
        if query is None:
            self._send(HTTPStatus.NOT_FOUND, b"404 page not found\n")
            return
        try:
            data, whole = opening(self.server.logs, query)
        except LogError as error:
            self._send(error.status, error.message.encode())
            return
        if not query.follow:
            self._send(HTTPStatus.OK, _limited(data, query.limit_bytes))
            return
        self._stream(query, data, whole)

    def _stream(self, query: LogQuery, data: bytes, whole: int) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        left = query.limit_bytes
        key = (query.namespace, query.pod)
        try:
            for chunk in itertools.chain([data], following(self.server.logs, key, whole)):
                if left is not None:
                    chunk, left = chunk[:left], left - len(chunk[:left])
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                if left == 0:
                    break
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def _send(self, status: HTTPStatus, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the API server's audit log records each `pods/log` request."""


def _limited(data: bytes, limit: int | None) -> bytes:
    return data if limit is None else data[:limit]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *, logs: PodLogs, tls: ServingTls) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.logs = logs
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls.cert), str(tls.key))
        if tls.client_ca is not None:
            context.load_verify_locations(str(tls.client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
        # the handshake happens in the request's thread, not in the accepting one
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet for a client without an acceptable certificate, or one that went away."""
        if not isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError)):
            super().handle_error(request, client_address)


class KubeletServer:
    """Bound at construction (nodes registered before `start` advertise its port); serves from
    `start` until `stop`."""

    def __init__(self, *, logs: PodLogs, tls: ServingTls) -> None:
        self._server = _Server(logs=logs, tls=tls)
        self.host = "127.0.0.1"
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="kubelets-server",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

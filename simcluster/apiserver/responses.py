"""How the simulated API server answers a request: a Status error's body, a whole response
(JSON or bytes, with its Content-Length), a chunked stream (watches, `kubectl logs -f`) and a
reset connection (an injected fault); each noted in the request's `RequestRecord`."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any


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
    # called as a whole answer is about to go out (its audit entry): a client that has read
    # the answer finds the entry there
    on_answer: Callable[[], None] | None = None


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


def send(
    handler: BaseHTTPRequestHandler,
    record: RequestRecord,
    code: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    send_bytes(handler, record, code, json.dumps(body).encode(), headers)


def send_bytes(
    handler: BaseHTTPRequestHandler,
    record: RequestRecord,
    code: int,
    data: bytes,
    headers: dict[str, str] | None = None,
    *,
    content_type: str = "application/json",
) -> None:
    record.status = code
    handler.send_response(code)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    if record.on_answer is not None:
        record.on_answer()
    handler.wfile.write(data)
    record.bytes_sent += len(data)


def start_chunked(
    handler: BaseHTTPRequestHandler, record: RequestRecord, *, content_type: str
) -> None:
    record.status = 200
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()


def write_chunk(handler: BaseHTTPRequestHandler, record: RequestRecord, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()
    record.bytes_sent += len(data)


def end_chunked(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()


def reset(handler: BaseHTTPRequestHandler, record: RequestRecord) -> None:
    """Drop the connection with a TCP reset (SO_LINGER 0), as a failing proxy would."""
    record.status = -1
    handler.close_connection = True
    try:
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
    except OSError:
        pass

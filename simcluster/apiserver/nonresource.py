"""The paths that name no resource: `/version`, the health checks, discovery (`/api`, `/apis`,
each group and group version) and the OpenAPI v3 documents; GET only."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

from simcluster.apiserver import discovery
from simcluster.apiserver.kinds import group_versions
from simcluster.apiserver.responses import RequestRecord, send, send_bytes
from simcluster.apiserver.store import StoreError


def serve_non_resource(
    handler: BaseHTTPRequestHandler, record: RequestRecord, method: str, path: str
) -> None:
    path = path.rstrip("/") or "/"
    if method != "GET":
        raise StoreError(405, "MethodNotAllowed", "the server does not allow this method")
    if path == "/version":
        send(handler, record, 200, discovery.VERSION)
    elif path in ("/healthz", "/livez", "/readyz"):
        send_bytes(handler, record, 200, b"ok", content_type="text/plain")
    elif path == "/api":
        send(handler, record, 200, discovery.core_versions())
    elif path == "/apis":
        send(handler, record, 200, discovery.group_list())
    elif path == "/openapi/v3":
        send(handler, record, 200, discovery.openapi_root())
    elif path.startswith("/openapi/v3/") and discovery.openapi_document(path[12:]):
        send_bytes(handler, record, 200, discovery.openapi_document(path[12:]) or b"")
    elif path in group_versions():
        send(handler, record, 200, discovery.resource_list(path) or {})
    elif path.startswith("/apis/") and path.count("/") == 2 and discovery.group(path[6:]):
        send(handler, record, 200, discovery.group(path[6:]) or {})
    else:
        raise StoreError(404, "NotFound", "the server could not find the requested resource")

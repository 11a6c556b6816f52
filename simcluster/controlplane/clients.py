"""A small JSON client for the control plane's API, on the standard library: what tests and
the harness need (create, read, delete, wait for a condition), nothing of a real client."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Json = dict[str, Any]


class ApiError(RuntimeError):
    def __init__(self, *, status: int, method: str, path: str, body: Json) -> None:
        super().__init__(f"{method} {path}: {status} {body.get('message', body)}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Client:
    """`server` is `https://127.0.0.1:PORT`; identity is a client certificate or a token."""

    server: str
    ca: Path | None
    cert: Path | None = None
    key: Path | None = None
    token: str | None = None
    timeout: float = 30.0

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        if self.ca is None:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert is not None and self.key is not None:
            context.load_cert_chain(str(self.cert), str(self.key))
        return context

    def request(
        self, method: str, path: str, body: Json | None = None, *, content_type: str = ""
    ) -> tuple[int, Json]:
        """The status and the decoded body (a non-JSON body as `{"text": ...}`); no raise."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type or "application/json"
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.server + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout, context=self._context()
            ) as r:
                return r.status, _decode(r.read())
        except urllib.error.HTTPError as error:
            return error.code, _decode(error.read())

    def call(self, method: str, path: str, body: Json | None = None, **kw: str) -> Json:
        status, decoded = self.request(method, path, body, **kw)
        if status >= 400:
            raise ApiError(status=status, method=method, path=path, body=decoded)
        return decoded

    def get(self, path: str) -> Json:
        return self.call("GET", path)

    def create(self, path: str, body: Json) -> Json:
        return self.call("POST", path, body)

    def delete(self, path: str) -> Json:
        return self.call("DELETE", path)

    def exists(self, path: str) -> bool:
        status, decoded = self.request("GET", path)
        if status == 404:
            return False
        if status >= 400:
            raise ApiError(status=status, method="GET", path=path, body=decoded)
        return True

    def wait_for(
        self,
        path: str,
        condition: Callable[[Json], bool] = lambda _: True,
        *,
        timeout: float = 30.0,
        what: str = "",
    ) -> Json:
        """Poll `GET path` until it exists and `condition` holds; the object then."""
        deadline = time.monotonic() + timeout
        last: Json = {}
        while time.monotonic() < deadline:
            status, last = self.request("GET", path)
            if status == 200 and condition(last):
                return last
            time.sleep(0.1)
        raise TimeoutError(f"{what or path}: not within {timeout:g}s (last: {str(last)[:300]})")


def _decode(raw: bytes) -> Json:
    try:
        decoded = json.loads(raw)
    except ValueError:
        return {"text": raw.decode(errors="replace")}
    return decoded if isinstance(decoded, dict) else {"items": decoded}

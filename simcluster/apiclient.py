"""The simulator's one HTTP client of an API server, simulated or real (the kubelets', the
control-plane harness's and the tests'): a kubeconfig's server and credentials (a client
certificate or a bearer token, a CA) or the same as files, JSON requests over kept-alive
connections (urllib3), what tests need on top (create, read, delete, wait for a condition), and
watch streams read line by line. Nothing here knows which API server answers."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import ssl
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
import yaml

Json = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
# What a request raises when no answer came: refused, reset, timed out, TLS failed.
UNREACHABLE: tuple[type[Exception], ...] = (OSError, urllib3.exceptions.HTTPError)


class ApiError(RuntimeError):
    def __init__(self, *, status: int, method: str, path: str, body: Json) -> None:
        super().__init__(f"{method} {path}: {status} {body.get('message', body)}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Credentials:
    """What a kubeconfig's current context says: where and who."""

    server: str
    ca_data: bytes | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    token: str | None = None
    insecure: bool = False


def _read(entry: Json, key: str, base: Path) -> bytes | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        return (base / str(entry[key])).read_bytes()
    return None


def load_kubeconfig(path: str | Path, *, context: str | None = None) -> Credentials:
    """The current (or named) context's cluster and user, as kubectl reads them."""
    config = yaml.safe_load(Path(path).read_text())
    base = Path(path).parent
    name = context or config["current-context"]
    chosen = next(c["context"] for c in config["contexts"] if c["name"] == name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == chosen["cluster"])
    users: list[Json] = config["users"]
    user: Json = next((u["user"] for u in users if u["name"] == chosen.get("user")), {})
    return Credentials(
        server=cluster["server"].rstrip("/"),
        ca_data=_read(cluster, "certificate-authority", base),
        cert_data=_read(user, "client-certificate", base),
        key_data=_read(user, "client-key", base),
        token=user.get("token"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )


def _ssl_context(credentials: Credentials) -> ssl.SSLContext:
    cadata = credentials.ca_data.decode() if credentials.ca_data else None
    context = ssl.create_default_context(cadata=cadata)
    if credentials.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if credentials.cert_data and credentials.key_data:
        # ssl loads a certificate chain from files only: written, loaded, removed at once
        with tempfile.TemporaryDirectory(prefix="kubelet-tls-") as folder:
            cert, key = Path(folder) / "client.crt", Path(folder) / "client.key"
            cert.write_bytes(credentials.cert_data)
            key.write_bytes(credentials.key_data)
            os.chmod(key, 0o600)
            context.load_cert_chain(str(cert), str(key))
    return context


class Api:
    """JSON requests to one API server; thread-safe (one connection pool)."""

    def __init__(self, credentials: Credentials, *, timeout: float = 30.0) -> None:
        self.server = credentials.server
        self.credentials = credentials
        self.headers = {"Accept": "application/json"}
        if credentials.token:
            self.headers["Authorization"] = f"Bearer {credentials.token}"
        self.timeout = timeout
        https = self.server.startswith("https")
        self.pool: urllib3.PoolManager = urllib3.PoolManager(
            num_pools=2,
            maxsize=16,
            retries=False,
            ssl_context=_ssl_context(credentials) if https else None,
        )

    @classmethod
    def from_kubeconfig(cls, path: str | Path, *, context: str | None = None) -> Api:
        return cls(load_kubeconfig(path, context=context))

    @classmethod
    def from_files(
        cls,
        server: str,
        *,
        ca: Path,
        cert: Path | None = None,
        key: Path | None = None,
        token: str | None = None,
    ) -> Api:
        """PEM files as the control-plane harness writes them: the CA, and a client certificate
        and key or a bearer token."""
        credentials = Credentials(
            server=server,
            ca_data=ca.read_bytes(),
            cert_data=cert.read_bytes() if cert else None,
            key_data=key.read_bytes() if key else None,
            token=token,
        )
        return cls(credentials)

    def as_agent(self, user_agent: str) -> Api:
        """The same client (server, credentials, connection pool) sending `user_agent`."""
        clone = copy.copy(self)
        clone.headers = {**self.headers, "User-Agent": user_agent}
        return clone

    def request(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Json]:
        """The status and the decoded body; no raise for an HTTP error status. `headers` adds
        to the client's (e.g. `Impersonate-User`)."""
        url = self.server + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {**self.headers, **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = content_type
        response = self.pool.request(method, url, body=data, headers=headers, timeout=self.timeout)
        return response.status, _decode(response.data)

    def call(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Json:
        status, decoded = self.request(method, path, body, query=query, content_type=content_type)
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
        """Whether `GET path` finds the object; an error other than 404 raises."""
        try:
            self.get(path)
        except ApiError as error:
            if error.status == 404:
                return False
            raise
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

    def watch(self, path: str, query: dict[str, str]) -> Stream:
        """A watch stream: its events, one decoded line each, until the server ends it."""
        url = self.server + path + "?" + urllib.parse.urlencode({**query, "watch": "true"})
        response = self.pool.request(
            "GET",
            url,
            headers=self.headers,
            preload_content=False,
            timeout=urllib3.Timeout(connect=self.timeout, read=None),
        )
        if response.status >= 400:
            body = _decode(response.read())
            response.release_conn()
            raise ApiError(status=response.status, method="WATCH", path=path, body=body)
        return Stream(response)

    def close(self) -> None:
        self.pool.clear()


class Stream:
    """A watch response's events; `close` from another thread ends the iteration."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self.response = response
        self.closed = False

    def __iter__(self) -> Iterator[Json]:
        try:
            for line in self.response:
                if line.strip():
                    yield json.loads(line)
        except (AttributeError, ValueError, OSError, urllib3.exceptions.HTTPError):
            if not self.closed:  # closed from another thread: urllib3 may fail any which way
                raise
        finally:
            self.response.release_conn()

    def close(self) -> None:
        """End the iteration (also once it has ended: its connection is then back in the
        pool, or shut already, which urllib3 refuses to shut again)."""
        self.closed = True
        shutdown = getattr(self.response, "shutdown", None)
        if shutdown is not None:
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                shutdown()
        self.response.close()


def _decode(raw: bytes) -> Json:
    try:
        decoded = json.loads(raw) if raw else {}
    except ValueError:
        return {"text": raw.decode(errors="replace")}
    return decoded if isinstance(decoded, dict) else {"items": decoded}

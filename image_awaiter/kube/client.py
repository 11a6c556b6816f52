"""Kubernetes access, requests: raw JSON requests and watch streams, and the one retry policy.

With connecting.py and apierrors.py, the access layer: the only modules that import
`kubernetes`, `urllib3` and `tenacity` (an import-linter contract checks it). Responses are read
raw (`_preload_content=False`) and parsed as plain JSON: the client's typed models cost seconds and
hundreds of MB per list on large clusters. Transient faults (connection errors, timeouts, 429
with Retry-After, 500/502/503/504) are retried with exponential backoff and jitter, never past the
caller's deadline nor past a per-request budget; everything else becomes an `ApiError`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import structlog
import urllib3
from kubernetes.client.api_client import ApiClient
from kubernetes.client.exceptions import ApiException

from image_awaiter.core.errors import ApiError, Gone
from image_awaiter.kube.api import KubeApi
from image_awaiter.kube.apierrors import status_body, translate
from image_awaiter.kube.chunked import ChunkError, Line, chunked_lines, reader
from image_awaiter.kube.resources import SERVER_VERSION, Address
from image_awaiter.kube.retrying import (
    RETRY_BUDGET,
    TRANSIENT_STATUSES,
    Limits,
    SilentStream,
    Streak,
    TransientError,
    parse_retry_after,
    retrying,
    timeout_for,
)

log = structlog.get_logger("image_awaiter.kube.client")
T = TypeVar("T")

REQUEST_TIMEOUT = 30.0  # seconds for one ordinary request


class ReadTimeout:
    """A watch stream's read timeout, which its reader may change while it reads: a streaming
    list waits briefly for its initial events, the watch it goes on as far longer. The stream
    applies a change before its next read."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Kube:
    """Raw JSON access to the API with retries bounded by a deadline (monotonic seconds)."""

    def __init__(self, client: ApiClient, *, deadline: float | None = None) -> None:
        self.client = client
        self.deadline = deadline
        self.streak = Streak()  # one retry budget for the run: see retrying.py

    def bounded(self, deadline: float) -> Kube:
        """The same client, its requests bounded by `deadline` instead (cleanup's own)."""
        return Kube(self.client, deadline=deadline)

    def request(
        self,
        method: str,
        address: Address,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        budget: float = RETRY_BUDGET,
        deadline: float | None = None,
    ) -> dict[str, Any]:
        """Send one request and return its JSON object, retrying transient failures."""
        return self.request_decoded(
            method,
            address,
            query=query,
            body=body,
            budget=budget,
            deadline=deadline,
            decode=json_object,
        )

    def request_decoded(
        self,
        method: str,
        address: Address,
        *,
        decode: Callable[[bytes], T],
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        budget: float = RETRY_BUDGET,
        deadline: float | None = None,
    ) -> T:
        """Send one request and return `decode(body)`; a body that does not decode (a
        truncated response) is retried like any transient failure."""
        limits = Limits.of(
            budget=budget, deadlines=(deadline, self.deadline), since=self.streak.since
        )
        try:
            for attempt in retrying(limits):
                with attempt:
                    data = self._request_once(
                        method, address, query=query, body=body, deadline=deadline
                    )
                    try:
                        return decode(data)
                    except ValueError as error:
                        raise TransientError(
                            f"{method} {address}: undecodable response: {_first_line(error)}"
                        ) from None
        except TransientError as error:
            raise limits.gave_up(error, host=self.client.configuration.host) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _request_once(
        self,
        method: str,
        address: Address,
        *,
        query: Mapping[str, str | int] | None,
        body: Any,
        deadline: float | None,
    ) -> bytes:
        timeout = timeout_for(REQUEST_TIMEOUT, (deadline, self.deadline))
        response = _send(self, method, address, query=query, body=body, timeout=(timeout, timeout))
        try:
            data: bytes = response.data
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise TransientError(f"{method} {address}: {_first_line(error)}") from None
        finally:
            response.release_conn()
        if response.status >= 400:
            raise translate(method, address, response.status, data, query)
        return data

    def stream(
        self,
        address: Address,
        *,
        query: Mapping[str, str | int],
        read_timeout: ReadTimeout,
    ) -> Generator[Line, None, None]:
        """Open a watch (retrying the connection) and yield its event lines as they arrive
        (each valid until the next is asked for: `chunked_lines`).

        Ends when the server closes the stream; raises `TransientError` when the connection
        breaks, `SilentStream` when it stays silent for `read_timeout` seconds.
        """
        response = None
        limits = Limits.of(budget=RETRY_BUDGET, deadlines=(self.deadline,), since=self.streak.since)
        try:
            for attempt in retrying(limits):
                with attempt:
                    response = _send(
                        self,
                        "GET",
                        address,
                        query=query,
                        timeout=(
                            timeout_for(REQUEST_TIMEOUT, (self.deadline,)),
                            read_timeout.seconds,
                        ),
                    )
        except TransientError as error:
            raise limits.gave_up(error, host=self.client.configuration.host) from None
        assert response is not None
        if response.status >= 400:
            data = response.data
            response.release_conn()
            raise translate("WATCH", address, response.status, data, query)
        try:
            yield from _event_lines(response, read_timeout)
        finally:
            response.release_conn()


def _send(
    kube: Kube,
    method: str,
    address: Address,
    *,
    query: Mapping[str, str | int] | None,
    body: Any = None,
    timeout: tuple[float, float],
) -> urllib3.BaseHTTPResponse:
    """One attempt, its outcome counted in the run's failure streak (`retrying.Streak`)."""
    headers = {"Accept": "application/json", "User-Agent": "image-awaiter"}
    if body is not None:
        headers["Content-Type"] = content_type(method, body)
    serialized = kube.client.param_serialize(
        method=method,
        resource_path=address.path,
        query_params=[(k, str(v)) for k, v in (query or {}).items()],
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    try:
        rest = kube.client.call_api(*serialized, _request_timeout=timeout)
    except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
        # ApiException: the REST layer's own wrapper of SSL and config errors
        kube.streak.failed()
        raise TransientError(f"{method} {address}: {_first_line(error)}") from None
    response: urllib3.BaseHTTPResponse = rest.response
    if response.status not in TRANSIENT_STATUSES:
        kube.streak.answered()
        return response
    kube.streak.failed()
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    message = str(status_body(response.data).get("message") or response.reason or "")
    response.release_conn()
    raise TransientError(
        f"{method} {address}: HTTP {response.status} {message}".strip(), retry_after=retry_after
    )


def server_version(kube: KubeApi) -> str | None:
    """The API server's `gitVersion` (`v1.35.2-eks-1a2b3c`); None when it cannot be read
    within a few seconds (a caller then assumes nothing of it)."""
    try:
        body = kube.request("GET", SERVER_VERSION, budget=5.0)
    except ApiError as error:
        log.info("server.version_unknown", error=error.one_line())
        return None
    version = body.get("gitVersion")
    return version if isinstance(version, str) and version else None


def _event_lines(response: urllib3.BaseHTTPResponse, timeout: ReadTimeout) -> Iterator[Line]:
    """The non-empty lines of a watch stream as they arrive (see `chunked_lines` for how long
    each stays valid), each read within `timeout` (as it is when the read begins)."""
    raw = _unread_chunked(response)
    if raw is None:
        try:
            yield from _timed(
                _lines(response.stream(65536, decode_content=True)), response, timeout
            )
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise _broken(error) from None
        return
    complete = False
    try:
        yield from _timed(chunked_lines(reader(raw.fp)), response, timeout)
        complete = True
    except (OSError, ChunkError) as error:
        raise _broken(error) from None
    finally:
        # As urllib3 does: a body read to its end is closed and its connection reused; one
        # left half-read (the caller stopped early, or it broke) closes its connection.
        if complete:
            raw.close()
        else:
            response.close()


def _timed(
    lines: Iterator[Line], response: urllib3.BaseHTTPResponse, timeout: ReadTimeout
) -> Iterator[Line]:
    """`lines`, with a change of `timeout.seconds` applied to the socket before the next read."""
    applied = timeout.seconds
    for line in lines:
        yield line
        if timeout.seconds != applied:
            applied = timeout.seconds
            sock = getattr(response.connection, "sock", None)
            if sock is not None:
                sock.settimeout(applied)


def _broken(error: BaseException) -> TransientError:
    """A stream that broke, or stayed silent for its read timeout (`SilentStream`)."""
    silent = (TimeoutError, urllib3.exceptions.ReadTimeoutError)
    kind = SilentStream if isinstance(error, silent) else TransientError
    return kind(f"watch stream broke: {_first_line(error)}")


def _unread_chunked(response: urllib3.BaseHTTPResponse) -> Any:
    """The http.client response under a chunked, unencoded response whose body nothing has read
    yet: its buffered socket file (`fp`, just past the headers) is read in large blocks
    (`chunked.py`). None for any other response, which urllib3 reads."""
    raw = getattr(response, "_fp", None)
    body = getattr(raw, "fp", None)
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if (
        not getattr(response, "chunked", False)
        or encoding not in ("", "identity")
        or getattr(raw, "chunk_left", None) is not None
        or getattr(response, "chunk_left", None) is not None
        or not isinstance(body, io.BufferedReader)
    ):
        return None
    return raw


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def content_type(method: str, body: Any) -> str:
    """A PATCH says its kind by its body's shape, as kubectl's defaults: a list of operations
    is a JSON patch, an object a strategic merge patch (built-in kinds only)."""
    if method != "PATCH":
        return "application/json"
    if isinstance(body, list):
        return "application/json-patch+json"
    return "application/strategic-merge-patch+json"


def json_object(data: bytes) -> dict[str, Any]:
    """A JSON object body; anything else decodes to an empty mapping."""
    parsed = json.loads(data) if data else {}
    return parsed if isinstance(parsed, dict) else {}


def watch_error(status: Mapping[str, Any]) -> Exception:
    """The error an ERROR watch event carries: 410 Gone (the caller relists), else transient."""
    message = str(status.get("message") or "")
    if status.get("code") == 410:
        return Gone(message or "watch expired", status=410)
    return TransientError(f"watch error: {message or None}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]

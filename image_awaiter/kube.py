"""Kubernetes access, requests: raw JSON requests and watch streams, and the one retry policy.

With connecting.py and apierrors.py, the access layer: the only modules that import
`kubernetes`, `urllib3` and `tenacity` (an import-linter contract checks it). Responses are read
raw (`_preload_content=False`) and parsed as plain JSON: the client's typed models cost seconds and
hundreds of MB per list on large clusters. Transient faults (connection errors, timeouts, 429
with Retry-After, 500/502/503/504) are retried with exponential backoff and jitter, never past the
caller's deadline nor past a per-request budget; everything else becomes an `ApiError`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
import tenacity
import urllib3
from kubernetes.client.api_client import ApiClient
from kubernetes.client.exceptions import ApiException

from image_awaiter.apierrors import status_body, translate
from image_awaiter.errors import ApiError, DeadlineReached
from image_awaiter.resources import Address

log = structlog.get_logger("image_awaiter.kube")
T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
REQUEST_TIMEOUT = 30.0  # seconds for one ordinary request
RETRY_BUDGET = 30.0  # seconds of consecutive transient failures before one request gives up
MAX_BACKOFF = 5.0


class TransientError(Exception):
    """A failure worth retrying; `retry_after` is the server's hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Kube:
    """Raw JSON access to the API with retries bounded by a deadline (monotonic seconds)."""

    def __init__(self, client: ApiClient, *, deadline: float | None = None) -> None:
        self.client = client
        self.deadline = deadline

    # ------------------------------------------------------------------ ordinary requests

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
        limits = self._limits(budget=budget, deadline=deadline)
        try:
            for attempt in self._retrying(limits):
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
            raise self._gave_up(error, limits) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _gave_up(self, error: TransientError, limits: _Limits) -> ApiError:
        host = self.client.configuration.host
        kind: type[ApiError] = DeadlineReached if limits.deadline_first else ApiError
        until = " until the deadline" if limits.deadline_first else ""
        return kind(
            f"the Kubernetes API at {host} kept failing{until}: {error}",
            hint="check that the API server is reachable and healthy, then rerun",
        )

    def _request_once(
        self,
        method: str,
        address: Address,
        *,
        query: Mapping[str, str | int] | None,
        body: Any,
        deadline: float | None,
    ) -> bytes:
        timeout = self._timeout(REQUEST_TIMEOUT, deadline)
        response = self._send(
            method, address, query=query, body=body, timeout=(timeout, timeout)
        )
        try:
            data: bytes = response.data
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise TransientError(f"{method} {address}: {_first_line(error)}") from None
        finally:
            response.release_conn()
        if response.status >= 400:
            raise translate(method, address, response.status, data, query)
        return data

    # ------------------------------------------------------------------ watch streams

    def stream(
        self, address: Address, *, query: Mapping[str, str | int], read_timeout: float
    ) -> Iterator[bytes]:
        """Open a watch (retrying the connection) and yield its event lines as they arrive.

        Ends when the server closes the stream; raises `TransientError` when the connection
        breaks or stays silent for `read_timeout` seconds.
        """
        response = None
        limits = self._limits(budget=RETRY_BUDGET, deadline=None)
        try:
            for attempt in self._retrying(limits):
                with attempt:
                    response = self._send(
                        "GET",
                        address,
                        query=query,
                        timeout=(self._timeout(REQUEST_TIMEOUT, None), read_timeout),
                    )
        except TransientError as error:
            raise self._gave_up(error, limits) from None
        assert response is not None
        if response.status >= 400:
            data = response.data
            response.release_conn()
            raise translate("WATCH", address, response.status, data, query)
        try:
            yield from self._events(response)
        finally:
            response.release_conn()

    def _events(self, response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
        pending = b""
        try:
            for chunk in response.stream(65536, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield line
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise TransientError(f"watch stream broke: {_first_line(error)}") from None
        if pending.strip():
            yield pending

    # ------------------------------------------------------------------ plumbing

    def _send(
        self,
        method: str,
        address: Address,
        *,
        query: Mapping[str, str | int] | None,
        body: Any = None,
        timeout: tuple[float, float],
    ) -> urllib3.BaseHTTPResponse:
        headers = {"Accept": "application/json", "User-Agent": "image-awaiter"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        serialized = self.client.param_serialize(
            method=method,
            resource_path=address.path,
            query_params=[(k, str(v)) for k, v in (query or {}).items()],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            rest = self.client.call_api(*serialized, _request_timeout=timeout)
        except ApiException as error:  # the REST layer's own wrapper of SSL and config errors
            raise TransientError(f"{method} {address}: {_first_line(error)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise TransientError(f"{method} {address}: {_first_line(error)}") from None
        response: urllib3.BaseHTTPResponse = rest.response
        if response.status in TRANSIENT_STATUSES:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            message = str(status_body(response.data).get("message") or response.reason or "")
            response.release_conn()
            raise TransientError(
                f"{method} {address}: HTTP {response.status} {message}".strip(),
                retry_after=retry_after,
            )
        return response

    def _timeout(self, wanted: float, deadline: float | None) -> float:
        ends = [d for d in (deadline, self.deadline) if d is not None]
        if not ends:
            return wanted
        return max(0.5, min(wanted, min(ends) - time.monotonic()))

    def _limits(self, *, budget: float, deadline: float | None) -> _Limits:
        budget_end = time.monotonic() + budget
        ends = [d for d in (deadline, self.deadline) if d is not None]
        if ends and min(ends) < budget_end:
            return _Limits(give_up_at=min(ends), deadline_first=True)
        return _Limits(give_up_at=budget_end, deadline_first=False)

    def _retrying(self, limits: _Limits) -> tenacity.Retrying:
        """Retry transient failures until `limits.give_up_at`: each wait is cut short so that
        the last attempt happens at that moment, never after it."""

        def wait(state: tenacity.RetryCallState) -> float:
            return min(_wait_retry_after(state), max(0.0, limits.give_up_at - time.monotonic()))

        def stop(state: tenacity.RetryCallState) -> bool:
            return time.monotonic() >= limits.give_up_at

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientError),
            wait=wait,
            stop=stop,
            before_sleep=_log_retry,
            reraise=True,
        )


@dataclass(frozen=True, slots=True)
class _Limits:
    """When one request's retries end, and whether that is the caller's deadline (the run's
    time is up) rather than the per-request budget (the API is down for good)."""

    give_up_at: float
    deadline_first: bool


_exponential = tenacity.wait_exponential_jitter(multiplier=0.2, max=MAX_BACKOFF, jitter=0.3)


def _wait_retry_after(state: tenacity.RetryCallState) -> float:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    hint = error.retry_after if isinstance(error, TransientError) else None
    if hint is not None:
        return min(max(hint, 0.0), 60.0)
    return float(_exponential(state))


def _log_retry(state: tenacity.RetryCallState) -> None:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    log.info(
        "api.retry",
        attempt=state.attempt_number,
        error=str(error),
        wait=round(state.upcoming_sleep, 2),
    )


def json_object(data: bytes) -> dict[str, Any]:
    """A JSON object body; anything else decodes to an empty mapping."""
    parsed = json.loads(data) if data else {}
    return parsed if isinstance(parsed, dict) else {}


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]

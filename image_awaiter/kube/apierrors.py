"""Error translation: the one table that turns an API failure response into a typed error.

Callers catch `NotFound`, `Conflict`, `Forbidden`... and never compare status codes; every
error carries its exit code (errors.py) and, for a 403, the verb, resource and namespace to
grant, read from the request's `Address`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from image_awaiter.core.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    InvalidObject,
    NamespaceNotFound,
    NotFound,
    Unauthorized,
)
from image_awaiter.kube.resources import Address


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed response, as the table's wording functions see it."""

    method: str
    address: Address
    status: int
    message: str
    reason: str
    details: Mapping[str, Any]
    query: Mapping[str, str | int] | None


def _bad_request(f: Failure) -> ApiError:
    return BadRequest(_generic(f), status=f.status, reason=f.reason)


def _unauthorized(f: Failure) -> ApiError:
    return Unauthorized(
        f"unauthorised (401): {f.message}",
        status=f.status,
        reason=f.reason,
        hint="the credentials in the kubeconfig or service account token were rejected",
    )


def _forbidden(f: Failure) -> ApiError:
    namespace = f.address.namespace
    where = f" in namespace {namespace!r}" if namespace else " cluster-wide"
    verb, resource = f.address.verb(f.method, f.query), f.address.resource.qualified
    if f.address.subresource:
        resource = f"{f.address.resource.plural}/{f.address.subresource}"
    return Forbidden(
        f"forbidden (403): {f.message}",
        status=f.status,
        reason=f.reason,
        hint=f"grant verb {verb!r} on resource {resource!r}{where} to this identity",
    )


def _not_found(f: Failure) -> ApiError:
    if f.details.get("kind") == "namespaces":
        namespace = f.address.namespace or f.address.name or f.details.get("name")
        return NamespaceNotFound(
            f"namespace {namespace!r} not found: {f.message}",
            status=f.status,
            reason=f.reason,
            hint="create it or pass -n/--namespace",
        )
    return NotFound(_generic(f), status=f.status, reason=f.reason)


def _conflict(f: Failure) -> ApiError:
    return Conflict(_generic(f), status=f.status, reason=f.reason)


def _gone(f: Failure) -> ApiError:
    return Gone(f.message, status=f.status, reason=f.reason)


def _invalid(f: Failure) -> ApiError:
    return InvalidObject(
        f"the API rejected the DaemonSet as invalid: {f.message}",
        status=f.status,
        reason=f.reason,
        hint="fix the DaemonSet's field the API names, then rerun",
    )


def _generic(f: Failure) -> str:
    return f"{f.method} {f.address.path} failed ({f.status} {f.reason}): {f.message}"


ERRORS_BY_STATUS: Mapping[int, Callable[[Failure], ApiError]] = {
    400: _bad_request,
    401: _unauthorized,
    403: _forbidden,
    404: _not_found,
    409: _conflict,
    410: _gone,
    422: _invalid,
}


def translate(
    method: str,
    address: Address,
    status: int,
    data: bytes,
    query: Mapping[str, str | int] | None = None,
) -> ApiError:
    """The one place HTTP failures become errors carrying exit codes."""
    body = status_body(data)
    details = body.get("details")
    failure = Failure(
        method=method,
        address=address,
        status=status,
        message=str(body.get("message") or "").strip() or f"HTTP {status}",
        reason=str(body.get("reason") or ""),
        details=details if isinstance(details, dict) else {},
        query=query,
    )
    word = ERRORS_BY_STATUS.get(status)
    if word is None:
        return ApiError(_generic(failure), status=status, reason=failure.reason)
    return word(failure)


def status_body(data: bytes) -> dict[str, Any]:
    """The Status object of a failure response, or {} when the body is not one."""
    try:
        status = json.loads(data)
    except ValueError:
        return {}
    return status if isinstance(status, dict) else {}

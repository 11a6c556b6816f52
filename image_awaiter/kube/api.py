"""The client interface the rest of the package uses (`KubeApi`): JSON requests, decoded
requests, watch streams, and the same client bounded by another deadline. `client.Kube` is the
real one; a test may give any implementation of it (tests/unit/fakekube.py keeps objects in
memory), never a mock of our own functions."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from image_awaiter.kube.chunked import Line
from image_awaiter.kube.resources import Address

if TYPE_CHECKING:
    from image_awaiter.kube.client import ReadTimeout

T = TypeVar("T")


class KubeApi(Protocol):
    deadline: float | None  # monotonic; every request ends by it

    def bounded(self, deadline: float) -> KubeApi:
        """The same client, its requests bounded by `deadline` instead."""
        ...

    def request(
        self,
        method: str,
        address: Address,
        *,
        query: Mapping[str, str | int] | None = ...,
        body: Any = ...,
        budget: float = ...,
        deadline: float | None = ...,
    ) -> dict[str, Any]:
        """One request, its JSON object returned; transient failures retried; the rest
        raised as the `core.errors.ApiError` its status names."""
        ...

    def request_decoded(
        self,
        method: str,
        address: Address,
        *,
        decode: Callable[[bytes], T],
        query: Mapping[str, str | int] | None = ...,
        body: Any = ...,
        budget: float = ...,
        deadline: float | None = ...,
    ) -> T:
        """`request`, its body decoded by `decode` (a codec's list page)."""
        ...

    def stream(
        self, address: Address, *, query: Mapping[str, str | int], read_timeout: ReadTimeout
    ) -> Generator[Line, None, None]:
        """A watch: its event lines as they arrive, until the server ends it."""
        ...

"""The two ways an informer reads its initial state, as functions over a stream or the API.

A streaming list (KEP-3157 "WatchList": a watch with `sendInitialEvents=true`) is answered from
the API server's watch cache, one ADDED event per object and then a BOOKMARK annotated
`k8s.io/initial-events-end`; the awaiter holds one object at a time. Servers that refuse it get
paginated lists instead (quorum reads from etcd). Both return the items and a resourceVersion
for the caller to swap its store whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from image_awaiter.core.errors import BadRequest, InvalidObject
from image_awaiter.kube.api import KubeApi
from image_awaiter.kube.chunked import Line
from image_awaiter.kube.client import watch_error
from image_awaiter.kube.decoding import Codec, Event
from image_awaiter.kube.resources import Address
from image_awaiter.kube.retrying import SilentStream, TransientError

T = TypeVar("T")

# How servers refuse a streaming list: 422 `sendInitialEvents is forbidden for watch unless the
# WatchList feature gate is enabled` (1.27+ with the gate off) or `resourceVersionMatch is
# forbidden for watch` (1.19-1.26); 400 from some aggregated API servers.
WATCH_LIST_REFUSALS = (BadRequest, InvalidObject)


class Undecodable(TransientError):
    """A watch event the codec cannot read. Resuming from the last resourceVersion would
    replay the same event forever: the informer relists instead."""


class InitialEventsUnended(TransientError):
    """A streaming list was accepted but its initial events never ended with the bookmark
    (a server or proxy that dropped `sendInitialEvents` and answers as a plain watch): the
    informer reads pages instead."""


def decode_event(codec: Codec[T], line: Line) -> Event[T]:
    try:
        return codec.event(line)
    except ValueError as error:
        raise Undecodable(f"undecodable watch event: {error}") from None


def read_initial_events(
    lines: Iterator[Line], codec: Codec[T], *, name: str, wait: float
) -> tuple[dict[str, T], str]:
    """The initial events of a watch with `sendInitialEvents=true`: objects arrive as ADDED
    events until the bookmark that ends them; returns the items and that bookmark's
    resourceVersion, leaving the stream open so the same stream can go on as the watch.
    `resourceVersion` is unset in the request: the server serves a state at least as new as a
    quorum read would, from its watch cache.

    A server streams its initial events without pause; `wait` seconds with no object (the
    stream silent for its read timeout, or plain bookmarks only) mean the end bookmark is not
    coming: `InitialEventsUnended`."""
    items: dict[str, T] = {}
    last_object = time.monotonic()
    try:
        for line in lines:
            event = decode_event(codec, line)
            if event.initial_events_end:
                return items, event.resource_version
            if event.type != "BOOKMARK":
                last_object = time.monotonic()
                _initial_event(items, event)
            elif time.monotonic() - last_object >= wait:
                raise InitialEventsUnended(_unended(name, wait))
    except SilentStream:
        raise InitialEventsUnended(_unended(name, wait)) from None
    raise TransientError(f"{name} watch ended before its initial events did")


def _unended(name: str, wait: float) -> str:
    return f"{name}: no initial-events-end bookmark within {wait:g}s of the last object"


def _initial_event(items: dict[str, T], event: Event[T]) -> None:
    if event.type == "ERROR":
        raise watch_error(event.status or {})
    if event.record is None:
        items.pop(event.key, None)
    else:
        items[event.key] = event.record


def read_pages(
    kube: KubeApi,
    address: Address,
    codec: Codec[T],
    *,
    page_size: int,
    select: Callable[[dict[str, str | int]], None],
) -> tuple[dict[str, T], str]:
    """Read every page until no continue token; returns the items and the resourceVersion, for
    the caller to swap the store whole so readers never see half a list.

    No `resourceVersion`: each page is a quorum read from etcd. `resourceVersion=0` would be
    served from the watch cache, but the cache ignores `limit` (before Kubernetes 1.33's
    ListFromCacheSnapshot) and returns the whole list in one response: on 65,000 nodes
    about 1 GB that both sides would hold at once."""
    items: dict[str, T] = {}
    token = ""
    while True:
        query: dict[str, str | int] = {"limit": page_size}
        if token:
            query["continue"] = token
        select(query)
        page = kube.request_decoded("GET", address, query=query, decode=codec.page)
        for key, record in page.items:
            if record is not None:
                items[key] = record
        token = page.continue_token
        if not token:
            return items, page.resource_version

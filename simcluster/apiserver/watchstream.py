"""Watch streams of the simulated API server, as kube-apiserver sends them: the opening (every
matching object as ADDED for `resourceVersion` 0 or a streaming list, ended by the KEP-3157
bookmark; a 410 ERROR for a version older than the store keeps; nothing otherwise), then each
change that matches the selectors (an object that stops matching is DELETED for this watch),
bookmarks every `SimCluster.bookmark_interval` when asked, until `timeoutSeconds` (30 minutes
by default). A stream ends early when events it had not sent are gone (the client relists) and
when a fault rule `cut`s it after so many events."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simcluster.apiserver import listing
from simcluster.apiserver.store import (
    CLUSTER_SCOPED,
    KINDS,
    Event,
    parse_field_selector,
    parse_label_selector,
)

if TYPE_CHECKING:
    from simcluster.apiserver.responses import RequestRecord
    from simcluster.apiserver.server import Handler
    from simcluster.cluster import SimCluster

Matcher = Callable[[dict[str, Any]], bool]


@dataclass
class Opening:
    """What a watch sends first, and where it goes on from (-1: nowhere, the stream ends)."""

    start: int
    lines: Iterable[bytes] = ()
    visible: set[tuple[str, str]] = field(default_factory=set)


def serve_watch(
    sim: SimCluster,
    handler: Handler,
    record: RequestRecord,
    *,
    resource: str,
    namespace: str | None,
    query: dict[str, str],
    cut: int | None,
    render: Callable[[bytes], bytes] | None = None,
) -> None:
    """Stream watch events; `render` turns each object's JSON into what the client asked
    for (a Table for `kubectl get --watch`)."""
    matches = matcher(resource, namespace, query)
    timeout = float(query.get("timeoutSeconds") or 1800)
    bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
    stream = WatchStream(sim, handler, record, resource=resource, cut=cut, render=render)
    handler.start_stream(record)
    with sim.store.lock:
        opening = stream.opening(namespace, query, matches)
    deadline = time.monotonic() + timeout
    next_bookmark = time.monotonic() + sim.bookmark_interval
    try:
        if not stream.send(opening.lines):
            return
        if opening.start < 0:
            handler.end_stream()
            return
        if stream.follow(
            opening, matches, deadline=deadline, next_bookmark=next_bookmark if bookmarks else None
        ):
            handler.end_stream()
    except (BrokenPipeError, ConnectionResetError, OSError):
        handler.close_connection = True


def matcher(resource: str, namespace: str | None, query: dict[str, str]) -> Matcher:
    """Whether an object is one this watch shows: in its namespace, matching its selectors."""
    labels = parse_label_selector(query.get("labelSelector", ""))
    fields = parse_field_selector(query.get("fieldSelector", ""))

    def matches(obj: dict[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        return (
            (namespace is None or resource in CLUSTER_SCOPED or meta.get("namespace") == namespace)
            and labels(meta.get("labels") or {})
            and fields(obj)
        )

    return matches


class WatchStream:
    """One watch's stream: what it sends and how many events it has sent."""

    def __init__(
        self,
        sim: SimCluster,
        handler: Handler,
        record: RequestRecord,
        *,
        resource: str,
        cut: int | None,
        render: Callable[[bytes], bytes] | None,
    ) -> None:
        self.sim = sim
        self.handler = handler
        self.record = record
        self.resource = resource
        self.cut = cut
        self.shown: Callable[[bytes], bytes] = render or (lambda data: data)
        self.kind, self.api_version, _ = KINDS[resource]
        self.sent = 0

    def opening(self, namespace: str | None, query: dict[str, str], matches: Matcher) -> Opening:
        """Under the store's lock: the initial events, a 410, or only what the watch sees."""
        store = self.sim.store
        requested = query.get("resourceVersion") or "0"
        start = int(requested) if requested.isdigit() else 0
        initial_events = query.get("sendInitialEvents") == "true"
        if start == 0 or initial_events:
            return self._initial_events(namespace, query, matches, bookmark=initial_events)
        if start < store.floor[self.resource]:
            return Opening(start=-1, lines=[self._expired(start)])
        visible = {key for key, obj in store.peek(self.resource).items() if matches(obj)}
        return Opening(start=start, visible=visible)

    def _initial_events(
        self, namespace: str | None, query: dict[str, str], matches: Matcher, *, bookmark: bool
    ) -> Opening:
        store = self.sim.store
        parts = listing.synthetic_parts(self.sim, self.resource, namespace, query)
        opening = Opening(start=store.rv)
        pending: list[bytes] = []
        for key, obj in sorted(store.peek(self.resource).items()):
            if matches(obj):
                opening.visible.add(key)
                data = self.shown(json.dumps(obj, separators=(",", ":")).encode())
                pending.append(b'{"type":"ADDED","object":' + data + b"}")
        if bookmark and self.sim.initial_events_end:  # KEP-3157: the list's end
            annotations = {"k8s.io/initial-events-end": "true"}
            pending.append(self._bookmark(opening.start, annotations=annotations))
        opening.lines = itertools.chain(listing.initial_events(parts), pending)
        return opening

    def _expired(self, start: int) -> bytes:
        floor = self.sim.store.floor[self.resource]
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "reason": "Expired",
            "code": 410,
            "message": f"too old resource version: {start} ({floor})",
        }
        return json.dumps({"type": "ERROR", "object": status}).encode()

    def _bookmark(self, position: int, **metadata: Any) -> bytes:
        mark = {
            "type": "BOOKMARK",
            "object": {
                "kind": self.kind,
                "apiVersion": self.api_version,
                "metadata": {"resourceVersion": str(position), **metadata},
            },
        }
        return json.dumps(mark).encode()

    def send(self, lines: Iterable[bytes]) -> bool:
        """Write each line; False once the fault's `cut` has ended the stream."""
        for line in lines:
            self.handler.write_chunk(self.record, line + b"\n")
            self.sent += 1
            if self.cut is not None and self.sent >= self.cut:
                self.handler.cut(self.record)
                return False
        return True

    def follow(
        self, opening: Opening, matches: Matcher, *, deadline: float, next_bookmark: float | None
    ) -> bool:
        """Send the store's changes until the deadline, the cluster stops, or the events the
        watch needs are gone; False if cut."""
        store, position, visible = self.sim.store, opening.start, opening.visible
        while not self.sim.stopping and time.monotonic() < deadline:
            with store.lock:
                events = list(store.events_since(self.resource, position))
                if not events:
                    store.changed.wait(min(0.2, max(0.0, deadline - time.monotonic())))
                    events = list(store.events_since(self.resource, position))
                floor, dropped = store.floor[self.resource], store.dropped[self.resource]
            if position < dropped or (position < floor and not events):
                break  # events this watch had not sent are gone: the client must relist
            position = events[-1].rv if events else position
            if not self.send(self._changes(events, visible, matches)):
                return False
            if next_bookmark is not None and time.monotonic() >= next_bookmark:
                next_bookmark = time.monotonic() + self.sim.bookmark_interval
                self.handler.write_chunk(self.record, self._bookmark(position) + b"\n")
        return True

    def _changes(
        self, events: list[Event], visible: set[tuple[str, str]], matches: Matcher
    ) -> list[bytes]:
        """The events as this watch sees them: an object that starts matching is ADDED, one
        that stops is DELETED."""
        lines = []
        for event in events:
            key = (event.namespace, event.obj["metadata"]["name"])
            if event.type != "DELETED" and matches(event.obj):
                kind_of = "ADDED" if key not in visible else event.type
                visible.add(key)
                lines.append(
                    b'{"type":"' + kind_of.encode() + b'","object":' + self.shown(event.data) + b"}"
                )
            elif key in visible or (event.type == "DELETED" and matches(event.obj)):
                visible.discard(key)
                lines.append(b'{"type":"DELETED","object":' + self.shown(event.data) + b"}")
        return lines

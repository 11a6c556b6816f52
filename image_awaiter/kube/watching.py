"""Informer-style caches: one streaming (or paginated) list (`listing`), then a watch, keeping
compact records current.

The initial state comes from a streaming list (KEP-3157 "WatchList": a watch with
`sendInitialEvents=true`, which the API server answers from its watch cache with one ADDED
event per object and then a BOOKMARK annotated `k8s.io/initial-events-end`), so a large cluster
costs no quorum read of etcd, the awaiter holds one object at a time, and the same stream goes
on as the watch. A server that refuses it (400/422: the WatchList feature gate is off, or it
predates 1.27) gets paginated lists of `page_size` instead, for the rest of the run.

Each `Informer` owns one store (records keyed by namespace/name, so cluster-scoped nodes work),
the last resourceVersion and a `synced` signal. One thread writes; readers get a consistent copy.
A relist replaces the store whole; a 410 Gone relists; a watch ends on purpose every few minutes
(it is never assumed that every event is delivered) and resumes from the last resourceVersion; a
silent watch is abandoned after a read timeout; a full resync happens every `resync` seconds.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from image_awaiter.core.errors import AwaiterError, Gone
from image_awaiter.kube.api import KubeApi
from image_awaiter.kube.chunked import Line
from image_awaiter.kube.client import ReadTimeout, watch_error
from image_awaiter.kube.decoding import Codec, Event
from image_awaiter.kube.listing import (
    WATCH_LIST_REFUSALS,
    InitialEventsUnended,
    Undecodable,
    decode_event,
    read_initial_events,
    read_pages,
)
from image_awaiter.kube.resources import Address
from image_awaiter.kube.retrying import TransientError

T = TypeVar("T")
log = structlog.get_logger("image_awaiter.kube.watching")

# Holds SIGINT/SIGTERM back while a block runs (run.signals.SignalGuard.hold): starting a thread
# must not be cut in half.
Hold = Callable[[], contextlib.AbstractContextManager[None]]


@dataclass(frozen=True, slots=True)
class WatchTiming:
    page_size: int = 500
    watch_seconds: int = 240  # server-side bound of one watch request
    read_timeout: float = 90.0  # no byte for this long: the watch silently died
    resync_seconds: float = 600.0  # full relist, far rarer than the evaluation tick
    initial_events_wait: float = 10.0  # a streaming list silent this long, unended: use pages
    reconnect_delay: float = 0.5


class Store(Generic[T]):
    """One informer's records keyed by namespace/name, the last resourceVersion and the
    `synced` signal. One thread writes; readers get a consistent copy. Every change sets `wake`."""

    def __init__(self, wake: threading.Event) -> None:
        self._wake = wake
        self._items: dict[str, T] = {}
        self._lock = threading.Lock()
        self.resource_version = ""
        self.synced = threading.Event()
        self.lists = 0
        self.events = 0

    def snapshot(self) -> dict[str, T]:
        with self._lock:
            return dict(self._items)

    def replace(self, items: dict[str, T], resource_version: str) -> None:
        """Swap the records whole, so readers never see half a list."""
        with self._lock:
            self._items = items
            self.resource_version = resource_version
        self.lists += 1
        self.synced.set()
        self._wake.set()

    def apply(self, event: Event[T]) -> None:
        if event.type == "ERROR":
            raise watch_error(event.status or {})
        if event.type == "BOOKMARK":
            self.resource_version = event.resource_version or self.resource_version
            return
        with self._lock:
            if event.record is None:
                self._items.pop(event.key, None)
            else:
                self._items[event.key] = event.record
            self.resource_version = event.resource_version or self.resource_version
        self.events += 1
        self._wake.set()


@dataclass(frozen=True, slots=True)
class Target(Generic[T]):
    """What one informer reads: the objects at `address`, decoded by `codec`; `name` in logs."""

    address: Address
    codec: Codec[T]
    name: str


class Watcher(Generic[T]):
    """The watch requests of one informer: each from the store's last resourceVersion, its
    events applied to the store, bounded on the server (`watch_seconds`) and by a read timeout;
    a broken or silent stream resumes from where it was; 410 Gone and an undecodable event
    (raised) force a relist."""

    def __init__(
        self,
        target: Target[T],
        *,
        kube: KubeApi,
        store: Store[T],
        stop: threading.Event,
        timing: WatchTiming,
        select: Callable[[dict[str, str | int]], None],
    ) -> None:
        self._kube = kube
        self._address = target.address
        self._codec = target.codec
        self._store = store
        self._stop = stop
        self._timing = timing
        self._select = select
        self._name = target.name
        self.requests = 0

    def open(
        self, *, initial_events: bool = False, read_timeout: ReadTimeout | None = None
    ) -> Generator[Line, None, None]:
        """A watch request; with `initial_events`, a streaming list (no resourceVersion: the
        server's watch cache answers with a state at least as new as a quorum read)."""
        seconds = int(self._timing.watch_seconds * random.uniform(0.9, 1.0))
        query: dict[str, str | int] = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": seconds,
        }
        if initial_events:
            query.update(sendInitialEvents="true", resourceVersionMatch="NotOlderThan")
        else:
            query["resourceVersion"] = self._store.resource_version
        self._select(query)
        self.requests += 1
        timeout = read_timeout or ReadTimeout(self._timing.read_timeout)
        return self._kube.stream(self._address, query=query, read_timeout=timeout)

    def until_resync(self) -> None:
        """Watch until the resync period is over (or we stop)."""
        resync_at = time.monotonic() + self._timing.resync_seconds
        while not self._stop.is_set() and time.monotonic() < resync_at:
            try:
                self._once()
            except Undecodable:
                raise  # the same event would come again: relist
            except TransientError as error:
                self._restarted(error)
                self._stop.wait(self._timing.reconnect_delay)

    def _once(self) -> None:
        lines = self.open()
        try:
            self.follow(lines)
        finally:
            lines.close()

    def follow(self, lines: Iterator[Line]) -> None:
        """Apply a watch stream's events until the server ends it (or we stop)."""
        for line in lines:
            if self._stop.is_set():
                return
            self._store.apply(decode_event(self._codec, line))

    def follow_resumably(self, lines: Iterator[Line]) -> None:
        """`follow`, where a broken stream only ends this request: the caller resumes from
        the last resourceVersion."""
        try:
            self.follow(lines)
        except Undecodable:
            raise  # the same event would come again: relist
        except TransientError as error:
            self._restarted(error)

    def _restarted(self, error: TransientError) -> None:
        log.info(
            "watch.restarted",
            resource=self._name,
            error=str(error),
            resource_version=self._store.resource_version,
        )


class Informer(Generic[T]):
    """Keeps the codec's compact record of every object at `address` current: lists (streaming
    when the server allows it, else page by page), then watches, in its own thread."""

    def __init__(
        self,
        *,
        kube: KubeApi,
        address: Address,
        codec: Codec[T],
        label_selector: str | None = None,
        field_selector: str | None = None,
        optional: bool = False,
        wake: threading.Event | None = None,
        timing: WatchTiming = WatchTiming(),
        name: str = "",
    ) -> None:
        self._kube = kube
        self._address = address
        self._codec = codec
        self._selector = label_selector
        self._fields = field_selector
        self._optional = optional  # a failure stops only this informer, with a warning
        self._wake = wake or threading.Event()
        self._timing = timing
        self.name = name or address.resource.plural
        self.store: Store[T] = Store(self._wake)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher = Watcher(
            Target(address=address, codec=codec, name=self.name),
            kube=kube,
            store=self.store,
            stop=self._stop,
            timing=timing,
            select=self._select,
        )
        self.error: AwaiterError | None = None
        self.streaming: bool | None = None  # None until the server accepted or refused it

    # ------------------------------------------------------------------ readers

    def snapshot(self) -> dict[str, T]:
        return self.store.snapshot()

    @property
    def synced(self) -> threading.Event:
        return self.store.synced

    @property
    def watches(self) -> int:
        return self._watcher.requests

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"informer:{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def list_once(self) -> dict[str, T]:
        """A single list, without watching; for read-only one-shot checks."""
        self._relist(then_watch=False)
        return self.snapshot()

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._relist(then_watch=True)
                self._watcher.until_resync()
            except Gone:
                log.info("watch.expired", resource=self.name)
            except TransientError as error:
                log.info("watch.retrying", resource=self.name, error=str(error))
                self._stop.wait(self._timing.reconnect_delay)
            except AwaiterError as error:
                if self._optional:
                    log.warning("watch.unavailable", resource=self.name, error=error.one_line())
                    self.synced.set()  # nothing to wait for: the run goes on without it
                else:
                    self.error = error
                self._wake.set()
                return
            except Exception as error:  # a bug must surface, not hang the awaiter
                self.error = AwaiterError(f"internal error in {self.name} watch: {error!r}")
                self._wake.set()
                raise

    def _relist(self, *, then_watch: bool) -> None:
        """Streaming when the server allows it, else page by page."""
        if self.streaming is not False:
            try:
                self._stream_list(then_watch=then_watch)
                self.streaming = True
                return
            except WATCH_LIST_REFUSALS as error:
                if self.streaming:
                    raise
                log.info("watch.list_refused", resource=self.name, error=str(error))
                self.streaming = False
            except InitialEventsUnended as error:
                log.info("watch.list_unended", resource=self.name, error=str(error))
                self.streaming = False
        items, resource_version = read_pages(
            self._kube,
            self._address,
            self._codec,
            page_size=self._timing.page_size,
            select=self._select,
        )
        self.store.replace(items, resource_version)

    def _stream_list(self, *, then_watch: bool) -> None:
        """A streaming list (see `read_initial_events`); the store is swapped whole and, with
        `then_watch`, the same stream goes on as the watch."""
        wait = self._timing.initial_events_wait
        timeout = ReadTimeout(min(wait, self._timing.read_timeout))
        lines = self._watcher.open(initial_events=True, read_timeout=timeout)
        try:
            items, resource_version = read_initial_events(
                lines, self._codec, name=self.name, wait=wait
            )
            self.store.replace(items, resource_version)
            if then_watch:
                timeout.seconds = self._timing.read_timeout  # now an ordinary watch
                self._watcher.follow_resumably(lines)
        finally:
            lines.close()

    def _select(self, query: dict[str, str | int]) -> None:
        if self._selector:
            query["labelSelector"] = self._selector
        if self._fields:
            query["fieldSelector"] = self._fields

"""Informer-style caches: one paginated list, then a watch, keeping compact records current.

Each `Informer` owns one store (records keyed by namespace/name, so cluster-scoped nodes work),
the last resourceVersion and a `synced` signal. One thread writes; readers get a consistent copy.
A relist replaces the store whole; a 410 Gone relists; a watch ends on purpose every few minutes
(it is never assumed that every event is delivered) and resumes from the last resourceVersion; a
silent watch is abandoned after a read timeout; a full resync happens every `resync` seconds.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog

from image_awaiter.decoding import Codec, Event
from image_awaiter.errors import AwaiterError, DeadlineReached, Gone
from image_awaiter.kube import Kube, watch_error
from image_awaiter.resources import Address
from image_awaiter.retrying import TransientError
from image_awaiter.signals import Hold

T = TypeVar("T")
log = structlog.get_logger("image_awaiter.watching")


@dataclass(frozen=True, slots=True)
class WatchTiming:
    page_size: int = 500
    watch_seconds: int = 240  # server-side bound of one watch request
    read_timeout: float = 90.0  # no byte for this long: the watch silently died
    resync_seconds: float = 600.0  # full relist, far rarer than the evaluation tick
    reconnect_delay: float = 0.5


class Informer(Generic[T]):
    """Keeps the codec's compact record of every object at `address` current."""

    def __init__(
        self,
        *,
        kube: Kube,
        address: Address,
        codec: Codec[T],
        label_selector: str | None = None,
        wake: threading.Event | None = None,
        timing: WatchTiming = WatchTiming(),
        name: str = "",
    ) -> None:
        self._kube = kube
        self._address = address
        self._codec = codec
        self._selector = label_selector
        self._wake = wake or threading.Event()
        self._timing = timing
        self.name = name or address.resource.plural
        self._items: dict[str, T] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.resource_version = ""
        self.synced = threading.Event()
        self.error: AwaiterError | None = None
        self.lists = 0
        self.watches = 0
        self.events = 0

    # ------------------------------------------------------------------ readers

    def snapshot(self) -> dict[str, T]:
        with self._lock:
            return dict(self._items)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"informer:{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def list_once(self) -> dict[str, T]:
        """A single paginated list, without watching; for read-only one-shot checks."""
        self._relist()
        return self.snapshot()

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._relist()
                self._watch_until_resync()
            except Gone:
                log.info("watch.expired", resource=self.name)
            except TransientError as error:
                log.info("watch.retrying", resource=self.name, error=str(error))
                self._stop.wait(self._timing.reconnect_delay)
            except AwaiterError as error:
                self.error = error
                self._wake.set()
                return
            except Exception as error:  # a bug must surface, not hang the awaiter
                self.error = AwaiterError(f"internal error in {self.name} watch: {error!r}")
                self._wake.set()
                raise

    def _relist(self) -> None:
        """Read every page, then swap the store whole so readers never see half a list."""
        items: dict[str, T] = {}
        token = ""
        while True:
            query: dict[str, str | int] = {"limit": self._timing.page_size}
            if token:
                query["continue"] = token
            if self._selector:
                query["labelSelector"] = self._selector
            page = self._kube.request_decoded(
                "GET", self._address, query=query, decode=self._codec.page
            )
            for key, record in page.items:
                if record is not None:
                    items[key] = record
            token = page.continue_token
            if not token:
                break
        with self._lock:
            self._items = items
            self.resource_version = page.resource_version
        self.lists += 1
        self.synced.set()
        self._wake.set()

    def _watch_until_resync(self) -> None:
        """Watch from the last resourceVersion until the resync period is over; a broken or
        silent stream resumes from where it was, only 410 Gone (raised) forces a relist."""
        resync_at = time.monotonic() + self._timing.resync_seconds
        while not self._stop.is_set() and time.monotonic() < resync_at:
            try:
                self._watch_once()
            except TransientError as error:
                log.info(
                    "watch.restarted",
                    resource=self.name,
                    error=str(error),
                    resource_version=self.resource_version,
                )
                self._stop.wait(self._timing.reconnect_delay)

    def _watch_once(self) -> None:
        """One watch request from the last resourceVersion; returns when the server ends it."""
        seconds = int(self._timing.watch_seconds * random.uniform(0.9, 1.0))
        query: dict[str, str | int] = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": self.resource_version,
            "timeoutSeconds": seconds,
        }
        if self._selector:
            query["labelSelector"] = self._selector
        self.watches += 1
        for line in self._kube.stream(
            self._address, query=query, read_timeout=self._timing.read_timeout
        ):
            if self._stop.is_set():
                return
            try:
                event = self._codec.event(line)
            except ValueError as error:
                raise TransientError(f"undecodable watch event: {error}") from None
            self._apply(event)

    def _apply(self, event: Event[T]) -> None:
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


class Caches:
    """The run's named informers: started with signals held, stopped together, their errors
    raised in the loop's thread, and waited on until synced (never judge before that)."""

    def __init__(self, *, kube: Kube, hold: Hold, timing: WatchTiming = WatchTiming()) -> None:
        self._kube = kube
        self._hold = hold
        self._timing = timing
        self._informers: list[Informer[Any]] = []
        self.wake = threading.Event()  # set by every store change

    def start(
        self, *, name: str, address: Address, codec: Codec[T], label_selector: str | None = None
    ) -> Informer[T]:
        informer: Informer[T] = Informer(
            kube=self._kube,
            address=address,
            codec=codec,
            label_selector=label_selector,
            wake=self.wake,
            timing=self._timing,
            name=name,
        )
        self._informers.append(informer)
        with self._hold():
            informer.start()
        return informer

    def raise_errors(self) -> None:
        for informer in self._informers:
            if informer.error is not None:
                raise informer.error

    def wait_synced(self, *, deadline: float | None) -> None:
        """Until every informer has listed once; raises an informer's error, or
        `DeadlineReached` when the API could not be read in time."""
        for informer in self._informers:
            while not informer.synced.is_set():
                self.raise_errors()
                if deadline is not None and time.monotonic() >= deadline:
                    raise DeadlineReached(
                        f"{informer.name} could not be read from the API in time"
                    )
                self.wake.wait(0.5)
                self.wake.clear()

    def stop(self) -> None:
        for informer in self._informers:
            informer.stop()

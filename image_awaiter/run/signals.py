"""SIGINT and SIGTERM during a run: interrupt at once, hold back while a thread starts, and only
record once cleanup has begun, so that nothing cuts the DaemonSet's deletion short."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from image_awaiter.core.errors import Interrupted
from image_awaiter.kube.watching import Hold

__all__ = ["Hold", "SignalGuard"]


class SignalGuard:
    """SIGINT and SIGTERM raise `Interrupted` in the main thread while the run works, so that
    `finally` blocks clean up; once cleanup starts (`defer`), a signal is only recorded in
    `deferred`, so that the exit code still reports it."""

    def __init__(self) -> None:
        self.deferred: str | None = None
        self._deferring = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = {
                s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)
            }
        return self

    def __exit__(self, *_: object) -> None:
        for signum, old in self._previous.items():
            signal.signal(signum, old)

    def defer(self) -> None:
        """From now on a signal is only recorded: cleanup is running."""
        self._deferring = True

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold a signal back while the block runs, then raise it. Starting a thread must not
        be cut in half: an exception raised inside `Thread.start` leaves the thread half-born
        (a traceback from its bootstrap, and the wrong exit code)."""
        if self._deferring:
            yield
            return
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self.deferred is not None:
            name, self.deferred = self.deferred, None
            self._deferring = True
            raise Interrupted(name)

    def _handle(self, signum: int, _: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._deferring:
            self.deferred = self.deferred or name
            return
        self._deferring = True  # a second signal during cleanup is only recorded
        raise Interrupted(name)

"""`Caches`: a run's named informers, started with signals held, stopped together, their
errors raised in the loop's thread, and waited on until synced (never judge before that)."""

from __future__ import annotations

import threading
import time
from typing import Any, TypeVar

from image_awaiter.core.errors import DeadlineReached
from image_awaiter.kube.api import KubeApi
from image_awaiter.kube.decoding import Codec
from image_awaiter.kube.resources import Address
from image_awaiter.kube.watching import Hold, Informer, WatchTiming

T = TypeVar("T")
DEFAULT_TIMING = WatchTiming()


class Caches:
    """The run's named informers: started with signals held, stopped together, their errors
    raised in the loop's thread, and waited on until synced (never judge before that)."""

    def __init__(self, *, kube: KubeApi, hold: Hold, timing: WatchTiming = DEFAULT_TIMING) -> None:
        self._kube = kube
        self._hold = hold
        self._timing = timing
        self._informers: list[Informer[Any]] = []
        self.wake = threading.Event()  # set by every store change

    def start(
        self,
        *,
        name: str,
        address: Address,
        codec: Codec[T],
        label_selector: str | None = None,
        field_selector: str | None = None,
        optional: bool = False,
    ) -> Informer[T]:
        informer: Informer[T] = Informer(
            kube=self._kube,
            address=address,
            codec=codec,
            label_selector=label_selector,
            field_selector=field_selector,
            optional=optional,
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
                    raise DeadlineReached(f"{informer.name} could not be read from the API in time")
                self.wake.wait(0.5)
                self.wake.clear()

    def stop(self) -> None:
        for informer in self._informers:
            informer.stop()

"""The HTTP kubelets' writes, off their sync loop: `Writers` (a few threads, each node's writes
in order on one of them, statuses before events) and `ApiEventRecorder` (kubelet Events
through them: POST a new one, PATCH `count` and `lastTimestamp` of a repeat)."""

from __future__ import annotations

import itertools
import queue
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from simcluster.apiclient import MERGE_PATCH, UNREACHABLE, Api, ApiError
from simcluster.nodes.recording import Recorder


class Writers:
    """The kubelets' writes (pod statuses, events, node images), off the sync loop: a few
    threads, each node's writes on one of them, in order (a node's kubelet writes in order;
    different nodes' kubelets write at once). Status writes go before events, as a kubelet's
    status manager does not wait for its event broadcaster."""

    def __init__(self, *, threads: int, errors: list[str]) -> None:
        self.queues: list[queue.PriorityQueue[tuple[int, int, Callable[[], object] | None]]] = [
            queue.PriorityQueue() for _ in range(threads)
        ]
        self.errors = errors
        self._order = itertools.count()
        self._threads = [
            threading.Thread(target=self._work, args=(q,), name=f"kubelets-writer-{i}", daemon=True)
            for i, q in enumerate(self.queues)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, node: str, write: Callable[[], object], *, urgent: bool = False) -> None:
        work = self.queues[zlib.crc32(node.encode()) % len(self.queues)]
        work.put((0 if urgent else 1, next(self._order), write))

    def pending(self) -> int:
        return sum(work.qsize() for work in self.queues)

    def drain(self, *, timeout: float = 10.0) -> bool:
        """Wait until every write submitted before this call is done (a marker behind them on
        each thread); False if that took longer than `timeout`."""
        done = [threading.Event() for _ in self.queues]
        for work, event in zip(self.queues, done, strict=True):
            work.put((1, next(self._order), event.set))
        deadline = time.monotonic() + timeout
        return all(event.wait(max(0.0, deadline - time.monotonic())) for event in done)

    def stop(self, *, timeout: float = 10.0) -> None:
        """Finish what was submitted (within `timeout`: the threads are daemons), then end."""
        for work in self.queues:
            work.put((2, next(self._order), None))
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _work(
        self, work: queue.PriorityQueue[tuple[int, int, Callable[[], object] | None]]
    ) -> None:
        while (write := work.get()[2]) is not None:
            try:
                write()
            except (*UNREACHABLE, ApiError) as error:  # type: ignore[misc]  # a tuple of classes
                self.errors.append(f"write: {error}")


class ApiEventRecorder(Recorder):
    """Kubelet events through the API: POST a new one, PATCH count and lastTimestamp; written
    by the node's writer (in order)."""

    def __init__(self, api: Api, *, writers: Writers, time_scale: float) -> None:
        super().__init__(time_scale=time_scale)
        self.api = api
        self.writers = writers
        self.counts: dict[tuple[str, str], tuple[str, int]] = {}  # key -> (host, count)

    def _bump(self, key: tuple[str, str], stamp: str) -> bool:
        host, count = self.counts[key]
        self.counts[key] = (host, count + 1)
        patch = {"count": count + 1, "lastTimestamp": stamp}
        path = f"/api/v1/namespaces/{key[0]}/events/{key[1]}"
        self.writers.submit(
            host, lambda: self.api.request("PATCH", path, patch, content_type=MERGE_PATCH)
        )
        return True

    def _create(self, namespace: str, event: dict[str, Any]) -> None:
        event = {k: v for k, v in event.items() if v is not None}
        host = event["source"]["host"]
        self.counts[(namespace, event["metadata"]["name"])] = (host, 1)
        path = f"/api/v1/namespaces/{namespace}/events"
        self.writers.submit(host, lambda: self.api.request("POST", path, event))

"""Leader election on a `coordination.k8s.io/v1` Lease, in a thread of its own so that a long
burst of node writes never delays a renewal. Every write is conditional on the resourceVersion
read (a 409 means another candidate won). On stop, a leader gives the lease up (an empty
holder), so the other replica takes over at its next try rather than after the lease expires.
The decisions are `core.leadership`'s."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from image_awaiter.core.errors import ApiError, Conflict, NamespaceNotFound, NotFound
from image_awaiter.core.leadership import (
    LeaseRecord,
    Step,
    lease_spec,
    next_step,
    still_leading,
)
from image_awaiter.kube.client import Kube
from image_awaiter.kube.resources import LEASES

log = structlog.get_logger("image_awaiter.cluster.leases")


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    duration: float = 15.0  # client-go's defaults
    renew_deadline: float = 10.0
    retry_period: float = 2.0


def micro_time() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class LeaderElector:
    """Tries to hold the lease `name` in `namespace` as `identity`; `leading` says whether this
    replica may write now."""

    def __init__(
        self, *, kube: Kube, namespace: str, name: str, identity: str, timing: LeaseTiming
    ) -> None:
        self._kube = kube
        self._address = LEASES.address(namespace=namespace, name=name)
        self._collection = LEASES.address(namespace=namespace)
        self._name = name
        self.identity = identity
        self._timing = timing
        self._observed: tuple[tuple[str, str], float] | None = None
        self._renewed_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.changed = threading.Event()  # set when leadership is won or lost
        # The API serves no Leases (a 404 creating one): this replica writes alone, as with
        # --no-leader-elect, rather than never (the taints' patches stay conditional).
        self.unserved = False

    @property
    def leading(self) -> bool:
        if self.unserved:
            return True
        return still_leading(
            renewed_at=self._renewed_at,
            now=time.monotonic(),
            renew_deadline=self._timing.renew_deadline,
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            was = self.leading
            try:
                self.try_once()
            except ApiError as error:
                log.warning("lease.unavailable", lease=self._name, error=error.one_line())
            if self.leading != was:
                log.info("lease.leading" if not was else "lease.lost", identity=self.identity)
                self.changed.set()
            self._stop.wait(self._timing.retry_period)

    def try_once(self) -> None:
        now = time.monotonic()
        try:
            record: LeaseRecord | None = LeaseRecord.from_json(
                self._kube.request("GET", self._address, budget=self._timing.retry_period)
            )
        except NotFound:
            record = None
        if record is not None and (self._observed is None or self._observed[0] != record.observed):
            self._observed = (record.observed, now)
        observed_at = self._observed[1] if self._observed else now
        step = next_step(record, identity=self.identity, observed_at=observed_at, now=now)
        if step is Step.FOLLOW:
            self._renewed_at = None
            return
        spec = lease_spec(
            record, identity=self.identity, duration=self._timing.duration, now=micro_time()
        )
        try:
            self._write(record, spec)
        except Conflict:
            self._renewed_at = None  # someone else wrote first
            return
        self._renewed_at = now

    def _write(self, record: LeaseRecord | None, spec: dict[str, Any]) -> None:
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self._name},
            "spec": spec,
        }
        if record is None:
            try:
                self._kube.request("POST", self._collection, body=body, budget=2.0)
            except NamespaceNotFound:
                raise
            except NotFound:
                log.error(
                    "lease.unserved",
                    detail="the API serves no coordination.k8s.io/v1 Leases; writing alone",
                    hint="run one replica, or a cluster that serves Leases",
                )
                self.unserved = True
                self._stop.set()
            return
        body["metadata"]["resourceVersion"] = record.resource_version
        self._kube.request("PUT", self._address, body=body, budget=2.0)

    def stop(self, *, release: bool = True) -> None:
        """Stop trying; a leader gives the lease up so that the other replica need not wait
        for it to expire."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._timing.retry_period + 2)
        if not (release and self.leading):
            return
        self._renewed_at = None
        try:
            raw = self._kube.request("GET", self._address, budget=2.0)
            record = LeaseRecord.from_json(raw)
            if record.holder != self.identity:
                return
            spec = {**raw.get("spec", {}), "holderIdentity": "", "leaseDurationSeconds": 1}
            self._write(record, spec)
            log.info("lease.released", identity=self.identity)
        except ApiError as error:
            log.info("lease.unreleased", error=error.one_line())

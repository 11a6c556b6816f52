"""Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics: a lease is
held by `holderIdentity` for `leaseDurationSeconds` after the last change this candidate saw
(its own clock, not the holder's `renewTime`, so clocks need not agree); the holder renews it,
anyone may take it once it expired, every write is conditional on the resourceVersion read.

Pure: the record read and the times in, what to do and the body to write out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    holder: str
    duration: float  # leaseDurationSeconds
    acquire_time: str
    renew_time: str
    transitions: int
    resource_version: str

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LeaseRecord:
        spec = raw.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=float(spec.get("leaseDurationSeconds") or 0),
            acquire_time=str(spec.get("acquireTime") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str((raw.get("metadata") or {}).get("resourceVersion") or ""),
        )

    @property
    def observed(self) -> tuple[str, str]:
        """What must change for the lease to count as renewed."""
        return (self.holder, self.renew_time)


class Step(StrEnum):
    CREATE = "create"  # no lease yet
    RENEW = "renew"  # ours
    TAKE = "take"  # someone else's, expired (or released)
    FOLLOW = "follow"  # someone else's, current


def next_step(record: LeaseRecord | None, *, identity: str, observed_at: float, now: float) -> Step:
    """`observed_at`: when (monotonic) this candidate first saw `record.observed` as it is."""
    if record is None:
        return Step.CREATE
    if record.holder == identity:
        return Step.RENEW
    if not record.holder or now - observed_at > record.duration:
        return Step.TAKE
    return Step.FOLLOW


def lease_spec(
    record: LeaseRecord | None, *, identity: str, duration: float, now: str
) -> dict[str, Any]:
    """The spec this candidate writes to create, renew or take the lease."""
    renewing = record is not None and record.holder == identity
    transitions = record.transitions if record is not None else 0
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(duration)),
        "acquireTime": record.acquire_time if renewing and record else now,
        "renewTime": now,
        "leaseTransitions": transitions if renewing or record is None else transitions + 1,
    }


def still_leading(*, renewed_at: float | None, now: float, renew_deadline: float) -> bool:
    """A leader that could not renew within `renew_deadline` stops acting as one: another
    candidate may take the lease once its duration passes, so the deadline is shorter."""
    return renewed_at is not None and now - renewed_at < renew_deadline

"""Leader election on a Lease, client-go's rules, as a table."""

from __future__ import annotations

import pytest

from image_awaiter.core.leadership import (
    LeaseRecord,
    Step,
    lease_spec,
    next_step,
    still_leading,
)


def record(holder: str, *, transitions: int = 0) -> LeaseRecord:
    return LeaseRecord(
        holder=holder,
        duration=15.0,
        acquire_time="A",
        renew_time="R",
        transitions=transitions,
        resource_version="7",
    )


@pytest.mark.parametrize(
    ("lease", "observed_at", "now", "step"),
    [
        (None, 0.0, 0.0, Step.CREATE),
        (record("me"), 0.0, 100.0, Step.RENEW),
        (record("other"), 0.0, 10.0, Step.FOLLOW),
        (record("other"), 0.0, 15.0, Step.FOLLOW),
        (record("other"), 0.0, 15.1, Step.TAKE),
        (record(""), 0.0, 1.0, Step.TAKE),
    ],
    ids=[
        "no lease: create it",
        "ours: renew it",
        "another's, renewed lately: follow",
        "another's at exactly its duration: still follow",
        "another's, unrenewed past its duration: take it",
        "released (no holder): take it at once",
    ],
)
def test_next_step(lease: LeaseRecord | None, observed_at: float, now: float, step: Step) -> None:
    assert next_step(lease, identity="me", observed_at=observed_at, now=now) is step


def test_taking_a_lease_counts_a_transition_and_sets_the_acquire_time() -> None:
    spec = lease_spec(record("other", transitions=2), identity="me", duration=15, now="T")
    assert spec == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 15,
        "acquireTime": "T",
        "renewTime": "T",
        "leaseTransitions": 3,
    }


def test_renewing_keeps_the_acquire_time_and_the_transitions() -> None:
    spec = lease_spec(record("me", transitions=2), identity="me", duration=15, now="T")
    assert (spec["acquireTime"], spec["renewTime"], spec["leaseTransitions"]) == ("A", "T", 2)


def test_creating_a_lease_starts_at_zero_transitions() -> None:
    assert lease_spec(None, identity="me", duration=15, now="T")["leaseTransitions"] == 0


@pytest.mark.parametrize(
    ("renewed_at", "now", "leading"),
    [(None, 5.0, False), (0.0, 9.9, True), (0.0, 10.0, False)],
    ids=["never renewed", "renewed within the deadline", "renewal overdue: stop writing"],
)
def test_still_leading(renewed_at: float | None, now: float, leading: bool) -> None:
    assert still_leading(renewed_at=renewed_at, now=now, renew_deadline=10.0) is leading

"""Which listed puller DaemonSets a sweep deletes: a pure decision over what was listed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from image_awaiter.cluster.daemonsets import STALE_AFTER, DaemonSetRecord, Listed, stale_reason
from image_awaiter.spec.pullers import CREATED_AT_ANNOTATION, RUN_ID_LABEL, Owner

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp()
HOOK = Owner(name="hook-abc", uid="uid-1", namespace="hub")


def listed(
    *, run_id: str | None = "r1", created_at: str | None = None, owner: Owner | None = None
) -> Listed:
    return Listed(name="puller-r1", uid="ds-1", run_id=run_id, created_at=created_at, owner=owner)


def hours_ago(hours: float) -> str:
    moment = datetime.fromtimestamp(NOW - hours * 3600, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("item", "owner_uid", "reason"),
    [
        (listed(created_at=hours_ago(1), owner=HOOK), None, "owner pod hook-abc is gone"),
        (listed(created_at=hours_ago(1), owner=HOOK), "uid-2", "owner pod hook-abc was replaced"),
        (listed(created_at=hours_ago(100), owner=HOOK), "uid-1", None),
        (listed(created_at=hours_ago(25)), None, "unowned and 25h old"),
        (listed(created_at=hours_ago(23)), None, None),
        (listed(created_at="yesterday"), None, None),
        (listed(run_id=None, created_at=hours_ago(100)), None, None),
        (listed(created_at=None), None, None),
        (listed(created_at="", owner=HOOK), None, None),
    ],
    ids=[
        "owner gone",
        "owner replaced",
        "owner alive however old",
        "unowned and old",
        "unowned and young",
        "unreadable creation time",
        "no run id: not ours",
        "no creation time: not ours",
        "empty creation time: not ours even when its owner is gone",
    ],
)
def test_stale_reason(item: Listed, owner_uid: str | None, reason: str | None) -> None:
    assert stale_reason(item, owner_uid=owner_uid, now=NOW) == reason


def test_stale_after_is_a_day() -> None:
    assert STALE_AFTER == 24 * 3600


def test_listed_reads_run_id_creation_time_and_pod_owner_from_the_object() -> None:
    raw = {
        "metadata": {
            "name": "puller-r1",
            "uid": "ds-1",
            "labels": {RUN_ID_LABEL: "r1"},
            "annotations": {CREATED_AT_ANNOTATION: "2026-11-23T11:00:00Z"},
            "ownerReferences": [
                {"kind": "Job", "name": "j", "uid": "x"},
                {"kind": "Pod", "name": "hook-abc", "uid": "uid-1"},
            ],
        }
    }
    assert Listed.from_json(raw, namespace="hub") == listed(
        created_at="2026-11-23T11:00:00Z", owner=HOOK
    )


def test_the_record_is_the_reports_daemonset_field() -> None:
    record = DaemonSetRecord(name="p", namespace="hub", uid="u", created=True)
    assert record.to_report() == {
        "name": "p",
        "namespace": "hub",
        "uid": "u",
        "created": True,
        "deleted": False,
    }

"""What the user sees while a run works: each exclusion and each node done logged once, and a
progress line when it changes (at most once per interval) or as a heartbeat.

`Progress.observe` is called with every evaluation; it also keeps when each node became done,
for the report. `LivePicture` observes the same evaluations for the live terminal view.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import structlog

from image_awaiter.core.overview import NodeRecord, build_snapshot
from image_awaiter.core.readiness import Evaluation, NodeStatus, NodeVerdict
from image_awaiter.output.liveview import LiveView
from image_awaiter.output.reporting import progress_fields

log = structlog.get_logger("image_awaiter")

HEARTBEAT = 30.0  # an unchanged progress line is repeated this often
QUIET_ABOVE = 100  # above this many nodes, per-node lines are debug only


class Progress:
    def __init__(self, *, started: float, interval: float) -> None:
        self._started = started
        self._interval = interval
        self._logged_excluded: set[tuple[str, str]] = set()
        self._last: tuple[Any, ...] = ()
        self._last_at = 0.0
        self._done_after: dict[str, float] = {}

    @property
    def done_after(self) -> Mapping[str, float]:
        """Seconds from the start until each node was first seen done."""
        return dict(self._done_after)

    def observe(self, evaluation: Evaluation, *, now: float, groups: str | None = None) -> None:
        """`groups`: each pull group's progress (`gpu 1/2, cpu 3/3`) when a run has several."""
        small = len(evaluation.verdicts) + len(evaluation.excluded) <= QUIET_ABOVE
        say = log.info if small else log.debug
        for name, reason in evaluation.excluded.items():
            if (name, reason) not in self._logged_excluded:
                self._logged_excluded.add((name, reason))
                say("node.excluded", node=name, reason=reason)
        for verdict in evaluation.verdicts:
            if verdict.status is NodeStatus.DONE and verdict.node not in self._done_after:
                self._done_after[verdict.node] = now - self._started
                say("node.done", node=verdict.node, after=round(now - self._started, 1))
        fields = progress_fields(evaluation)
        if groups is not None:
            fields["groups"] = groups
        key = tuple(sorted(fields.items()))
        since = now - self._last_at
        if (key != self._last and since >= self._interval) or since >= HEARTBEAT:
            self._last, self._last_at = key, now
            log.info("progress", **fields)


class LivePicture:
    """Feeds the live view (`liveview.LiveView`) from each evaluation: one `NodeRecord` per
    target node, with when it entered its state, and the bytes each node pulled so far.

    At most `REFRESH` redraws a second: an evaluation after every store change is cheap, a
    frame is not free at 5,000 nodes (see README, "live view").
    """

    REFRESH = 0.25  # seconds between two redraws

    def __init__(self, view: LiveView, *, images: Sequence[str], started: float) -> None:
        self._view = view
        self._images = tuple(images)
        self._all = frozenset(images)
        self._started = started
        self._since: dict[str, tuple[tuple[NodeStatus, bool], float]] = {}  # node -> state, since
        self._shared: dict[tuple[str, ...], tuple[frozenset[str], frozenset[str]]] = {}
        self._records: dict[str, tuple[NodeVerdict, Mapping[str, int], NodeRecord]] = {}
        self._drawn_at = -1.0

    def observe(
        self,
        evaluation: Evaluation,
        *,
        now: float,
        pulled_bytes: Mapping[str, Mapping[str, int]],
        final: bool = False,
    ) -> None:
        if not final and now - self._drawn_at < self.REFRESH:
            return
        self._drawn_at = now
        unwanted: dict[str, set[str]] = {}  # node -> images excluded there (no variant)
        for (node, _), exclusion in evaluation.platform_excluded.items():
            unwanted.setdefault(node, set()).add(exclusion.image)
        records = [
            self._record(v, now, pulled_bytes, unwanted.get(v.node, _NO_NAMES))
            for v in evaluation.verdicts
        ]
        snapshot = build_snapshot(
            nodes=records,
            images=self._images,
            excluded=evaluation.excluded,
            elapsed=now - self._started,
            now=now,
        )
        self._view.update(snapshot)

    def _record(
        self,
        verdict: NodeVerdict,
        now: float,
        pulled_bytes: Mapping[str, Mapping[str, int]],
        unwanted: Collection[str],
    ) -> NodeRecord:
        sizes = pulled_bytes.get(verdict.node, _NO_BYTES)
        cached = self._records.get(verdict.node)
        if cached is not None and cached[0] == verdict and cached[1] is sizes and not unwanted:
            return cached[2]  # most nodes are unchanged between two refreshes
        record = self._new_record(verdict, now, sizes)
        if unwanted:  # rare: a node still awaited for other images
            wanted = self._all - frozenset(unwanted)
            record = dataclasses.replace(record, images=wanted, present=record.present & wanted)
        self._records[verdict.node] = (verdict, sizes, record)
        return record

    def _new_record(self, verdict: NodeVerdict, now: float, sizes: Mapping[str, int]) -> NodeRecord:
        status = verdict.status
        done = status is NodeStatus.DONE
        key = (status, bool(verdict.failures))
        previous = self._since.get(verdict.node)
        if previous is None or previous[0] != key:
            previous = self._since[verdict.node] = (key, now)
        missing, present = self._sets(verdict.missing)
        if verdict.failures:
            first = verdict.failures[0]
            state = f"{first.image}: {first.kind or first.reason}: {first.message}"
        else:
            state = status.value if done else (verdict.detail or status.value)
        return NodeRecord(
            name=verdict.node,
            done=done,
            state=state,
            since=previous[1],
            failing=bool(verdict.failures) or status is NodeStatus.FAILED,
            present=present,
            pulling=missing if status is NodeStatus.PULLING else _NONE,
            pulled_bytes=sizes,
        )

    def _sets(self, missing: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
        """(missing, present) as frozensets shared by every node with the same missing
        images: a handful per run, hashed once (build_snapshot counts nodes per set)."""
        found = self._shared.get(missing)
        if found is None:
            names = frozenset(missing)
            found = self._shared[missing] = (names, self._all - names)
        return found


_NONE: frozenset[str] = frozenset()
_NO_NAMES: frozenset[str] = frozenset()
_NO_BYTES: Mapping[str, int] = {}

"""What the user sees while a run works: each exclusion and each node done logged once, and a
progress line when it changes (at most once per interval) or as a heartbeat.

`Progress.observe` is called with every evaluation; it also keeps when each node became done,
for the report. A live terminal view would observe the same evaluations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from image_awaiter.readiness import Evaluation, NodeStatus
from image_awaiter.reporting import progress_fields

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

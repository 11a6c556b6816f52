"""The node gate's decisions: per node that carries the gate taint, keep it, release it (its
images are there, or no pull group targets it), or release it anyway at `--max-wait` naming what
is missing; and what to write for that decision: the JSON patch that removes the gate taint and
only it (a `test` of the exact taints list read first, so a taint someone else changed meanwhile
is never lost), and the node condition (a strategic merge patch on `status.conditions`, merged
by type, so no other condition is touched).

Pure: plain records and the time in, decisions and patch bodies out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from image_awaiter.core.errors import UsageError
from image_awaiter.core.placement import Taint, Toleration
from image_awaiter.core.readiness import NodeStatus, NodeVerdict, PullFailure
from image_awaiter.core.targeting import NodeState

DEFAULT_TAINT = "image-awaiter.io/images-pending:NoSchedule"
DEFAULT_CONDITION = "image-awaiter.io/ImagesReady"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
NOT_READY = "node not Ready"


@dataclass(frozen=True, slots=True)
class GateTaint:
    """The taint the gate removes: matched by key and effect (any value)."""

    key: str
    effect: str
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> GateTaint:
        spec, sep, effect = text.rpartition(":")
        key, _, value = spec.partition("=")
        if not sep or not key or effect not in TAINT_EFFECTS:
            raise UsageError(
                f"invalid --taint {text!r}",
                hint="use KEY[=VALUE]:NoSchedule|PreferNoSchedule|NoExecute",
            )
        return cls(key=key, effect=effect, value=value)

    def matches(self, key: str, effect: str) -> bool:
        return key == self.key and effect == self.effect

    def on(self, node: NodeState) -> bool:
        return any(self.matches(t.key, t.effect) for t in node.taints)

    @property
    def toleration(self) -> Toleration:
        return Toleration(key=self.key, operator="Exists", effect=self.effect)

    def __str__(self) -> str:
        return str(Taint(key=self.key, value=self.value, effect=self.effect))


class Enforce(StrEnum):
    TAINT = "taint"
    CONDITION = "condition"
    BOTH = "both"

    @property
    def taint(self) -> bool:
        return self is not Enforce.CONDITION

    @property
    def condition(self) -> bool:
        return self is not Enforce.TAINT


class GateNode(msgspec.Struct, frozen=True, gc=False):
    """A node that carries the gate taint, as the gate keeps it."""

    state: NodeState
    created: float  # epoch seconds of metadata.creationTimestamp (0: unknown)
    taints: bytes  # spec.taints exactly as read: the JSON patch tests it
    condition: str = ""  # our condition as read, "status/reason" ("" when absent)


class Action(StrEnum):
    WAIT = "wait"
    RELEASE = "release"  # every group that targets it has its images, or none targets it
    RELEASE_LATE = "release-late"  # --max-wait passed, --on-max-wait untaint
    HOLD_LATE = "hold-late"  # --max-wait passed, --on-max-wait keep


class Reason(StrEnum):
    """The condition's reasons (and the released-nodes metric's label)."""

    PENDING = "ImagesPending"
    PRESENT = "ImagesPresent"
    NO_IMAGES = "NoImagesForNode"
    MAX_WAIT = "MaxWaitExceeded"


@dataclass(frozen=True, slots=True)
class GateRules:
    max_wait: float = 900.0
    on_max_wait: str = "untaint"  # "untaint" | "keep"


@dataclass(frozen=True, slots=True)
class GateDecision:
    node: str
    action: Action
    reason: Reason
    message: str
    waited: float  # seconds since the node was created
    missing: tuple[str, ...] = ()
    failures: tuple[PullFailure, ...] = ()

    @property
    def releases(self) -> bool:
        return self.action in (Action.RELEASE, Action.RELEASE_LATE)


def decide(
    node: GateNode,
    verdicts: Sequence[NodeVerdict],
    *,
    excluded: Sequence[str],
    now: float,
    rules: GateRules,
) -> GateDecision:
    """One tainted node's decision from the verdicts of the pull groups that target it (and
    why the others do not). `now` is epoch seconds, like `node.created`, so that a restarted
    gate counts --max-wait from the same instant."""
    name = node.state.name
    waited = max(0.0, now - node.created) if node.created else 0.0
    if not verdicts and node.state.ready:
        why = "; ".join(sorted(set(excluded))) or "no pull group"
        return GateDecision(
            name, Action.RELEASE, Reason.NO_IMAGES, f"no pull group targets it ({why})", waited
        )
    if verdicts and all(v.status is NodeStatus.DONE for v in verdicts):
        return GateDecision(
            name, Action.RELEASE, Reason.PRESENT, f"images present after {waited:.1f}s", waited
        )
    missing = tuple(sorted({m for v in verdicts for m in v.missing})) or (NOT_READY,)
    failures = tuple(f for v in verdicts for f in v.failures)
    details = [v.detail for v in verdicts if v.status is not NodeStatus.DONE and v.detail]
    what = ", ".join(missing)
    if waited >= rules.max_wait:
        late = f"not ready after --max-wait {rules.max_wait:g}s: {what}"
        if failures:
            late += f" ({failures[0].reason}: {failures[0].message})"
        action = Action.RELEASE_LATE if rules.on_max_wait == "untaint" else Action.HOLD_LATE
        return GateDecision(name, action, Reason.MAX_WAIT, late, waited, missing, failures)
    message = f"waiting for {what}" + (f" ({details[0]})" if details else "")
    return GateDecision(name, Action.WAIT, Reason.PENDING, message, waited, missing, failures)


@dataclass(frozen=True, slots=True)
class ConditionUpdate:
    status: str  # "True" | "False"
    reason: Reason
    message: str

    @property
    def summary(self) -> str:
        return f"{self.status}/{self.reason}"


def wanted_condition(decision: GateDecision) -> ConditionUpdate:
    """The condition a decision stands for: True once the gate lets the node go."""
    status = "True" if decision.releases else "False"
    return ConditionUpdate(status, decision.reason, decision.message)


@dataclass(frozen=True, slots=True)
class Writes:
    """What the gate writes for one decision: the condition (None: leave it) and whether it
    removes the gate taint."""

    condition: ConditionUpdate | None
    untaint: bool


def writes_for(decision: GateDecision, node: GateNode, *, enforce: Enforce) -> Writes:
    """Only what differs from what was read: a condition already saying the same status and
    reason is not rewritten (its message may lag; it is refreshed with the next change)."""
    condition = wanted_condition(decision) if enforce.condition else None
    if condition is not None and condition.summary == node.condition:
        condition = None
    return Writes(condition=condition, untaint=enforce.taint and decision.releases)


def taint_removal_patch(taints: Sequence[Mapping[str, Any]], gate: GateTaint) -> list[Any] | None:
    """A JSON patch removing every taint that matches `gate` from `taints` (the list as read),
    conditional on the list being exactly that: a 422 says someone changed it, re-read. None
    when there is nothing to remove."""
    kept = [t for t in taints if not gate.matches(str(t.get("key")), str(t.get("effect")))]
    if len(kept) == len(taints):
        return None
    return [
        {"op": "test", "path": "/spec/taints", "value": list(taints)},
        {"op": "replace", "path": "/spec/taints", "value": kept},
    ]


def condition_patch(
    condition_type: str, update: ConditionUpdate, *, now: str, transition: bool
) -> dict[str, Any]:
    """A strategic merge patch of `nodes/status` setting one condition (merged by type);
    `lastTransitionTime` moves only when the status changes."""
    condition: dict[str, Any] = {
        "type": condition_type,
        "status": update.status,
        "reason": str(update.reason),
        "message": update.message[:1024],
        "lastHeartbeatTime": now,
    }
    if transition:
        condition["lastTransitionTime"] = now
    return {"status": {"conditions": [condition]}}


def condition_json_patch(
    conditions: Sequence[Mapping[str, Any]],
    condition_type: str,
    update: ConditionUpdate,
    *,
    now: str,
    transition: bool,
) -> list[Any]:
    """The same change as `condition_patch`, as a JSON patch for a server that takes no
    strategic merge patch: replace our condition where it is (after a `test` that it is still
    there), or append it; no other condition is touched."""
    (condition,) = condition_patch(condition_type, update, now=now, transition=transition)[
        "status"
    ]["conditions"]
    for index, existing in enumerate(conditions):
        if existing.get("type") != condition_type:
            continue
        if not transition and existing.get("lastTransitionTime"):
            condition["lastTransitionTime"] = existing["lastTransitionTime"]
        path = f"/status/conditions/{index}"
        return [
            {"op": "test", "path": f"{path}/type", "value": condition_type},
            {"op": "replace", "path": path, "value": condition},
        ]
    if not conditions:
        return [{"op": "add", "path": "/status/conditions", "value": [condition]}]
    return [{"op": "add", "path": "/status/conditions/-", "value": condition}]


def histogram_buckets() -> tuple[float, ...]:
    """Seconds from node creation to release: a node pulls for seconds to tens of minutes."""
    return (5, 10, 20, 30, 60, 120, 180, 300, 600, 900, 1800, 3600)

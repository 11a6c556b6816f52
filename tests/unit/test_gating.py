"""The gate's pure decisions: which tainted node is kept or released, and what is written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from image_awaiter.core.errors import UsageError
from image_awaiter.core.gating import (
    Action,
    ConditionUpdate,
    Enforce,
    GateNode,
    GateRules,
    GateTaint,
    Reason,
    condition_patch,
    decide,
    taint_removal_patch,
    writes_for,
)
from image_awaiter.core.placement import Taint
from image_awaiter.core.readiness import NodeStatus, NodeVerdict, PullFailure
from image_awaiter.core.targeting import NodeState

GATE = GateTaint.parse("image-awaiter.io/images-pending:NoSchedule")
CREATED = 1_000_000.0
RULES = GateRules(max_wait=900.0, on_max_wait="untaint")
KEEP_RULES = GateRules(max_wait=900.0, on_max_wait="keep")
DONE = NodeVerdict(node="n", status=NodeStatus.DONE)
PULLING = NodeVerdict(
    node="n", status=NodeStatus.PULLING, missing=("app:1",), detail="pulling app:1"
)
FAILURE = PullFailure(node="n", image="app:1", reason="ErrImagePull", message="not found")
FAILED = NodeVerdict(
    node="n", status=NodeStatus.FAILED, missing=("app:1",), failures=(FAILURE,), detail="x"
)


def gated(*, ready: bool = True, condition: str = "") -> GateNode:
    state = NodeState(
        name="n",
        ready=ready,
        taints=(Taint(key=GATE.key, effect=GATE.effect),),
    )
    return GateNode(state=state, created=CREATED, taints=b"[]", condition=condition)


@pytest.mark.parametrize(
    ("verdicts", "excluded", "ready", "after", "rules", "action", "reason"),
    [
        ((DONE,), (), True, 10, RULES, Action.RELEASE, Reason.PRESENT),
        ((DONE, DONE), (), True, 10, RULES, Action.RELEASE, Reason.PRESENT),
        ((DONE, PULLING), (), True, 10, RULES, Action.WAIT, Reason.PENDING),
        ((PULLING,), (), True, 10, RULES, Action.WAIT, Reason.PENDING),
        ((FAILED,), (), True, 10, RULES, Action.WAIT, Reason.PENDING),
        ((FAILED,), (), True, 900, RULES, Action.RELEASE_LATE, Reason.MAX_WAIT),
        ((PULLING,), (), True, 1000, KEEP_RULES, Action.HOLD_LATE, Reason.MAX_WAIT),
        (
            (),
            ("nodeSelector kubernetes.io/os=linux does not match",),
            True,
            1,
            RULES,
            Action.RELEASE,
            Reason.NO_IMAGES,
        ),
        ((), ("node not Ready",), False, 10, RULES, Action.WAIT, Reason.PENDING),
        ((), ("node not Ready",), False, 901, RULES, Action.RELEASE_LATE, Reason.MAX_WAIT),
    ],
    ids=[
        "one group done releases",
        "every group done releases",
        "one group of two still pulling keeps",
        "pulling keeps",
        "a failing pull keeps until max-wait",
        "a failing pull is released at max-wait",
        "on-max-wait keep holds past max-wait",
        "a node no group targets (a Windows node) is released at once",
        "a node not Ready is kept: no puller can run there yet",
        "a node never Ready is released at max-wait",
    ],
)
def test_decide_table(
    verdicts: tuple[NodeVerdict, ...],
    excluded: tuple[str, ...],
    ready: bool,
    after: float,
    rules: GateRules,
    action: Action,
    reason: Reason,
) -> None:
    decision = decide(
        gated(ready=ready), verdicts, excluded=excluded, now=CREATED + after, rules=rules
    )
    assert (decision.action, decision.reason) == (action, reason)
    assert decision.waited == after


def test_a_late_release_names_what_is_missing_and_the_runtimes_message() -> None:
    decision = decide(gated(), (FAILED,), excluded=(), now=CREATED + 900, rules=RULES)
    assert "app:1" in decision.message
    assert "not found" in decision.message
    assert decision.failures == (FAILURE,)


@pytest.mark.parametrize(
    ("text", "key", "value", "effect"),
    [
        (
            "image-awaiter.io/images-pending:NoSchedule",
            "image-awaiter.io/images-pending",
            "",
            "NoSchedule",
        ),
        (
            "startup-taint.cluster-autoscaler.kubernetes.io/images=pending:NoExecute",
            "startup-taint.cluster-autoscaler.kubernetes.io/images",
            "pending",
            "NoExecute",
        ),
    ],
)
def test_gate_taints_parse(text: str, key: str, value: str, effect: str) -> None:
    assert GateTaint.parse(text) == GateTaint(key=key, effect=effect, value=value)
    assert str(GateTaint.parse(text)) == text


@pytest.mark.parametrize("text", ["nokey", ":NoSchedule", "k:Sometimes", "k=v"])
def test_a_bad_gate_taint_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        GateTaint.parse(text)


FOREIGN = {"key": "example.com/other", "value": "x", "effect": "NoSchedule"}
OURS = {"key": GATE.key, "effect": "NoSchedule", "timeAdded": "2026-01-01T00:00:00Z"}
OURS_OTHER_EFFECT = {"key": GATE.key, "effect": "NoExecute"}


@pytest.mark.parametrize(
    ("taints", "kept"),
    [
        ([OURS], []),
        ([FOREIGN, OURS], [FOREIGN]),
        ([OURS, FOREIGN, OURS_OTHER_EFFECT], [FOREIGN, OURS_OTHER_EFFECT]),
        ([FOREIGN], None),
        ([], None),
    ],
    ids=[
        "only ours",
        "ours beside a foreign taint",
        "same key other effect stays",
        "none",
        "no taints",
    ],
)
def test_the_taint_patch_removes_only_the_gate_taint_and_tests_the_list_read(
    taints: list[dict[str, Any]], kept: list[dict[str, Any]] | None
) -> None:
    patch = taint_removal_patch(taints, GATE)
    if kept is None:
        assert patch is None
        return
    assert patch == [
        {"op": "test", "path": "/spec/taints", "value": taints},
        {"op": "replace", "path": "/spec/taints", "value": kept},
    ]
    json.dumps(patch)  # a body the API can take


@pytest.mark.parametrize(
    ("enforce", "action", "condition", "wrote_condition", "untaint"),
    [
        (Enforce.BOTH, Action.RELEASE, "", "True/ImagesPresent", True),
        (Enforce.BOTH, Action.RELEASE, "True/ImagesPresent", None, True),
        (Enforce.TAINT, Action.RELEASE, "", None, True),
        (Enforce.CONDITION, Action.RELEASE, "False/ImagesPending", "True/ImagesPresent", False),
        (Enforce.BOTH, Action.WAIT, "", "False/ImagesPending", False),
        (Enforce.BOTH, Action.WAIT, "False/ImagesPending", None, False),
        (Enforce.TAINT, Action.WAIT, "", None, False),
    ],
)
def test_writes_are_only_what_differs_from_what_was_read(
    enforce: Enforce, action: Action, condition: str, wrote_condition: str | None, untaint: bool
) -> None:
    verdicts = (DONE,) if action is Action.RELEASE else (PULLING,)
    decision = decide(gated(), verdicts, excluded=(), now=CREATED + 5, rules=RULES)
    assert decision.action is action
    writes = writes_for(decision, gated(condition=condition), enforce=enforce)
    assert (writes.condition.summary if writes.condition else None) == wrote_condition
    assert writes.untaint is untaint


def test_the_condition_patch_moves_its_transition_time_only_when_the_status_changes() -> None:
    update = ConditionUpdate("True", Reason.PRESENT, "images present after 3.0s")
    moved = condition_patch("image-awaiter.io/ImagesReady", update, now="T", transition=True)
    kept = condition_patch("image-awaiter.io/ImagesReady", update, now="T", transition=False)
    (condition,) = moved["status"]["conditions"]
    assert condition == {
        "type": "image-awaiter.io/ImagesReady",
        "status": "True",
        "reason": "ImagesPresent",
        "message": "images present after 3.0s",
        "lastHeartbeatTime": "T",
        "lastTransitionTime": "T",
    }
    assert "lastTransitionTime" not in kept["status"]["conditions"][0]


CONDITION_TYPE = "image-awaiter.io/ImagesReady"
KUBELET_READY = {"type": "Ready", "status": "True", "lastTransitionTime": "R"}
OURS_FALSE = {"type": CONDITION_TYPE, "status": "False", "lastTransitionTime": "EARLIER"}


@pytest.mark.parametrize(
    ("conditions", "transition", "ops"),
    [
        (
            [KUBELET_READY, OURS_FALSE],
            True,
            [("test", "/status/conditions/1/type"), ("replace", "/status/conditions/1")],
        ),
        ([KUBELET_READY], True, [("add", "/status/conditions/-")]),
        ([], True, [("add", "/status/conditions")]),
    ],
    ids=["ours is replaced where it is", "appended after the kubelet's", "the first condition"],
)
def test_the_condition_as_a_json_patch_touches_no_other_condition(
    conditions: list[dict[str, Any]], transition: bool, ops: list[tuple[str, str]]
) -> None:
    from image_awaiter.core.gating import condition_json_patch

    update = ConditionUpdate("True", Reason.PRESENT, "images present after 3.0s")
    patch = condition_json_patch(conditions, CONDITION_TYPE, update, now="T", transition=transition)
    assert [(op["op"], op["path"]) for op in patch] == ops
    written = [op["value"] for op in patch if op["op"] != "test"]
    written = [c for v in written for c in (v if isinstance(v, list) else [v])]
    assert [c["type"] for c in written] == [CONDITION_TYPE]


def test_the_condition_as_a_json_patch_keeps_its_transition_time_when_the_status_stays() -> None:
    from image_awaiter.core.gating import condition_json_patch

    update = ConditionUpdate("False", Reason.MAX_WAIT, "kept")
    patch = condition_json_patch([OURS_FALSE], CONDITION_TYPE, update, now="T", transition=False)
    assert patch[1]["value"]["lastTransitionTime"] == "EARLIER"

"""The kinds of run as policies: what each does after the first reading of the nodes and after
every later evaluation. Pure: evaluations and times in, a step out."""

from __future__ import annotations

import pytest

from image_awaiter.core.readiness import Evaluation, NodeStatus, NodeVerdict, PullFailure
from image_awaiter.run.policies import Await, Check, Plan, Policy, Step, policy_for
from image_awaiter.spec.settings import Settings

FAILURE = PullFailure(node="n2", image="app:1", reason="ErrImagePull", message="not found")
DONE = Evaluation(
    verdicts=(NodeVerdict("n1", NodeStatus.DONE), NodeVerdict("n2", NodeStatus.DONE)),
    excluded={},
    failing_since={},
)
PULLING = Evaluation(
    verdicts=(NodeVerdict("n1", NodeStatus.DONE), NodeVerdict("n2", NodeStatus.PULLING)),
    excluded={},
    failing_since={},
)
FAILED = Evaluation(
    verdicts=(
        NodeVerdict("n1", NodeStatus.DONE),
        NodeVerdict("n2", NodeStatus.FAILED, failures=(FAILURE,)),
    ),
    excluded={},
    failing_since={},
)
NO_TARGETS = Evaluation(verdicts=(), excluded={"n1": "node not Ready"}, failing_since={})


@pytest.mark.parametrize(
    ("policy", "evaluation", "step"),
    [
        pytest.param(Check(), DONE, Step.SUCCEEDED, id="check-done"),
        pytest.param(Check(), PULLING, Step.MISSING, id="check-lacking"),
        pytest.param(Check(), NO_TARGETS, Step.SUCCEEDED, id="check-no-targets"),
        pytest.param(Plan(), DONE, Step.PLANNED, id="plan-done"),
        pytest.param(Plan(), PULLING, Step.PLANNED, id="plan-lacking"),
        pytest.param(Await(), DONE, Step.SUCCEEDED, id="await-fast-path"),
        pytest.param(Await(), PULLING, Step.PULL, id="await-lacking-pulls"),
        pytest.param(Await(), FAILED, Step.PULL, id="await-a-status-failure-still-pulls"),
    ],
)
def test_the_first_reading_of_the_nodes_decides_the_next_step(
    policy: Policy, evaluation: Evaluation, step: Step
) -> None:
    assert policy.first(evaluation) is step


@pytest.mark.parametrize(
    ("evaluation", "now", "deadline", "step"),
    [
        pytest.param(PULLING, 10.0, 20.0, Step.WATCH, id="pulling-before-the-deadline"),
        pytest.param(PULLING, 10.0, None, Step.WATCH, id="pulling-with-no-timeout"),
        pytest.param(PULLING, 20.0, 20.0, Step.TIMED_OUT, id="pulling-at-the-deadline"),
        pytest.param(DONE, 30.0, 20.0, Step.SUCCEEDED, id="done-wins-over-the-deadline"),
        pytest.param(FAILED, 10.0, 20.0, Step.PULL_FAILED, id="a-failure-ends-it"),
        pytest.param(FAILED, 30.0, 20.0, Step.PULL_FAILED, id="a-failure-wins-over-the-deadline"),
        pytest.param(NO_TARGETS, 10.0, 20.0, Step.SUCCEEDED, id="no-targets-is-done"),
    ],
)
def test_await_watches_until_done_a_pull_failure_or_the_deadline(
    evaluation: Evaluation, now: float, deadline: float | None, step: Step
) -> None:
    assert Await().next(evaluation, now=now, deadline=deadline) is step


@pytest.mark.parametrize(
    ("settings", "name", "once", "writes"),
    [
        pytest.param(Settings(command="check"), "check", True, False, id="check"),
        pytest.param(Settings(command="await", dry_run=True), "plan", True, False, id="dry-run"),
        pytest.param(Settings(command="await"), "await", False, True, id="await"),
    ],
)
def test_each_command_has_its_policy_and_only_await_writes(
    settings: Settings, name: str, once: bool, writes: bool
) -> None:
    policy = policy_for(settings)
    assert (policy.name, policy.once, policy.writes) == (name, once, writes)

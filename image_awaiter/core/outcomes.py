"""How a run ended: a frozen `Outcome` (exit code, result, the one-line message, what was seen,
and `RunRecord`, what the run was: everything the report is built from) and the wording of each
ending as pure functions of the evaluation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from image_awaiter.core.creation import CreationRefused
from image_awaiter.core.errors import AwaiterError, ExitCode, Interrupted, one_line
from image_awaiter.core.pullfacts import PullFacts
from image_awaiter.core.pullmethod import MethodChoice
from image_awaiter.core.readiness import Evaluation, NodeStatus, NodeVerdict
from image_awaiter.core.references import ImageKey, ImageRef
from image_awaiter.core.wording import counted, every


class Result(StrEnum):
    """The report's `result` field."""

    SUCCESS = "success"
    MISSING = "missing"  # check: images missing
    TIMEOUT = "timeout"
    PULL_FAILED = "pull-failed"
    PODS_REFUSED = "pods-refused"  # the cluster will not create the puller pods
    INTERRUPTED = "interrupted"
    BAD_INPUT = "bad-input"
    API_ERROR = "api-error"
    PLANNED = "planned"  # await --dry-run: the plan, nothing created


@dataclass(frozen=True, slots=True)
class Skipped:
    """Images found but not awaited, and why: a custom resource, a Helm hook, another
    pre-puller, or a ConfigMap/Secret value (`key`) holding image references."""

    kind: str
    name: str
    images: tuple[str, ...]
    source: str
    reason: str = "a custom resource: its images are not awaited"
    key: str = ""  # where in the object, when it is a value

    @property
    def ref(self) -> str:
        ref = f"{self.kind}/{self.name}" if self.name else self.kind
        return f"{ref} {self.key}" if self.key else ref


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What the run was, for the report: its command, namespace and images (each once), the
    custom resources skipped on the way, and when it started and ended (ISO, UTC)."""

    command: str
    namespace: str
    images: tuple[ImageRef, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    started_at: str = ""
    finished_at: str = ""
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Outcome:
    exit_code: ExitCode
    result: Result
    message: str
    evaluation: Evaluation | None = None
    done_after: Mapping[str, float] = field(default_factory=dict)
    daemonset: Mapping[str, Any] | None = None  # the report's record of the puller DaemonSet
    pull_facts: PullFacts | None = None  # what the kubelets' events said, per node and image
    groups: tuple[GroupOutcome, ...] = ()  # each pull group's own view, for the report
    record: RunRecord | None = None  # set once the run has ended (`awaiting.execute`)
    # The awaited images each target node's own status listed when the run began: present
    # there before the run, whether or not a kubelet event says so.
    listed_at_start: Mapping[str, frozenset[ImageKey]] = field(default_factory=dict)
    pull_method: MethodChoice | None = None  # what `--pull-method auto` chose, and why


@dataclass(frozen=True, slots=True)
class GroupOutcome:
    """One pull group at the end of a run: the report's `groups[]` entry."""

    name: str
    images: tuple[ImageRef, ...]
    workloads: tuple[str, ...]
    evaluation: Evaluation | None
    daemonset: Mapping[str, Any] | None


def listed_images(evaluation: Evaluation | None) -> dict[str, frozenset[ImageKey]]:
    """Node -> the awaited images its own status lists, for `Outcome.listed_at_start`."""
    if evaluation is None:
        return {}
    return {v.node: v.status_images for v in evaluation.verdicts if v.status_images}


def succeeded(evaluation: Evaluation, *, images: int) -> tuple[ExitCode, Result, str]:
    targets = len(evaluation.verdicts)
    if targets == 0:
        message = f"no target nodes ({len(evaluation.excluded)} excluded); nothing to await"
    else:
        have = "has" if targets == 1 else "have"
        message = f"{every(targets, 'target node')} {have} {every(images, 'image')}"
    return ExitCode.OK, Result.SUCCESS, message


def missing(evaluation: Evaluation) -> tuple[ExitCode, Result, str]:
    """`check` found images missing."""
    count = len(evaluation.verdicts) - evaluation.count(NodeStatus.DONE)
    message = (
        f"images missing on {count} of {counted(len(evaluation.verdicts), 'target node')}: "
        f"{not_done_lines(evaluation)}; run `image-awaiter await` with the same options to "
        "pull them"
    )
    return ExitCode.IMAGES_MISSING, Result.MISSING, message


IMAGE_VOLUMES_NEED = "Kubernetes 1.35+, containerd 2 or CRI-O 1.30+"


def pull_failed(
    evaluation: Evaluation, *, helper: ImageKey | None = None, pause: ImageKey | None = None
) -> tuple[ExitCode, Result, str]:
    """The first failure's line. `helper` and `pause`: the generated puller's own images, which
    are not the user's: when one of them fails, the line says so and what to use instead."""
    failures = evaluation.failures
    first = failures[0]
    more = f" (and {len(failures) - 1} more failures)" if len(failures) > 1 else ""
    kind = f" ({first.error_class} {first.kind})" if first.kind else ""
    advice = first.advice or "fix the reference, registry access or pull secret"
    what = f"image {first.image}"
    if first.image == helper:
        what = f"the puller's helper image {first.image} (not one of your images)"
        advice = (
            "push an image with the helper (Dockerfile.distroless) where the nodes can pull "
            "it and pass --helper-image REF, or use --pull-method imageVolumes, which needs no "
            f"helper ({IMAGE_VOLUMES_NEED})"
        )
    elif first.image == pause:
        what = f"the puller's pause image {first.image} (not one of your images)"
        advice = "pass --pause-image with a pause image the nodes can pull"
    message = (
        f"{what} cannot be pulled on node {first.node}{kind}: {first.reason}: "
        f"{one_line(first.message)}{more}; {advice}"
    )
    return ExitCode.PULL_FAILED, Result.PULL_FAILED, message


def pods_refused(refused: CreationRefused) -> tuple[ExitCode, Result, str]:
    """The DaemonSet controller cannot create the pullers (admission refused them): exit 3 at
    once with its words, not a wait until the timeout."""
    message = (
        f"the DaemonSet controller cannot create the puller pods of DaemonSet "
        f"{refused.daemonset} ({refused.refusal}): {refused.message}; {refused.advice}"
    )
    return ExitCode.API, Result.PODS_REFUSED, message


def planned(evaluation: Evaluation, *, groups: int) -> tuple[ExitCode, Result, str]:
    """`await --dry-run`: exit 0 when nothing is missing, 1 otherwise (like `check`)."""
    lacking = len(evaluation.verdicts) - evaluation.count(NodeStatus.DONE)
    if not lacking:
        targets = len(evaluation.verdicts)
        have = "has" if targets == 1 else "have"
        message = (
            f"dry run: {every(targets, 'target node')} {have} every image of "
            f"{counted(groups, 'pull group')}; nothing would be created"
        )
        return ExitCode.OK, Result.PLANNED, message
    message = (
        f"dry run: images missing on {lacking} of "
        f"{counted(len(evaluation.verdicts), 'target node')} "
        f"({counted(groups, 'pull group')}); nothing was created: {not_done_lines(evaluation)}; "
        "run without --dry-run to pull them"
    )
    return ExitCode.IMAGES_MISSING, Result.PLANNED, message


def timed_out(
    evaluation: Evaluation | None,
    *,
    timeout: float,
    on_timeout: str,
    cause: str | None = None,
    report: bool = False,
) -> tuple[ExitCode, Result, str]:
    """Exit 1, or 0 with `--on-timeout succeed`; `cause` names an API that kept failing;
    `report`: a `--report` is written, so the advice may point to it."""
    if evaluation is None:
        message = f"timed out after {timeout:g}s before any node was judged"
    else:
        waiting = len(evaluation.verdicts) - evaluation.count(NodeStatus.DONE)
        message = (
            f"timed out after {timeout:g}s with images missing on "
            f"{waiting} of {counted(len(evaluation.verdicts), 'target node')}: "
            f"{not_done_lines(evaluation)}"
        )
    if cause is not None:
        message += f" ({cause})"
    if on_timeout == "succeed":
        return ExitCode.OK, Result.TIMEOUT, message + " (--on-timeout succeed)"
    where = "see the report for each node" if report else "rerun with --report for each node"
    return ExitCode.IMAGES_MISSING, Result.TIMEOUT, f"{message}; raise --timeout or {where}"


def failed(error: AwaiterError | Interrupted) -> tuple[ExitCode, Result, str]:
    """An error or a signal that ended the run: its own exit code and one line."""
    if isinstance(error, Interrupted):
        result = Result.INTERRUPTED
    elif error.exit_code is ExitCode.USAGE:
        result = Result.BAD_INPUT
    else:
        result = Result.API_ERROR
    return error.exit_code, result, error.one_line()


def gate_stopped(outcome: Outcome) -> Outcome:
    """The gate ends only on a signal or an error. SIGTERM is how Kubernetes stops a
    Deployment's pod: a normal end, exit 0."""
    if outcome.result is not Result.INTERRUPTED:
        return outcome
    name = "SIGTERM" if outcome.exit_code is ExitCode.SIGTERM else "SIGINT"
    code = ExitCode.OK if name == "SIGTERM" else outcome.exit_code
    return replace(outcome, exit_code=code, message=f"gate stopped by {name}")


def short_verdict(verdict: NodeVerdict) -> str:
    return f"{verdict.node}: {verdict.detail or verdict.status.value}"


def not_done_lines(evaluation: Evaluation, *, limit: int = 3) -> str:
    waiting = [v for v in evaluation.verdicts if v.status is not NodeStatus.DONE]
    text = "; ".join(short_verdict(v) for v in waiting[:limit])
    return text + (f"; and {len(waiting) - limit} more" if len(waiting) > limit else "")

"""Per-node readiness: has this node got every awaited image, is it still pulling, has it failed?

Two signals prove presence: the node's own `status.images` (capped at 50 images and lagging, so
it proves presence but never absence) and the puller pod on that node (a container whose image
has an `imageID`, or that ran at all, had its image). Everything here is pure: `evaluate` takes
plain records and the time, and returns a verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial

from image_awaiter.core.placement import Placement
from image_awaiter.core.pullerpods import (
    PERMANENT_PULL_REASONS,
    ImagePull,
    PullerPod,
    PullState,
    merge_pods_by_node,
)
from image_awaiter.core.pullerrors import (
    PullError,
    classify_waiting,
    most_informative,
    platform_reason,
)
from image_awaiter.core.references import ImageKey, ImageRef
from image_awaiter.core.targeting import NodeState, split_targets


class NodeStatus(StrEnum):
    DONE = "done"
    PULLING = "pulling"
    MISSING = "missing"  # images absent and no puller pod (yet) on the node
    UNSCHEDULABLE = "unschedulable"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PullFailure:
    """A failing pull on one node; `error_class`, `kind` and `advice` come from
    `pullerrors` (empty when the kubelet's reason is not a pull failure it knows)."""

    node: str
    image: str
    reason: str
    message: str
    error_class: str = ""
    kind: str = ""
    advice: str = ""

    def __str__(self) -> str:
        return f"{self.image} on {self.node}: {self.reason}: {self.message}"


@dataclass(frozen=True, slots=True)
class PlatformExclusion:
    """An image this node cannot run: its registry has no variant for the node's platform."""

    image: str  # display text
    reason: str  # "image has no linux/arm64 variant"
    message: str  # the runtime's words


@dataclass(frozen=True, slots=True)
class NodeVerdict:
    node: str
    status: NodeStatus
    missing: tuple[str, ...] = ()
    failures: tuple[PullFailure, ...] = ()
    detail: str = ""
    # Done because the node's own status lists every image (not only a puller pod's word): the
    # only nodes a recreated DaemonSet may skip, since a pod's word goes when the pod does.
    listed: bool = False
    # The awaited images the node's own status lists (the node's shared set, not a copy): the
    # report marks them present there even when no puller pod, so no kubelet event, came.
    status_images: frozenset[ImageKey] = frozenset()


@dataclass(frozen=True, slots=True)
class Evaluation:
    verdicts: tuple[NodeVerdict, ...]
    excluded: Mapping[str, str]
    failing_since: Mapping[tuple[str, ImageKey], float]  # (node, image key) -> first seen failing
    # (node, image key) -> why the node is not awaited for that image; a node left with no
    # image to await is in `excluded` too.
    platform_excluded: Mapping[tuple[str, ImageKey], PlatformExclusion] = field(
        default_factory=dict
    )
    # Several pull groups combined: each group's own evaluation, by the group's name, for what
    # judges a node per group (the gate's decisions). Empty for one group's own evaluation.
    groups: tuple[tuple[str, Evaluation], ...] = ()

    @property
    def done(self) -> bool:
        return all(v.status is NodeStatus.DONE for v in self.verdicts)

    @property
    def failures(self) -> tuple[PullFailure, ...]:
        return tuple(f for v in self.verdicts if v.status is NodeStatus.FAILED for f in v.failures)

    def count(self, status: NodeStatus) -> int:
        return sum(1 for v in self.verdicts if v.status is status)

    @property
    def done_nodes(self) -> list[str]:
        return [v.node for v in self.verdicts if v.status is NodeStatus.DONE]

    @property
    def listed_nodes(self) -> list[str]:
        """Done nodes whose own status lists every image: a DaemonSet may skip these."""
        return [v.node for v in self.verdicts if v.listed]


@dataclass(frozen=True, slots=True)
class FailureRules:
    """How classified pull errors end a run: `fail_fast` fails permanent errors at once (else
    they get the grace like any other); a platform mismatch excludes the node for that image,
    or with `platform_mismatch="fail"` is a permanent failure."""

    fail_fast: bool = True
    platform_mismatch: str = "exclude"  # "exclude" | "fail"


class Judge:
    """`evaluate` across a run: remembers when each pull error was first seen (the grace
    period counts from there) and the last evaluation. Pure: the time is passed in."""

    def __init__(
        self,
        *,
        images: Sequence[ImageRef],
        placement: Placement,
        include_cordoned: bool,
        grace: float,
        rules: FailureRules | None = None,
    ) -> None:
        self._images = images
        self._placement = placement
        self._include_cordoned = include_cordoned
        self._grace = grace
        self._rules = rules or FailureRules()
        self._failing_since: Mapping[tuple[str, ImageKey], float] = {}
        self._platform_excluded: Mapping[tuple[str, ImageKey], PlatformExclusion] = {}
        self.last: Evaluation | None = None

    def __call__(
        self,
        nodes: Mapping[str, NodeState],
        pods: Iterable[PullerPod],
        *,
        now: float,
        event_errors: Mapping[tuple[str, ImageKey], PullError] | None = None,
    ) -> Evaluation:
        self.last = evaluate(
            nodes=nodes,
            pods=pods,
            images=self._images,
            placement=self._placement,
            include_cordoned=self._include_cordoned,
            now=now,
            failing_since=self._failing_since,
            grace=self._grace,
            rules=self._rules,
            event_errors=event_errors or {},
            platform_excluded=self._platform_excluded,
        )
        self._failing_since = self.last.failing_since
        self._platform_excluded = self.last.platform_excluded
        return self.last

    @property
    def done_nodes(self) -> list[str]:
        return self.last.done_nodes if self.last is not None else []

    @property
    def listed_nodes(self) -> list[str]:
        return self.last.listed_nodes if self.last is not None else []


def evaluate(
    *,
    nodes: Mapping[str, NodeState],
    pods: Iterable[PullerPod],
    images: Sequence[ImageRef],
    placement: Placement,
    include_cordoned: bool,
    now: float,
    failing_since: Mapping[tuple[str, ImageKey], float],
    grace: float,
    rules: FailureRules = FailureRules(),
    event_errors: Mapping[tuple[str, ImageKey], PullError] | None = None,
    platform_excluded: Mapping[tuple[str, ImageKey], PlatformExclusion] | None = None,
) -> Evaluation:
    """Judge every target node; `failing_since` carries pull-error first-seen times across
    calls, `platform_excluded` the (node, image) pairs already excluded (they stay so: the
    image will not grow a variant during the run). `event_errors` are the causes the pods'
    `Failed` events gave, for waiting states that do not say it."""
    targets, excluded = split_targets(nodes, placement, include_cordoned=include_cordoned)
    pods_by_node = merge_pods_by_node(pods)
    verdicts: list[NodeVerdict] = []
    seen_failing: dict[tuple[str, ImageKey], float] = {}
    platform = {
        pair: exclusion for pair, exclusion in (platform_excluded or {}).items() if pair[0] in nodes
    }
    for node in targets:
        verdict, failing = judge_node(
            node=node,
            pod=pods_by_node.get(node.name),
            images=images,
            now=now,
            failing_since=failing_since,
            grace=grace,
            rules=rules,
            event_errors=event_errors or {},
            platform_excluded=platform,
        )
        if verdict is None:  # nothing left to await there: every missing image has no variant
            reasons = (platform.get((node.name, image.key)) for image in images)
            excluded[node.name] = "; ".join(sorted({e.reason for e in reasons if e is not None}))
            continue
        verdicts.append(verdict)
        seen_failing.update(failing)
    return Evaluation(
        verdicts=tuple(verdicts),
        excluded=excluded,
        failing_since=seen_failing,
        platform_excluded=platform,
    )


def judge_node(
    *,
    node: NodeState,
    pod: PullerPod | None,
    images: Sequence[ImageRef],
    now: float,
    failing_since: Mapping[tuple[str, ImageKey], float],
    grace: float,
    rules: FailureRules = FailureRules(),
    event_errors: Mapping[tuple[str, ImageKey], PullError] | None = None,
    platform_excluded: dict[tuple[str, ImageKey], PlatformExclusion] | None = None,
) -> tuple[NodeVerdict | None, dict[tuple[str, ImageKey], float]]:
    """One node's verdict (None: excluded, no image left to await there), and the (node,
    image) pairs now failing with their first-seen time. Platform mismatches found are added
    to `platform_excluded`."""
    excluded_here = platform_excluded if platform_excluded is not None else {}
    if all(image.key in node.images for image in images) and not (
        excluded_here and any((node.name, image.key) in excluded_here for image in images)
    ):  # the common verdict, at once: 65,000 nodes are judged on every evaluation
        return NodeVerdict(node.name, NodeStatus.DONE, listed=True, status_images=node.images), {}
    verdict_of = partial(NodeVerdict, node.name, status_images=node.images)
    seen = _Seen(node, pod.images if pod is not None else {}, event_errors or {})
    if rules.platform_mismatch == "exclude":
        _exclude_mismatches(seen, images, excluded=excluded_here)
    missing = [
        image
        for image in images
        if not seen.present(image) and (node.name, image.key) not in excluded_here
    ]
    if not missing and any((node.name, image.key) in excluded_here for image in images):
        return None, {}
    if not missing:
        return verdict_of(NodeStatus.DONE), {}
    names = tuple(image.original for image in missing)
    if pod is None:  # `check` and `--dry-run` never make one: say what the node lacks
        detail = f"lacks {', '.join(names)}"
        return verdict_of(NodeStatus.MISSING, missing=names, detail=detail), {}
    if pod.unschedulable is not None:
        detail = f"puller pod cannot be scheduled: {pod.unschedulable}"
        return verdict_of(NodeStatus.UNSCHEDULABLE, missing=names, detail=detail), {}
    final, pending, failing = _failures(
        seen,
        _candidates(seen, images=images, missing=missing),
        excluded=excluded_here,
        failing_since=failing_since,
        now=now,
        grace=grace,
        rules=rules,
    )
    if final:
        verdict = verdict_of(NodeStatus.FAILED, names, failures=tuple(final), detail=str(final[0]))
        return verdict, failing
    detail = _pulling_detail(pending, pulls=seen.pulls, names=names)
    return verdict_of(NodeStatus.PULLING, names, tuple(pending), detail), failing


@dataclass(frozen=True, slots=True)
class _Seen:
    """What is known of one node's images: its own status, its puller pod's pull states, and
    the causes its pods' `Failed` events gave."""

    node: NodeState
    pulls: Mapping[ImageKey, ImagePull]
    hints: Mapping[tuple[str, ImageKey], PullError]

    def present(self, image: ImageRef) -> bool:
        pull = self.pulls.get(image.key)
        return image.key in self.node.images or (
            pull is not None and pull.state is PullState.PULLED
        )

    def classify(self, key: ImageKey, pull: ImagePull) -> PullError | None:
        return most_informative(
            classify_waiting(pull.reason, pull.message), self.hints.get((self.node.name, key))
        )


def _candidates(
    seen: _Seen, *, images: Sequence[ImageRef], missing: Sequence[ImageRef]
) -> list[tuple[str, ImageKey]]:
    """The pulls whose failure fails the node (display text, key): its missing images, and
    any other image of the puller pod (a failing helper or pause image blocks the pull as
    surely as an awaited one)."""
    awaited = {image.key for image in images}
    return [(image.original, image.key) for image in missing] + [
        (key, key) for key in seen.pulls if key not in awaited
    ]


def _exclude_mismatches(
    seen: _Seen,
    images: Sequence[ImageRef],
    *,
    excluded: dict[tuple[str, ImageKey], PlatformExclusion],
) -> None:
    """Each failing image with no variant for the node's platform, excluded there."""
    node = seen.node
    for image in images:
        pull = seen.pulls.get(image.key)
        if seen.present(image) or pull is None or pull.state is not PullState.FAILING:
            continue
        error = seen.classify(image.key, pull)
        if error is not None and error.error_class == "platform-mismatch":
            excluded[(node.name, image.key)] = PlatformExclusion(
                image=image.original,
                reason=platform_reason(
                    error,
                    node_os=node.labels.get("kubernetes.io/os", "linux"),
                    node_arch=node.labels.get("kubernetes.io/arch", "unknown"),
                ),
                message=error.message,
            )


def _failures(
    seen: _Seen,
    candidates: Sequence[tuple[str, ImageKey]],
    *,
    excluded: Mapping[tuple[str, ImageKey], PlatformExclusion],
    failing_since: Mapping[tuple[str, ImageKey], float],
    now: float,
    grace: float,
    rules: FailureRules,
) -> tuple[list[PullFailure], list[PullFailure], dict[tuple[str, ImageKey], float]]:
    """The failing pulls among `candidates` (display text, key): final (permanent, failing
    fast, or past the grace), pending (within the grace), and when each was first seen."""
    node = seen.node.name
    failing: dict[tuple[str, ImageKey], float] = {}
    final: list[PullFailure] = []
    pending: list[PullFailure] = []
    for display, key in candidates:
        pull = seen.pulls.get(key)
        if pull is None or pull.state is not PullState.FAILING or (node, key) in excluded:
            continue
        since = failing[(node, key)] = failing_since.get((node, key), now)
        error = seen.classify(key, pull)
        failure = PullFailure(
            node=node,
            image=display,
            reason=pull.reason,
            message=error.message if error is not None else pull.message,
            error_class="permanent"
            if error is not None and error.error_class == "platform-mismatch"
            else (error.error_class if error else ""),
            kind=error.kind if error else "",
            advice=error.advice if error else "",
        )
        at_once = error is not None and rules.fail_fast and error.error_class != "transient"
        if pull.reason in PERMANENT_PULL_REASONS or at_once or now - since >= grace:
            final.append(failure)
        else:
            pending.append(failure)
    return final, pending, failing


def _pulling_detail(
    pending: Sequence[PullFailure], *, pulls: Mapping[ImageKey, ImagePull], names: Sequence[str]
) -> str:
    stuck = next((p for p in pulls.values() if p.state is PullState.PULLED and p.reason), None)
    if pending:
        return f"retrying {pending[0]}"
    if stuck is not None:
        return f"puller pod stuck after a pull: {stuck.reason}: {stuck.message}"
    return "pulling " + ", ".join(names)

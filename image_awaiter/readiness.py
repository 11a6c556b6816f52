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
from typing import Any

from image_awaiter.references import ImageRef, parse_image
from image_awaiter.targeting import NodeState, Placement, split_targets

# Reasons the kubelet gives that no retry will fix.
PERMANENT_PULL_REASONS = frozenset({"InvalidImageName", "ErrInvalidImageName", "ErrImageNeverPull"})
# Reasons that may be transient (a registry hiccup) and become failures after a grace period.
RETRYING_PULL_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "RegistryUnavailable",
        "ErrRegistryUnavailable",
        "SignatureValidationFailed",
        "ImageInspectError",
    }
)
PULL_FAILURE_REASONS = PERMANENT_PULL_REASONS | RETRYING_PULL_REASONS
# Waiting reasons the kubelet gives only after the image was pulled (it pulls, then builds the
# container's config, then creates and starts it): the image is on the node, but the container
# is stuck, and with it every init container after it (e.g. runAsNonRoot on a root image).
STUCK_AFTER_PULL_REASONS = frozenset(
    {
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "PreStartHookError",
        "PostStartHookError",
    }
)


class PullState(StrEnum):
    PULLED = "pulled"
    PULLING = "pulling"
    FAILING = "failing"


@dataclass(frozen=True, slots=True)
class ImagePull:
    state: PullState
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class PullerPod:
    """What the awaiter keeps of one puller pod."""

    name: str
    node: str | None
    images: Mapping[str, ImagePull] = field(default_factory=dict)  # by image match key
    unschedulable: str | None = None  # the scheduler's message while it cannot place the pod


class NodeStatus(StrEnum):
    DONE = "done"
    PULLING = "pulling"
    MISSING = "missing"  # images absent and no puller pod (yet) on the node
    UNSCHEDULABLE = "unschedulable"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PullFailure:
    node: str
    image: str
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.image} on {self.node}: {self.reason}: {self.message}"


@dataclass(frozen=True, slots=True)
class NodeVerdict:
    node: str
    status: NodeStatus
    missing: tuple[str, ...] = ()
    failures: tuple[PullFailure, ...] = ()
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Evaluation:
    verdicts: tuple[NodeVerdict, ...]
    excluded: Mapping[str, str]
    failing_since: Mapping[tuple[str, str], float]  # (node, image key) -> first seen failing

    @property
    def done(self) -> bool:
        return all(v.status is NodeStatus.DONE for v in self.verdicts)

    @property
    def failures(self) -> tuple[PullFailure, ...]:
        return tuple(f for v in self.verdicts if v.status is NodeStatus.FAILED for f in v.failures)

    def count(self, status: NodeStatus) -> int:
        return sum(1 for v in self.verdicts if v.status is status)


def evaluate(
    *,
    nodes: Mapping[str, NodeState],
    pods: Iterable[PullerPod],
    images: Sequence[ImageRef],
    placement: Placement,
    include_cordoned: bool,
    now: float,
    failing_since: Mapping[tuple[str, str], float],
    grace: float,
) -> Evaluation:
    """Judge every target node; `failing_since` carries pull-error first-seen times across calls."""
    targets, excluded = split_targets(nodes, placement, include_cordoned=include_cordoned)
    pods_by_node = merge_pods_by_node(pods)
    verdicts: list[NodeVerdict] = []
    seen_failing: dict[tuple[str, str], float] = {}
    for node in targets:
        verdict, failing = judge_node(
            node=node,
            pod=pods_by_node.get(node.name),
            images=images,
            now=now,
            failing_since=failing_since,
            grace=grace,
        )
        verdicts.append(verdict)
        seen_failing.update(failing)
    return Evaluation(verdicts=tuple(verdicts), excluded=excluded, failing_since=seen_failing)


def judge_node(
    *,
    node: NodeState,
    pod: PullerPod | None,
    images: Sequence[ImageRef],
    now: float,
    failing_since: Mapping[tuple[str, str], float],
    grace: float,
) -> tuple[NodeVerdict, dict[tuple[str, str], float]]:
    """One node's verdict, and the (node, image) pairs now failing with their first-seen time."""
    pulls = pod.images if pod is not None else {}

    def present(image: ImageRef) -> bool:
        pull = pulls.get(image.key)
        return image.key in node.images or (pull is not None and pull.state is PullState.PULLED)

    missing = [image for image in images if not present(image)]
    if not missing:
        return NodeVerdict(node=node.name, status=NodeStatus.DONE), {}
    names = tuple(image.original for image in missing)
    if pod is None:
        return NodeVerdict(
            node=node.name,
            status=NodeStatus.MISSING,
            missing=names,
            detail="no puller pod on this node",
        ), {}
    if pod.unschedulable is not None:
        return NodeVerdict(
            node=node.name,
            status=NodeStatus.UNSCHEDULABLE,
            missing=names,
            detail=f"puller pod cannot be scheduled: {pod.unschedulable}",
        ), {}
    failing: dict[tuple[str, str], float] = {}
    final: list[PullFailure] = []
    pending: list[PullFailure] = []
    awaited = {image.key for image in images}
    # A failing helper or pause image blocks the pull as surely as an awaited one.
    candidates = [(image.original, image.key) for image in missing] + [
        (key, key) for key in pulls if key not in awaited
    ]
    for display, key in candidates:
        pull = pulls.get(key)
        if pull is None or pull.state is not PullState.FAILING:
            continue
        since = failing_since.get((node.name, key), now)
        failing[(node.name, key)] = since
        failure = PullFailure(
            node=node.name, image=display, reason=pull.reason, message=pull.message
        )
        if pull.reason in PERMANENT_PULL_REASONS or now - since >= grace:
            final.append(failure)
        else:
            pending.append(failure)
    if final:
        return NodeVerdict(
            node=node.name,
            status=NodeStatus.FAILED,
            missing=names,
            failures=tuple(final),
            detail=str(final[0]),
        ), failing
    stuck = next((p for p in pulls.values() if p.state is PullState.PULLED and p.reason), None)
    if pending:
        detail = f"retrying {pending[0]}"
    elif stuck is not None:
        detail = f"puller pod stuck after a pull: {stuck.reason}: {stuck.message}"
    else:
        detail = "pulling " + ", ".join(names)
    return NodeVerdict(
        node=node.name,
        status=NodeStatus.PULLING,
        missing=names,
        failures=tuple(pending),
        detail=detail,
    ), failing


def merge_pods_by_node(pods: Iterable[PullerPod]) -> dict[str, PullerPod]:
    """One record per node; when a node has several pods (a replaced one), pulled wins."""
    merged: dict[str, PullerPod] = {}
    for pod in pods:
        if pod.node is None:
            continue
        previous = merged.get(pod.node)
        if previous is None:
            merged[pod.node] = pod
            continue
        images = dict(previous.images)
        for key, pull in pod.images.items():
            if key not in images or _rank(pull) > _rank(images[key]):
                images[key] = pull
        unschedulable = previous.unschedulable if pod.unschedulable else None
        merged[pod.node] = PullerPod(
            name=previous.name, node=pod.node, images=images, unschedulable=unschedulable
        )
    return merged


def _rank(pull: ImagePull) -> int:
    return {PullState.PULLED: 2, PullState.FAILING: 1, PullState.PULLING: 0}[pull.state]


def puller_pod_from_json(raw: Mapping[str, Any]) -> PullerPod:
    """Compact a pod object into the per-image pull states the verdict needs."""
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    images_by_container = {
        c.get("name", ""): _key(c.get("image", ""))
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
    }
    volume_images = [
        ref for v in spec.get("volumes") or [] if (ref := (v.get("image") or {}).get("reference"))
    ]
    pulls: dict[str, ImagePull] = {}
    for key in images_by_container.values():
        pulls.setdefault(key, ImagePull(PullState.PULLING))
    for ref in volume_images:
        pulls.setdefault(_key(ref), ImagePull(PullState.PULLING))
    any_container_created = False
    statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    regular = {c.get("name") for c in spec.get("containers") or []}
    for cs in statuses:
        container_key = images_by_container.get(cs.get("name", ""))
        if container_key is None:
            continue
        pull = _container_pull(cs)
        if pull.state is PullState.PULLED and cs.get("name") in regular:
            any_container_created = True
        key = container_key
        if pull.state is PullState.FAILING:
            key = _failing_volume(pull.message, volume_images) or container_key
        if _rank(pull) >= _rank(pulls[key]) and pulls[key].state is not PullState.PULLED:
            pulls[key] = pull
    if any_container_created:  # image volumes are mounted before any container is created
        for ref in volume_images:
            pulls[_key(ref)] = ImagePull(PullState.PULLED)
    return PullerPod(
        name=(raw.get("metadata") or {}).get("name", ""),
        node=_pod_node(spec),
        images=pulls,
        unschedulable=_unschedulable_message(status),
    )


def _key(ref: str) -> str:
    try:
        return parse_image(ref).key
    except Exception:  # an invalid reference is the kubelet's InvalidImageName to report
        return ref


def _container_pull(cs: Mapping[str, Any]) -> ImagePull:
    state = cs.get("state") or {}
    if cs.get("imageID") or "running" in state or "terminated" in state or cs.get("started"):
        return ImagePull(PullState.PULLED)
    if ((cs.get("lastState") or {}).get("terminated")) is not None:
        return ImagePull(PullState.PULLED)
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason") or ""
    if reason in STUCK_AFTER_PULL_REASONS:
        return ImagePull(PullState.PULLED, reason=reason, message=waiting.get("message") or "")
    if reason in PULL_FAILURE_REASONS:
        return ImagePull(PullState.FAILING, reason=reason, message=waiting.get("message") or "")
    return ImagePull(PullState.PULLING, reason=reason)


def _failing_volume(message: str, volume_images: Sequence[str]) -> str | None:
    for ref in volume_images:
        if ref in message:
            return _key(ref)
    return None


def _pod_node(spec: Mapping[str, Any]) -> str | None:
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    # DaemonSet pods not yet bound carry their node as required affinity on metadata.name.
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for field_req in term.get("matchFields") or []:
            values = field_req.get("values") or []
            if (
                field_req.get("key") == "metadata.name"
                and field_req.get("operator") == "In"
                and len(values) == 1
            ):
                return str(values[0])
    return None


def _unschedulable_message(status: Mapping[str, Any]) -> str | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("message") or condition.get("reason") or "Unschedulable")
    return None

"""A puller pod as the awaiter keeps it (`PullerPod`: per awaited image, its pull state), and the
decisions that read those states from what the API reports of the pod's containers: a
container whose image has an `imageID`, or that ran at all, had its image; a waiting reason
names a pull failure, a pull under way, or a container stuck after its image was pulled. Pure:
the codec (kube/podcodec.py) decodes the pod and hands the plain facts here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from image_awaiter.core.references import ImageKey

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
    images: Mapping[ImageKey, ImagePull] = field(default_factory=dict)
    unschedulable: str | None = None  # the scheduler's message while it cannot place the pod
    # Upper bounds of pull times from container state timestamps (podcodec._pull_seconds).
    pull_seconds: Mapping[ImageKey, float] = field(default_factory=dict)
    group: str = ""  # the pull group its DaemonSet belongs to (the group label)


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
            if key not in images or rank(pull) > rank(images[key]):
                images[key] = pull
        unschedulable = previous.unschedulable if pod.unschedulable else None
        merged[pod.node] = PullerPod(
            name=previous.name,
            node=pod.node,
            images=images,
            unschedulable=unschedulable,
            pull_seconds={**pod.pull_seconds, **previous.pull_seconds},
        )
    return merged


def rank(pull: ImagePull) -> int:
    return {PullState.PULLED: 2, PullState.FAILING: 1, PullState.PULLING: 0}[pull.state]


@dataclass(frozen=True, slots=True)
class ContainerSeen:
    """What the API says of one container, as far as its image goes."""

    name: str
    image_id: str = ""  # set once the image is on the node
    ran: bool = False  # running or terminated, now or before, or started
    waiting_reason: str = ""
    waiting_message: str = ""


def container_pull(seen: ContainerSeen) -> ImagePull:
    """The pull state of a container's image, from what the API says of the container."""
    if seen.image_id or seen.ran:
        return ImagePull(PullState.PULLED)
    reason, message = seen.waiting_reason, seen.waiting_message
    if reason in STUCK_AFTER_PULL_REASONS:
        return ImagePull(PullState.PULLED, reason=reason, message=message)
    if reason in PULL_FAILURE_REASONS:
        return ImagePull(PullState.FAILING, reason=reason, message=message)
    return ImagePull(PullState.PULLING, reason=reason)


def pod_pulls(
    *,
    containers: Mapping[str, ImageKey],
    regular: Collection[str],
    volumes: Sequence[tuple[str, ImageKey]],
    seen: Iterable[ContainerSeen],
) -> dict[ImageKey, ImagePull]:
    """Per image of a puller pod, its pull state. `containers`: each container's image (init
    and regular); `regular`: the regular containers' names; `volumes`: each image volume's
    reference as written and its key; `seen`: the containers' statuses, init ones first.

    A failing container whose message names an image volume's reference is that volume's
    failure (the kubelet reports a volume's pull on the container that mounts it); once any
    regular container has run, every image volume was mounted, so pulled; a pulled image
    stays pulled whatever a later container says."""
    pulls: dict[ImageKey, ImagePull] = {}
    for key in [*containers.values(), *(key for _, key in volumes)]:
        pulls.setdefault(key, ImagePull(PullState.PULLING))
    any_container_created = False
    for container in seen:
        container_key = containers.get(container.name)
        if container_key is None:
            continue
        pull = container_pull(container)
        if pull.state is PullState.PULLED and container.name in regular:
            any_container_created = True
        key = container_key
        if pull.state is PullState.FAILING:
            key = _failing_volume(pull.message, volumes) or container_key
        if rank(pull) >= rank(pulls[key]) and pulls[key].state is not PullState.PULLED:
            pulls[key] = pull
    if any_container_created:  # image volumes are mounted before any container is created
        for _, key in volumes:
            pulls[key] = ImagePull(PullState.PULLED)
    return pulls


def _failing_volume(message: str, volumes: Sequence[tuple[str, ImageKey]]) -> ImageKey | None:
    for ref, key in volumes:
        if ref in message:
            return key
    return None

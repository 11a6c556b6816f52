"""`PodCodec`: this run's puller pods decoded into typed structs and handed, as plain facts, to
the pure pull-state decisions (core/pullerpods.py); `EventCodec`: the kubelets' pull events on
those pods, every other event dropped as it is decoded.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from datetime import datetime

import msgspec

from image_awaiter.core.errors import UsageError
from image_awaiter.core.pods import PodSpec, volume_images
from image_awaiter.core.pullerpods import ContainerSeen, ImagePull, PullerPod, pod_pulls
from image_awaiter.core.pullfacts import PULL_EVENT_REASONS, KubeletEvent
from image_awaiter.core.references import ImageKey, parse_image
from image_awaiter.kube.decoding import TypedCodec, TypedObject
from image_awaiter.spec.pullers import GROUP_LABEL


class _Waiting(msgspec.Struct):
    reason: str = ""
    message: str = ""


class _Present(msgspec.Struct):
    """A running or terminated state: that it is there, and when it started and finished."""

    startedAt: str | None = None
    finishedAt: str | None = None


class _State(msgspec.Struct):
    waiting: _Waiting | None = None
    running: _Present | None = None
    terminated: _Present | None = None


class _ContainerStatus(msgspec.Struct):
    name: str = ""
    imageID: str = ""
    started: bool | None = None
    state: _State = msgspec.field(default_factory=_State)
    lastState: _State = msgspec.field(default_factory=_State)


class PodCondition(msgspec.Struct):
    type: str = ""
    status: str = ""
    reason: str = ""
    message: str = ""


class PodStatus(msgspec.Struct):
    startTime: str | None = None
    initContainerStatuses: list[_ContainerStatus] | None = None
    containerStatuses: list[_ContainerStatus] | None = None
    conditions: list[PodCondition] | None = None


class Pod(TypedObject):
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: PodStatus = msgspec.field(default_factory=PodStatus)


class PodCodec(TypedCodec[Pod, PullerPod]):
    """Puller pods decoded into the per-image pull states the verdict needs. Equal pull-state
    maps are shared between pods and node names interned: 65,000 completed pullers hold one
    map between them."""

    def __init__(self) -> None:
        super().__init__(Pod, self._compact)
        self._pulls: dict[frozenset[tuple[ImageKey, ImagePull]], Mapping[ImageKey, ImagePull]] = {}

    def _compact(self, pod: Pod) -> PullerPod:
        record = puller_pod(pod)
        content = frozenset(record.images.items())
        images = self._pulls.get(content)
        if images is None:
            if len(self._pulls) > 4096:
                self._pulls.clear()
            images = self._pulls[content] = record.images
        node = sys.intern(record.node) if record.node else None
        return dataclasses.replace(record, node=node, images=images)


class _InvolvedObject(msgspec.Struct):
    kind: str = ""
    name: str = ""


class _KubeEvent(TypedObject):
    involvedObject: _InvolvedObject = msgspec.field(default_factory=_InvolvedObject)
    reason: str = ""
    message: str = ""
    count: int | None = None
    lastTimestamp: str | None = None
    eventTime: str | None = None


class EventCodec(TypedCodec[_KubeEvent, KubeletEvent | None]):
    """Kubelet events about pods whose names start with `pod_prefix`, or one of them (this
    run's puller pods: `<daemonset>-<suffix>`, one DaemonSet per pull group) and that speak of
    pulls; every other event is dropped as it is decoded, so the store holds only this run's."""

    def __init__(self, *, pod_prefix: str | tuple[str, ...]) -> None:
        def compact(event: _KubeEvent) -> KubeletEvent | None:
            involved = event.involvedObject
            if (
                involved.kind != "Pod"
                or not involved.name.startswith(pod_prefix)
                or event.reason not in PULL_EVENT_REASONS
            ):
                return None
            return KubeletEvent(
                pod=involved.name,
                reason=event.reason,
                message=event.message,
                last=event.lastTimestamp or event.eventTime or "",
                count=event.count or 1,
            )

        super().__init__(_KubeEvent, compact)


def puller_pod(pod: Pod) -> PullerPod:
    """Compact a pod into the per-image pull states the verdict needs."""
    spec, status = pod.spec, pod.status
    containers = {c.name: _key(c.image) for c in spec.all_containers()}
    pulls = pod_pulls(
        containers=containers,
        regular={c.name for c in spec.containers or []},
        volumes=[(ref, _key(ref)) for ref in volume_images(spec)],
        seen=[
            _seen(cs)
            for cs in [*(status.initContainerStatuses or []), *(status.containerStatuses or [])]
        ],
    )
    return PullerPod(
        name=pod.metadata.name,
        node=_pod_node(spec),
        images=pulls,
        unschedulable=_unschedulable_message(status),
        pull_seconds=_pull_seconds(status, containers),
        group=(pod.metadata.labels or {}).get(GROUP_LABEL, ""),
    )


def _seen(cs: _ContainerStatus) -> ContainerSeen:
    state, waiting = cs.state, cs.state.waiting
    return ContainerSeen(
        name=cs.name,
        image_id=cs.imageID,
        ran=bool(
            state.running is not None
            or state.terminated is not None
            or cs.started
            or cs.lastState.terminated is not None
        ),
        waiting_reason=waiting.reason if waiting else "",
        waiting_message=waiting.message if waiting else "",
    )


def _pull_seconds(status: PodStatus, images: Mapping[str, ImageKey]) -> dict[ImageKey, float]:
    """Upper bounds of each init container's pull, from the container states' timestamps:
    the kubelet pulls an init container's image after the one before it finished (the pod's
    start for the first) and starts it right after; for when no `Pulled` event says it."""
    bounds: dict[ImageKey, float] = {}
    previous = _timestamp(status.startTime)
    for cs in status.initContainerStatuses or []:
        state = cs.state.terminated or cs.state.running
        started = _timestamp(state.startedAt) if state is not None else None
        key = images.get(cs.name)
        if key is not None and started is not None and previous is not None:
            bounds.setdefault(key, max(0.0, started - previous))
        previous = _timestamp(state.finishedAt) if state is not None else None
    return bounds


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _key(ref: str) -> ImageKey:
    try:
        return parse_image(ref).key
    except UsageError:  # an invalid reference is the kubelet's InvalidImageName to report
        return ImageKey(ref)


def _pod_node(spec: PodSpec) -> str | None:
    if spec.nodeName:
        return spec.nodeName
    # DaemonSet pods not yet bound carry their node as required affinity on metadata.name.
    for term in spec.required_terms or []:
        for requirement in term.matchFields or []:
            values = requirement.values or []
            if (
                requirement.key == "metadata.name"
                and requirement.operator == "In"
                and len(values) == 1
            ):
                return str(values[0])
    return None


def _unschedulable_message(status: PodStatus) -> str | None:
    for condition in status.conditions or []:
        if (condition.type, condition.status) == ("PodScheduled", "False"):
            return condition.message or condition.reason or "Unschedulable"
    return None

"""The parts of a pod the awaiter reads, as typed msgspec structs (puller pods decoded from the
API, podcodec.py; pod templates checked for shape), and the one walker of the images a pod pulls
(`image_fields`, over plain data: manifests, spec files and generated pullers alike)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from image_awaiter.core.errors import UsageError


class Container(msgspec.Struct):
    name: str = ""
    image: str = ""


class ImageSource(msgspec.Struct):
    reference: str = ""


class Volume(msgspec.Struct):
    name: str = ""
    image: ImageSource | None = None


Scalar = str | int | float | bool  # YAML may type a label value; the API compares text


class NodeSelectorRequirement(msgspec.Struct):
    key: str
    operator: str
    values: list[Scalar] | None = None


class NodeSelectorTerm(msgspec.Struct):
    matchExpressions: list[NodeSelectorRequirement] | None = None
    matchFields: list[NodeSelectorRequirement] | None = None


class RequiredNodeAffinity(msgspec.Struct):
    nodeSelectorTerms: list[NodeSelectorTerm] | None = None


class NodeAffinity(msgspec.Struct):
    requiredDuringSchedulingIgnoredDuringExecution: RequiredNodeAffinity | None = None


class Affinity(msgspec.Struct):
    nodeAffinity: NodeAffinity | None = None


class TolerationSpec(msgspec.Struct):
    key: str | None = None
    operator: str | None = None
    value: Scalar | None = None
    effect: str | None = None


class PodSpec(msgspec.Struct):
    initContainers: list[Container] | None = None
    containers: list[Container] | None = None
    volumes: list[Volume] | None = None
    nodeName: str = ""
    nodeSelector: dict[str, Scalar] | None = None
    affinity: Affinity | None = None
    tolerations: list[TolerationSpec] | None = None

    @property
    def required_terms(self) -> list[NodeSelectorTerm] | None:
        """The required node affinity's terms; None when there is no required node affinity."""
        node_affinity = self.affinity.nodeAffinity if self.affinity else None
        required = (
            node_affinity.requiredDuringSchedulingIgnoredDuringExecution if node_affinity else None
        )
        return None if required is None else (required.nodeSelectorTerms or [])

    def all_containers(self) -> list[Container]:
        """The containers of `CONTAINER_PARTS`, in that order."""
        return [*(self.initContainers or []), *(self.containers or [])]


# The parts of a pod spec whose containers' images a pod pulls when it starts. Not
# `ephemeralContainers`: the API refuses them in pod templates and when a pod is created (they are
# added later, one at a time, through the `ephemeralcontainers` subresource, to debug a running
# pod), so no workload pulls them at start and a pre-puller has nothing to prepare for them.
CONTAINER_PARTS = ("initContainers", "containers")


def image_fields(pod_spec: Mapping[str, Any]) -> Iterator[tuple[str, object]]:
    """The one pod-image walker: where each image the pod pulls is written (such as
    `containers[0].image`) and its value as written, in pod order: init containers (native
    sidecars too), containers, image volumes. Shapes are not checked here: a part that is not a
    list, a container that is not a mapping or has no image, contribute nothing."""
    for part in CONTAINER_PARTS:
        for index, container in enumerate(_items(pod_spec.get(part))):
            if isinstance(container, Mapping) and container.get("image") is not None:
                yield f"{part}[{index}].image", container["image"]
    for index, volume in enumerate(_items(pod_spec.get("volumes"))):
        source = volume.get("image") if isinstance(volume, Mapping) else None
        if isinstance(source, Mapping) and source.get("reference") is not None:
            yield f"volumes[{index}].image.reference", source["reference"]


def pod_images(pod_spec: Mapping[str, Any]) -> list[str]:
    """Every image the pod pulls, once each, in pod order (`image_fields`)."""
    return list(dict.fromkeys(str(value) for _, value in image_fields(pod_spec)))


def _items(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def volume_images(spec: PodSpec) -> list[str]:
    return [v.image.reference for v in spec.volumes or [] if v.image and v.image.reference]


def pod_spec(raw: Mapping[str, object]) -> PodSpec:
    """A pod spec from plain data (a manifest); wrong shapes are usage errors."""
    try:
        return msgspec.convert(raw, PodSpec)
    except msgspec.ValidationError as error:
        raise UsageError(
            f"invalid pod template: {error}", hint="fix the pod template's field named above"
        ) from None

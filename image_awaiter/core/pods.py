"""The parts of a pod the awaiter reads, as typed msgspec structs, and the one walker of the
images a pod pulls. Used both for manifests (converted from plain data) and for puller pods
decoded from the API (decoding.py)."""

from __future__ import annotations

from collections.abc import Mapping

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
        return [*(self.initContainers or []), *(self.containers or [])]


def images_of(spec: PodSpec) -> list[str]:
    """Every image the pod pulls, once each: init containers, containers, image volumes."""
    refs = [c.image for c in spec.all_containers()]
    refs += volume_images(spec)
    return list(dict.fromkeys(refs))


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

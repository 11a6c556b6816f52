"""Pull groups: images that go to the same nodes, derived from workloads' placements.

Workloads with the same canonical placement (see `manifests.Placement`) share one
`PullGroup`; each group gets a stable, DNS-1123-label-safe name, its de-duplicated images and a
pod-spec fragment to apply to its puller pod. `narrow` keeps only the images asked for with
`--image`; `groups_of` says which groups an image is awaited in (the union of their nodes);
`apply_placement` merges a group's placement into a puller pod spec.
Pure functions over plain data.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from image_awaiter.core.errors import UsageError
from image_awaiter.core.placement import Placement
from image_awaiter.core.references import ImageRef, parse_image
from image_awaiter.spec.manifests import Workload

MAX_NAME = 40
HASH_CHARS = 10
MAX_LISTED = 20  # images listed in one error line before "and N more"


@dataclass(frozen=True, slots=True)
class PullGroup:
    """Images to pull on the nodes where `placement` lets pods run."""

    name: str
    images: tuple[ImageRef, ...]  # de-duplicated by key; `.original` is the text to show
    placement: Placement
    workloads: tuple[Workload, ...]

    @property
    def image_keys(self) -> frozenset[str]:
        return frozenset(image.key for image in self.images)

    def pod_spec_fragment(self) -> dict[str, Any]:
        """nodeSelector, affinity, tolerations, imagePullSecrets, runtime and priority class."""
        return self.placement.to_pod_spec()


def group_workloads(workloads: Iterable[Workload]) -> tuple[PullGroup, ...]:
    """One group per distinct placement, in order of first appearance, names unique; the pods
    an application's configuration names a group for (a JupyterHub profile) keep their own."""
    by_placement: dict[tuple[Placement, str | None], list[Workload]] = {}
    for workload in workloads:
        by_placement.setdefault((workload.placement, workload.group), []).append(workload)
    groups = [
        PullGroup(
            name=_label(group)[:MAX_NAME].rstrip("-") or _base_name(members, placement)
            if group
            else _base_name(members, placement),
            images=_unique_images(i for w in members for i in w.images),
            placement=placement,
            workloads=tuple(members),
        )
        for (placement, group), members in by_placement.items()
    ]
    return _unique_names(groups)


def narrow(groups: Sequence[PullGroup], refs: Sequence[str]) -> tuple[PullGroup, ...]:
    """The groups with only the images in `refs`; groups left empty are dropped.

    Raises `UsageError` listing what the manifests do hold when a requested image is in none.
    """
    wanted = {parse_image(ref).key: ref for ref in refs}
    present = {image.key for group in groups for image in group.images}
    missing = [ref for key, ref in wanted.items() if key not in present]
    if missing:
        found = sorted({image.original for group in groups for image in group.images})
        listed = ", ".join(found[:MAX_LISTED])
        more = f" and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
        raise UsageError(
            f"--image {', '.join(missing)}: not in any manifest; found {listed}{more}",
            hint="name an image the manifests use, or drop --image to await them all",
        )
    narrowed = (
        PullGroup(
            name=group.name,  # kept: the name stays the same with or without --image
            images=tuple(image for image in group.images if image.key in wanted),
            placement=group.placement,
            workloads=tuple(
                w for w in group.workloads if any(parse_image(i).key in wanted for i in w.images)
            ),
        )
        for group in groups
    )
    return tuple(group for group in narrowed if group.images)


def groups_of(groups: Sequence[PullGroup], image_key: str) -> tuple[PullGroup, ...]:
    """The groups awaiting `image_key`: the image is awaited on the union of their nodes."""
    return tuple(group for group in groups if image_key in group.image_keys)


def apply_placement(
    pod_spec: Mapping[str, Any], placement: Placement, *, group: str
) -> dict[str, Any]:
    """A copy of a puller pod spec that also honours `placement`: the pods land only where
    both allow (nodeSelectors and required terms are ANDed), tolerate what either tolerates,
    and pull with either's secrets; the group's runtime and priority class win.

    Raises `UsageError` when both select the same node label with different values: no node
    could ever match.
    """
    merged = copy.deepcopy(dict(pod_spec))
    fragment = placement.to_pod_spec()
    selector = dict(merged.get("nodeSelector") or {})
    for key, value in (fragment.get("nodeSelector") or {}).items():
        if selector.get(key, value) != value:
            raise UsageError(
                f"group {group}: nodeSelector {key}={value} contradicts {key}={selector[key]} "
                "of the puller settings, so no node could match",
                hint="drop the conflicting --node-selector",
            )
        selector[key] = value
    if selector:
        merged["nodeSelector"] = selector
    terms = _and_terms(_required_terms(merged), _required_terms(fragment))
    if terms:
        node_affinity = merged.setdefault("affinity", {}).setdefault("nodeAffinity", {})
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": terms
        }
    for part in ("tolerations", "imagePullSecrets"):
        union = _union([*(merged.get(part) or []), *(fragment.get(part) or [])])
        if union:
            merged[part] = union
    for part in ("runtimeClassName", "priorityClassName"):
        if fragment.get(part):
            merged[part] = fragment[part]
    return merged


def placement_hash(placement: Placement) -> str:
    """A short hash of the canonical placement, the same in every run and on every machine."""
    canonical = json.dumps(asdict(placement), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_CHARS]


# ---------------------------------------------------------------------------- helpers


def _required_terms(pod_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    affinity = pod_spec.get("affinity") or {}
    required = (affinity.get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    return [dict(t) for t in required.get("nodeSelectorTerms") or []]


def _and_terms(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Terms are ORed, their requirements ANDed: (a1 or a2) and (b1 or b2) is each ai with bj."""
    if not first or not second:
        return first or second
    return [
        {
            part: [*(a.get(part) or []), *(b.get(part) or [])]
            for part in ("matchExpressions", "matchFields")
            if a.get(part) or b.get(part)
        }
        for a in first
        for b in second
    ]


def _union(items: Iterable[Any]) -> list[Any]:
    """Items once each, in first-seen order, compared by their JSON form."""
    seen: dict[str, Any] = {}
    for item in items:
        seen.setdefault(json.dumps(item, sort_keys=True), item)
    return list(seen.values())


def _unique_images(refs: Iterable[str]) -> tuple[ImageRef, ...]:
    by_key: dict[str, ImageRef] = {}
    for ref in refs:
        image = parse_image(ref)
        by_key.setdefault(image.key, image)
    return tuple(by_key.values())


def _base_name(members: Sequence[Workload], placement: Placement) -> str:
    names = list(dict.fromkeys(_label(w.name) for w in members if _label(w.name)))
    if not 1 <= len(names) <= 2:
        return f"g-{placement_hash(placement)}"
    if len(names) == 1:
        return names[0][:MAX_NAME].rstrip("-")
    half = (MAX_NAME - 1) // 2
    return "-".join(n[:half].rstrip("-") for n in names)


def _unique_names(groups: list[PullGroup]) -> tuple[PullGroup, ...]:
    """Suffix a placement hash where two groups would share a name (same workload names)."""
    counts: dict[str, int] = {}
    for group in groups:
        counts[group.name] = counts.get(group.name, 0) + 1
    renamed = []
    for group in groups:
        name = group.name
        if counts[name] > 1:
            suffix = placement_hash(group.placement)[:6]
            name = f"{name[: MAX_NAME - len(suffix) - 1].rstrip('-')}-{suffix}"
        renamed.append(PullGroup(name, group.images, group.placement, group.workloads))
    return tuple(renamed)


def _label(name: str) -> str:
    """A DNS-1123 label fragment of a workload name: lowercase alphanumerics and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")

"""Which nodes are targets: readiness, cordons, taints, nodeSelector and required node affinity.

Pure functions over `NodeState` (the compact per-node record the watch layer keeps) and a
`Placement` read from the puller pod template. A node is a target when it is Ready, not cordoned
(unless cordoned nodes are included), every NoSchedule/NoExecute taint is tolerated, and it matches
the template's nodeSelector and required node affinity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from image_awaiter.errors import UsageError
from image_awaiter.references import ImageKey, node_image_keys

BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
CORDON_TAINT_KEY = "node.kubernetes.io/unschedulable"


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: str = ""

    def __str__(self) -> str:
        value = f"={self.value}" if self.value else ""
        return f"{self.key}{value}:{self.effect}"


@dataclass(frozen=True, slots=True)
class NodeState:
    """What the awaiter keeps of one node: nothing more than the decisions need."""

    name: str
    ready: bool
    unschedulable: bool = False
    taints: tuple[Taint, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    images: frozenset[ImageKey] = frozenset()  # awaited images the node reports


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.operator == "Exists":
            return not self.key or self.key == taint.key
        return self.key == taint.key and self.value == taint.value


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # In NotIn Exists DoesNotExist Gt Lt
    values: tuple[str, ...] = ()

    def matches(self, value: str | None) -> bool:
        op = self.operator
        if op == "Exists":
            return value is not None
        if op == "DoesNotExist":
            return value is None
        if op == "In":
            return value is not None and value in self.values
        if op == "NotIn":
            return value is None or value not in self.values
        if value is None:
            return False
        try:
            number, bound = int(value), int(self.values[0])
        except ValueError:
            return False
        return number > bound if op == "Gt" else number < bound


@dataclass(frozen=True, slots=True)
class SelectorTerm:
    """One nodeSelectorTerm: all expressions and fields must match."""

    expressions: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()

    def matches(self, node: NodeState) -> bool:
        if not self.expressions and not self.fields:
            return False  # an empty term matches nothing, as in Kubernetes
        fields = {"metadata.name": node.name}
        return all(r.matches(node.labels.get(r.key)) for r in self.expressions) and all(
            r.matches(fields.get(r.key)) for r in self.fields
        )


# The DaemonSet controller adds these to every DaemonSet pod; they decide where pullers land.
DAEMONSET_TOLERATIONS = (
    Toleration(key="node.kubernetes.io/not-ready", operator="Exists", effect="NoExecute"),
    Toleration(key="node.kubernetes.io/unreachable", operator="Exists", effect="NoExecute"),
    Toleration(key="node.kubernetes.io/disk-pressure", operator="Exists", effect="NoSchedule"),
    Toleration(key="node.kubernetes.io/memory-pressure", operator="Exists", effect="NoSchedule"),
    Toleration(key="node.kubernetes.io/pid-pressure", operator="Exists", effect="NoSchedule"),
    Toleration(key=CORDON_TAINT_KEY, operator="Exists", effect="NoSchedule"),
)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the puller pod template allows pods to run."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    terms: tuple[SelectorTerm, ...] | None = None  # None: no required node affinity
    tolerations: tuple[Toleration, ...] = ()


def exclusion_reason(
    node: NodeState, placement: Placement, *, include_cordoned: bool
) -> str | None:
    """Why `node` is not a target, or None when it is one."""
    if not node.ready:
        return "node not Ready"
    if node.unschedulable and not include_cordoned:
        return "cordoned (spec.unschedulable); use --include-cordoned to await it"
    tolerations = placement.tolerations + DAEMONSET_TOLERATIONS
    for taint in node.taints:
        if taint.effect in BLOCKING_EFFECTS and not any(t.tolerates(taint) for t in tolerations):
            return f"taint {taint} not tolerated by the puller pod"
    for key, value in placement.node_selector.items():
        if node.labels.get(key) != value:
            return f"nodeSelector {key}={value} does not match"
    if placement.terms is not None and not any(term.matches(node) for term in placement.terms):
        return "required node affinity does not match"
    return None


def split_targets(
    nodes: Mapping[str, NodeState], placement: Placement, *, include_cordoned: bool
) -> tuple[list[NodeState], dict[str, str]]:
    """Target nodes sorted by name, and the excluded ones with their reasons."""
    targets: list[NodeState] = []
    excluded: dict[str, str] = {}
    for name in sorted(nodes):
        reason = exclusion_reason(nodes[name], placement, include_cordoned=include_cordoned)
        if reason is None:
            targets.append(nodes[name])
        else:
            excluded[name] = reason
    return targets, excluded


def placement_from_pod_spec(pod_spec: Mapping[str, Any]) -> Placement:
    """Read nodeSelector, required node affinity and tolerations; bad shapes are usage errors."""
    try:
        selector = {str(k): str(v) for k, v in (pod_spec.get("nodeSelector") or {}).items()}
        tolerations = tuple(_toleration(t) for t in pod_spec.get("tolerations") or ())
        required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        terms = None
        if required is not None:
            terms = tuple(_term(t) for t in required.get("nodeSelectorTerms") or ())
    except (AttributeError, TypeError, KeyError, IndexError) as error:
        raise UsageError(f"invalid pod template placement: {error}") from None
    return Placement(node_selector=selector, terms=terms, tolerations=tolerations)


def _toleration(raw: Mapping[str, Any]) -> Toleration:
    return Toleration(
        key=raw.get("key") or "",
        operator=raw.get("operator") or "Equal",
        value=raw.get("value") or "",
        effect=raw.get("effect") or "",
    )


def _term(raw: Mapping[str, Any]) -> SelectorTerm:
    return SelectorTerm(
        expressions=tuple(_requirement(r) for r in raw.get("matchExpressions") or ()),
        fields=tuple(_requirement(r) for r in raw.get("matchFields") or ()),
    )


_OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"})


def _requirement(raw: Mapping[str, Any]) -> Requirement:
    operator = raw["operator"]
    if operator not in _OPERATORS:
        raise UsageError(f"unknown node selector operator {operator!r}")
    values = tuple(str(v) for v in raw.get("values") or ())
    if operator in ("Gt", "Lt") and len(values) != 1:
        raise UsageError(f"node selector operator {operator} needs exactly one value")
    return Requirement(key=str(raw["key"]), operator=operator, values=values)


def node_from_json(raw: Mapping[str, Any], *, wanted: frozenset[ImageKey]) -> NodeState:
    """Compact a Node object (plain JSON) to what targeting and readiness need."""
    metadata = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    return node_state(
        name=str(metadata.get("name", "")),
        labels=metadata.get("labels") or {},
        unschedulable=bool(spec.get("unschedulable")),
        taints=[
            (t.get("key", ""), t.get("value") or "", t.get("effect") or "")
            for t in spec.get("taints") or []
        ],
        conditions=[(c.get("type"), c.get("status")) for c in status.get("conditions") or []],
        names=[n for image in status.get("images") or [] for n in image.get("names") or []],
        wanted=wanted,
    )


def node_state(
    *,
    name: str,
    labels: Mapping[str, str],
    unschedulable: bool,
    taints: Iterable[tuple[str, str, str]],
    conditions: Iterable[tuple[Any, Any]],
    names: list[str],
    wanted: frozenset[ImageKey],
) -> NodeState:
    """The compact node from its parts, however they were decoded; image names are kept only
    when they match an awaited image (`wanted` holds match keys)."""
    return NodeState(
        name=name,
        ready=any(kind == "Ready" and value == "True" for kind, value in conditions),
        unschedulable=unschedulable,
        taints=tuple(Taint(key=k, value=v, effect=e) for k, v, e in taints),
        labels=dict(labels),
        images=node_image_keys(names, wanted=wanted),
    )

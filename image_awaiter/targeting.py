"""Which nodes are targets: readiness, cordons, taints, nodeSelector and required node affinity.

Pure functions over `NodeState` (the compact per-node record the watch layer keeps) and a
`Placement` read from the puller pod template. A node is a target when it is Ready, not cordoned
(unless cordoned nodes are included), every NoSchedule/NoExecute taint is tolerated, and it matches
the template's nodeSelector and required node affinity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from image_awaiter.errors import UsageError
from image_awaiter.pods import NodeSelectorRequirement, NodeSelectorTerm, TolerationSpec, pod_spec
from image_awaiter.references import ImageKey, node_image_keys
from image_awaiter.selectors import NODE_OPERATORS, Requirement, requirement

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


def placement_from_pod_spec(raw: Mapping[str, object]) -> Placement:
    """Read nodeSelector, required node affinity and tolerations; bad shapes are usage errors."""
    try:
        spec = pod_spec(raw)
    except UsageError as error:
        raise UsageError(f"invalid pod template placement: {error.message}") from None
    terms = spec.required_terms
    return Placement(
        node_selector={k: str(v) for k, v in (spec.nodeSelector or {}).items()},
        terms=None if terms is None else tuple(_term(t) for t in terms),
        tolerations=tuple(_toleration(t) for t in spec.tolerations or ()),
    )


def _toleration(raw: TolerationSpec) -> Toleration:
    return Toleration(
        key=raw.key or "",
        operator=raw.operator or "Equal",
        value=str(raw.value) if raw.value is not None else "",
        effect=raw.effect or "",
    )


def _term(raw: NodeSelectorTerm) -> SelectorTerm:
    return SelectorTerm(
        expressions=tuple(_requirement(r) for r in raw.matchExpressions or ()),
        fields=tuple(_requirement(r) for r in raw.matchFields or ()),
    )


def _requirement(raw: NodeSelectorRequirement) -> Requirement:
    return requirement(
        key=raw.key, operator=raw.operator, values=raw.values or (), allowed=NODE_OPERATORS
    )


def node_state(
    *,
    name: str,
    labels: Mapping[str, str],
    unschedulable: bool,
    taints: Iterable[tuple[str, str, str]],
    conditions: Iterable[tuple[str, str]],
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

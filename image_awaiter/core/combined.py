"""Several pull groups seen as one run: their per-group evaluations combined into one (a node
targeted by two groups is judged on both; an image in two groups is awaited on the union of
their nodes), and the groups' progress in a few words. Pure functions over evaluations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from image_awaiter.core.readiness import Evaluation, NodeStatus, NodeVerdict, PlatformExclusion
from image_awaiter.core.references import ImageKey, ImageRef

# When a node's groups disagree, the verdict that needs attention first wins.
SEVERITY = {
    NodeStatus.DONE: 0,
    NodeStatus.PULLING: 1,
    NodeStatus.MISSING: 2,
    NodeStatus.UNSCHEDULABLE: 3,
    NodeStatus.FAILED: 4,
}


@dataclass(frozen=True, slots=True)
class GroupEvaluation:
    """One group's name, images and latest evaluation."""

    name: str
    images: tuple[ImageRef, ...]
    evaluation: Evaluation


def combine(groups: Sequence[GroupEvaluation]) -> Evaluation:
    """One evaluation of the run: every node any group targets, judged on every group that
    targets it; excluded only when no group targets it. One group: its evaluation, unchanged."""
    if len(groups) == 1:
        return groups[0].evaluation
    by_node: dict[str, list[tuple[str, NodeVerdict]]] = {}
    for group in groups:
        for verdict in group.evaluation.verdicts:
            by_node.setdefault(verdict.node, []).append((group.name, verdict))
    verdicts = tuple(_merge(node, named) for node, named in by_node.items())
    reasons: dict[str, list[str]] = {}
    for group in groups:
        for node, reason in group.evaluation.excluded.items():
            if node not in by_node:
                reasons.setdefault(node, []).append(f"{group.name}: {reason}")
    excluded = {node: "; ".join(r) for node, r in reasons.items()}
    failing_since: dict[tuple[str, ImageKey], float] = {}
    platform_excluded: dict[tuple[str, ImageKey], PlatformExclusion] = {}
    for group in groups:
        failing_since.update(group.evaluation.failing_since)
        platform_excluded.update(group.evaluation.platform_excluded)
    return Evaluation(
        verdicts=verdicts,
        excluded=excluded,
        failing_since=failing_since,
        platform_excluded=platform_excluded,
        groups=tuple((group.name, group.evaluation) for group in groups),
    )


def _merge(node: str, named: list[tuple[str, NodeVerdict]]) -> NodeVerdict:
    worst = max((v for _, v in named), key=lambda v: SEVERITY[v.status])
    status_images = named[0][1].status_images  # the node's one set, whichever group judged it
    if worst.status is NodeStatus.DONE:
        listed = all(v.listed for _, v in named)
        return NodeVerdict(
            node=node, status=NodeStatus.DONE, listed=listed, status_images=status_images
        )
    missing = tuple(dict.fromkeys(m for _, v in named for m in v.missing))
    failures = tuple(f for _, v in named for f in v.failures)
    detail = "; ".join(
        f"group {name}: {v.detail or v.status.value}"
        for name, v in named
        if v.status is not NodeStatus.DONE
    )
    return NodeVerdict(
        node=node,
        status=worst.status,
        missing=missing,
        failures=failures,
        detail=detail,
        status_images=status_images,
    )


def group_progress(groups: Sequence[GroupEvaluation]) -> str:
    """`gpu 1/2, cpu 3/3`: each group's done nodes of its targets, for progress lines."""
    return ", ".join(
        f"{g.name} {g.evaluation.count(NodeStatus.DONE)}/{len(g.evaluation.verdicts)}"
        for g in groups
    )

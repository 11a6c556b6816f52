"""The gate's judges: one `readiness.Judge` per pull group (the same rules as `await`, with
the gate taint tolerated and cordoned nodes included, since DaemonSet pods land there too), and
the decision per gated node from the verdicts of the groups that target it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from image_awaiter.cluster.gatepullers import gate_placement
from image_awaiter.core.gating import GateDecision, GateNode, GateRules, GateTaint, decide
from image_awaiter.core.pullerpods import PullerPod
from image_awaiter.core.readiness import Evaluation, FailureRules, Judge
from image_awaiter.core.references import ImageRef
from image_awaiter.spec.settings import Job, Settings


@dataclass(frozen=True, slots=True)
class GateGroup:
    name: str
    images: tuple[ImageRef, ...]
    judge: Judge


class GateJudges:
    def __init__(self, *, job: Job, taint: GateTaint, base: Settings) -> None:
        rules = FailureRules(fail_fast=base.fail_fast, platform_mismatch=base.on_platform_mismatch)
        self.groups = tuple(
            GateGroup(
                name=g.name,
                images=g.images,
                judge=Judge(
                    images=g.images,
                    placement=gate_placement(g.placement, taint),
                    include_cordoned=True,
                    grace=base.pull_failure_grace,
                    rules=rules,
                ),
            )
            for g in job.groups
        )

    def decide(
        self, gated: Mapping[str, GateNode], pods: Iterable[PullerPod], *, rules: GateRules
    ) -> list[GateDecision]:
        """Every gated node's decision, by name."""
        states = {name: node.state for name, node in gated.items()}
        by_group: dict[str, list[PullerPod]] = {}
        for pod in pods:
            by_group.setdefault(pod.group, []).append(pod)
        now = time.monotonic()
        evaluations: list[Evaluation] = [
            g.judge(states, by_group.get(g.name, []), now=now) for g in self.groups
        ]
        verdicts = [{v.node: v for v in e.verdicts} for e in evaluations]
        wall = time.time()  # --max-wait counts from creationTimestamp, a wall-clock time
        return [
            decide(
                node,
                [v[name] for v in verdicts if name in v],
                excluded=[e.excluded[name] for e in evaluations if name in e.excluded],
                now=wall,
                rules=rules,
            )
            for name, node in sorted(gated.items())
        ]

    def images_of(self, node: str) -> list[ImageRef]:
        """The images of the groups that judged `node` a target, last time."""
        return [
            image
            for group in self.groups
            if group.judge.last is not None
            and any(v.node == node for v in group.judge.last.verdicts)
            for image in group.images
        ]

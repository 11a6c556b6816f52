"""A run's pull groups in the cluster: per group its puller DaemonSet and its own `Judge`,
created, kept alive, judged and deleted together. The run sees them as one evaluation
(`combined.combine`); the report sees each (`GroupOutcome`)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from image_awaiter.cluster.daemonsets import (
    CLEANUP_BUDGET,
    PullerDaemonSet,
    check_namespace,
    sweep_stale,
)
from image_awaiter.core.combined import GroupEvaluation, combine
from image_awaiter.core.creation import CreationRefused, FailedCreate, Refusals
from image_awaiter.core.outcomes import GroupOutcome
from image_awaiter.core.placement import Placement
from image_awaiter.core.pullerpods import PullerPod
from image_awaiter.core.pullerrors import PullError
from image_awaiter.core.readiness import Evaluation, Judge
from image_awaiter.core.references import ImageKey
from image_awaiter.core.targeting import NodeState
from image_awaiter.kube.watching import Informer
from image_awaiter.output.reporting import now_iso
from image_awaiter.run.context import RunContext
from image_awaiter.run.watches import PullerCaches
from image_awaiter.spec.pullers import PullerTemplate
from image_awaiter.spec.settings import Group, Judging

log = structlog.get_logger("image_awaiter")


@dataclass(frozen=True, slots=True)
class GroupRun:
    """One pull group in a run: its puller DaemonSet and its own judge of its target nodes."""

    group: Group
    daemonset: PullerDaemonSet
    judge: Judge


class GroupRuns:
    """Every pull group of one run, in the order the job lists them."""

    def __init__(self, context: RunContext, *, judging: Judging) -> None:
        self._kube, self.namespace = context.kube, context.namespace
        self.each = tuple(
            GroupRun(
                group=group,
                daemonset=PullerDaemonSet(
                    context.kube,
                    PullerTemplate(
                        manifest=group.manifest,
                        namespace=context.namespace,
                        run_id=context.run_id,
                        owner=context.owner,
                        group=group.name,
                    ),
                ),
                judge=Judge(
                    images=group.images,
                    placement=self.placement(group, context),
                    include_cordoned=judging.include_cordoned,
                    grace=judging.grace,
                    rules=judging.rules,
                ),
            )
            for group in context.job.groups
        )
        self._refusals = Refusals()
        self.refusal: CreationRefused | None = None  # the first refusal that ends the run

    def placement(self, group: Group, context: RunContext) -> Placement:
        """Where the group's pullers run, which its judge reads."""
        return group.placement

    @property
    def several(self) -> bool:
        return len(self.each) > 1

    def judge(
        self,
        nodes: Mapping[str, NodeState],
        pods: Iterable[PullerPod],
        *,
        now: float,
        event_errors: Mapping[tuple[str, ImageKey], PullError],
    ) -> Evaluation:
        """Each group judges its own targets with its own pods; the run sees them combined."""
        by_group: dict[str, list[PullerPod]] = {}
        for pod in pods:
            by_group.setdefault(pod.group, []).append(pod)
        for g in self.each:
            g.judge(nodes, by_group.get(g.group.name, []), now=now, event_errors=event_errors)
        return combine(self.evaluations())

    def evaluations(self) -> list[GroupEvaluation]:
        return [
            GroupEvaluation(g.group.name, g.group.images, g.judge.last)
            for g in self.each
            if g.judge.last is not None
        ]

    def failing(self) -> list[GroupEvaluation]:
        return [g for g in self.evaluations() if g.evaluation.failures]

    def done(self) -> dict[str, tuple[frozenset[str], tuple[ImageKey, ...]]]:
        """Per group: its done nodes and its images' keys (what the pull facts should show)."""
        return {
            g.group.name: (
                frozenset(g.judge.done_nodes),
                tuple(i.key for i in g.group.images),
            )
            for g in self.each
        }

    def create(self, *, own_namespace: str | None) -> None:
        """Every group's DaemonSet, so that nodes joining a done group get pullers, after
        checking the namespace and sweeping stale runs' DaemonSets."""
        check_namespace(self._kube, self.namespace, required=True, own=own_namespace)
        sweep_stale(self._kube, self.namespace)
        for g in self.each:
            g.daemonset.create(skip_nodes=g.judge.listed_nodes)

    def keep_alive(self, pullers: PullerCaches) -> None:
        """Recreate a DaemonSet deleted meanwhile (the cache no longer shows its uid)."""
        assert pullers.daemonsets is not None
        cached_uids = set(pullers.daemonsets.snapshot().values())
        for g in self.each:
            g.daemonset.keep_alive(cached_uids=cached_uids, skip_nodes=g.judge.listed_nodes)

    def refused(self, events: Informer[FailedCreate | None] | None, *, now: float) -> bool:
        """Whether the cluster refuses to create some of the pullers for good (the DaemonSet
        controller's `FailedCreate` with an admission refusal): `refusal` says which."""
        if events is not None and self.refusal is None:
            seen = [e for e in events.snapshot().values() if e is not None]
            self.refusal = self._refusals.judge(seen, daemonsets=self.names(), now=now)
        return self.refusal is not None

    def names(self) -> tuple[str, ...]:
        return tuple(g.daemonset.record.name for g in self.each if g.daemonset.record is not None)

    def first_record(self) -> Mapping[str, Any] | None:
        records = [g.daemonset.record for g in self.each if g.daemonset.record is not None]
        return records[0].to_report() if records else None

    def outcomes(self) -> tuple[GroupOutcome, ...]:
        return tuple(
            GroupOutcome(
                name=g.group.name,
                images=g.group.images,
                workloads=g.group.workloads,
                evaluation=g.judge.last,
                daemonset=g.daemonset.record.to_report() if g.daemonset.record else None,
            )
            for g in self.each
        )

    def would_create(self) -> list[dict[str, Any]]:
        """The DaemonSets `await` would create now (`--dry-run -o ...`)."""
        created_at = now_iso()
        return [
            g.daemonset.template.for_run(created_at=created_at, skip_nodes=g.judge.listed_nodes)
            for g in self.each
        ]

    def delete(self, *, keep: bool) -> None:
        """Delete every DaemonSet this run created, unless asked to keep them, all within one
        cleanup budget: a stalling API costs it once, not once per group."""
        deadline = time.monotonic() + CLEANUP_BUDGET
        for g in self.each:
            record = g.daemonset.record
            if record is not None and keep:
                log.info("daemonset.kept", name=record.name, group=g.group.name)
                continue
            g.daemonset.delete(deadline=deadline)

"""A gate's pull groups: judged as every run's are (`GroupRuns`), on the gate's placements (the
gate taint tolerated; cordoned nodes included, since DaemonSet pods land there too), with the
gate's long-lived DaemonSets (`gatepullers.GatePullers`: no run id, tolerating the gate taint,
updated in place when their template changes, written by the leader only, never deleted: the
chart owns their lifetime) instead of one run's."""

from __future__ import annotations

from image_awaiter.cluster.gatepullers import (
    GatePullers,
    deployment_owner,
    gate_manifest,
    gate_placement,
)
from image_awaiter.core.placement import Placement
from image_awaiter.run.context import RunContext
from image_awaiter.run.gatecontext import GateContext
from image_awaiter.run.groupruns import GroupRuns
from image_awaiter.run.watches import PullerCaches
from image_awaiter.spec.settings import Group


def group_runs(context: RunContext) -> GroupRuns:
    """The run's pull groups: a gate's, or one run's."""
    if context.gate is not None:
        return GateGroupRuns(context, gate=context.gate)
    return GroupRuns(context, judging=context.settings.judging)


class GateGroupRuns(GroupRuns):
    def __init__(self, context: RunContext, *, gate: GateContext) -> None:
        self._gate = gate
        super().__init__(context, judging=context.settings.judging)
        settings = gate.settings
        owner = (
            deployment_owner(
                context.kube, namespace=context.namespace, name=settings.owner_deployment
            )
            if settings.owner_deployment and not settings.dry_run
            else None
        )
        self.pullers = GatePullers(
            kube=context.kube,
            namespace=context.namespace,
            manifests=[
                gate_manifest(g.manifest, gate=settings.taint, group=g.name, owner=owner)
                for g in context.job.groups
            ],
        )

    def placement(self, group: Group, context: RunContext) -> Placement:
        assert context.gate is not None  # set before the judges are built
        return gate_placement(group.placement, context.gate.settings.taint)

    def create(self, *, own_namespace: str | None) -> None:
        """Nothing yet: the leader writes the DaemonSets once it has read them (`keep_alive`)."""

    def keep_alive(self, pullers: PullerCaches) -> None:
        """The leader creates the missing DaemonSets and updates the changed."""
        if self._gate.leading and pullers.listed is not None:
            self.pullers.ensure(pullers.listed.snapshot())

    def names(self) -> tuple[str, ...]:
        return ()  # no puller events are watched: the gate judges pods and nodes only

    def delete(self, *, keep: bool) -> None:
        """Never: the chart owns the gate's DaemonSets."""

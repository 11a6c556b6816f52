"""Every cache a run reads, started here and nowhere else: the nodes (listed once, or watched),
then, once the pullers exist, this run's puller pods, its DaemonSets' uids and the kubelets'
events on its pods. All are informers of the context's `Caches`, stopped together.

A gate's run watches only the nodes carrying the gate taint (`GateNodeCodec`: the others cost
nothing) and its long-lived pullers (the `image-awaiter.io/role: gate` label, not a run id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from image_awaiter.cluster.gatepullers import GATE_SELECTOR, Listed, listed
from image_awaiter.core.creation import FailedCreate
from image_awaiter.core.pullerpods import PullerPod
from image_awaiter.core.pullfacts import KubeletEvent
from image_awaiter.core.targeting import NodeState, label_keys
from image_awaiter.kube.controllerevents import FAILED_CREATE_EVENTS, FailedCreateCodec
from image_awaiter.kube.decoding import JsonCodec, UidCodec
from image_awaiter.kube.gatenodes import GateNodeCodec
from image_awaiter.kube.nodecodec import NodeCodec
from image_awaiter.kube.podcodec import EventCodec, PodCodec
from image_awaiter.kube.resources import DAEMONSETS, EVENTS, NODES, PODS
from image_awaiter.kube.watching import Informer
from image_awaiter.run.context import RunContext
from image_awaiter.run.gatecontext import GatedNodes
from image_awaiter.spec.pullers import run_selector

# Kubelet events about pods in the DaemonSet's namespace; the API selects events on equality
# only (no set of pod names), so the codec keeps just this run's pods' (ARCHITECTURE.md).
KUBELET_POD_EVENTS = "involvedObject.kind=Pod,source=kubelet"


@dataclass(frozen=True, slots=True)
class PullerCaches:
    """What the run's pullers show: their pods (of every group), the DaemonSets' uids, the
    kubelets' events on the pods and the DaemonSet controller's `FailedCreate` events on the
    DaemonSets (None when there is no DaemonSet to name them)."""

    pods: Informer[PullerPod]
    daemonsets: Informer[str] | None  # their uids (None for a gate's)
    events: Informer[KubeletEvent | None] | None
    failed_creates: Informer[FailedCreate | None] | None = None
    listed: Informer[Listed] | None = None  # a gate's DaemonSets, with their templates' hash


class NodeSource(Protocol):
    """The watched nodes, as readiness judges them."""

    def snapshot(self) -> dict[str, NodeState]: ...


class Watches:
    def __init__(self, context: RunContext) -> None:
        self._context = context
        job = context.job
        self._node_codec = NodeCodec(
            wanted=job.keys, label_keys=label_keys(g.placement for g in job.groups)
        )

    def read_nodes(self) -> dict[str, NodeState]:
        """One list of the nodes, without watching (read-only runs)."""
        nodes = Informer(kube=self._context.kube, address=NODES.address(), codec=self._node_codec)
        return nodes.list_once()

    def start_nodes(self) -> NodeSource:
        """The nodes, watched; a gate's: only those carrying its taint (`context.gate.nodes`)."""
        context, gate = self._context, self._context.gate
        if gate is None:
            return context.caches.start(
                name="nodes", address=NODES.address(), codec=self._node_codec
            )
        job, settings = context.job, gate.settings
        codec = GateNodeCodec(
            gate=settings.taint,
            condition=settings.condition,
            wanted=job.keys,
            label_keys=label_keys(g.placement for g in job.groups),
        )
        gate.nodes = GatedNodes(
            context.caches.start(name="nodes", address=NODES.address(), codec=codec)
        )
        return gate.nodes

    def start_gate_pullers(self) -> PullerCaches:
        """A gate's pullers: their pods and DaemonSets by the gate's label."""
        caches, namespace = self._context.caches, self._context.namespace
        pods = caches.start(
            name="pods",
            address=PODS.address(namespace=namespace),
            codec=PodCodec(),
            label_selector=GATE_SELECTOR,
        )
        daemonsets = caches.start(
            name="daemonsets",
            address=DAEMONSETS.address(namespace=namespace),
            codec=JsonCodec(listed),
            label_selector=GATE_SELECTOR,
        )
        assert self._context.gate is not None
        self._context.gate.pullers_watched = True
        return PullerCaches(pods=pods, daemonsets=None, events=None, listed=daemonsets)

    def start_pullers(self, daemonsets: tuple[str, ...]) -> PullerCaches:
        """The caches of this run's pullers, `daemonsets` naming its DaemonSets (one per group):
        their pods' events are the ones kept."""
        context = self._context
        if context.gate is not None:
            return self.start_gate_pullers()
        caches, namespace, ours = context.caches, context.namespace, run_selector(context.run_id)
        pods = caches.start(
            name="pods",
            address=PODS.address(namespace=namespace),
            codec=PodCodec(),
            label_selector=ours,
        )
        uids = caches.start(
            name="daemonsets",
            address=DAEMONSETS.address(namespace=namespace),
            codec=UidCodec(),
            label_selector=ours,
        )
        events = failed_creates = None
        if daemonsets:
            events = caches.start(
                name="events",
                address=EVENTS.address(namespace=namespace),
                codec=EventCodec(pod_prefix=tuple(name + "-" for name in daemonsets)),
                field_selector=KUBELET_POD_EVENTS,
                optional=True,  # pull facts are worth having, not worth failing a run for
            )
            failed_creates = caches.start(
                name="daemonset-events",
                address=EVENTS.address(namespace=namespace),
                codec=FailedCreateCodec(daemonsets=daemonsets),
                field_selector=FAILED_CREATE_EVENTS,
                optional=True,  # without it a refused puller is seen only at the deadline
            )
        return PullerCaches(
            pods=pods, daemonsets=uids, events=events, failed_creates=failed_creates
        )

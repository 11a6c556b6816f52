"""Every cache a run reads, started here and nowhere else: the nodes (listed once, or watched),
then, once the pullers exist, this run's puller pods, its DaemonSets' uids and the kubelets'
events on its pods. All are informers of the context's `Caches`, stopped together."""

from __future__ import annotations

from dataclasses import dataclass

from image_awaiter.core.pullerpods import PullerPod
from image_awaiter.core.pullfacts import KubeletEvent
from image_awaiter.core.targeting import NodeState, label_keys
from image_awaiter.kube.decoding import UidCodec
from image_awaiter.kube.nodecodec import NodeCodec
from image_awaiter.kube.podcodec import EventCodec, PodCodec
from image_awaiter.kube.resources import DAEMONSETS, EVENTS, NODES, PODS
from image_awaiter.kube.watching import Informer
from image_awaiter.run.context import RunContext
from image_awaiter.spec.pullers import run_selector

# Kubelet events about pods in the DaemonSet's namespace; the API selects events on equality
# only (no set of pod names), so the codec keeps just this run's pods' (ARCHITECTURE.md).
KUBELET_POD_EVENTS = "involvedObject.kind=Pod,source=kubelet"


@dataclass(frozen=True, slots=True)
class PullerCaches:
    """What the run's pullers show: their pods (of every group), the DaemonSets' uids, and
    the kubelets' events on the pods (None when there is no DaemonSet to name them)."""

    pods: Informer[PullerPod]
    daemonsets: Informer[str]
    events: Informer[KubeletEvent | None] | None


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

    def start_nodes(self) -> Informer[NodeState]:
        return self._context.caches.start(
            name="nodes", address=NODES.address(), codec=self._node_codec
        )

    def start_pullers(self, daemonsets: tuple[str, ...]) -> PullerCaches:
        """The caches of this run's pullers, `daemonsets` naming its DaemonSets (one per group):
        their pods' events are the ones kept."""
        context = self._context
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
        events = None
        if daemonsets:
            events = caches.start(
                name="events",
                address=EVENTS.address(namespace=namespace),
                codec=EventCodec(pod_prefix=tuple(name + "-" for name in daemonsets)),
                field_selector=KUBELET_POD_EVENTS,
                optional=True,  # pull facts are worth having, not worth failing a run for
            )
        return PullerCaches(pods=pods, daemonsets=uids, events=events)

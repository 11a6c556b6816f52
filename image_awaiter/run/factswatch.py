"""The kubelets' events on this run's puller pods, folded into `PullFacts`: for the report, the
live view, and the judges (a `Failed` event names a pull error's cause when the pod's waiting
state does not). The folding itself is pure (`pullfacts.Folder`); this keeps it current."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from threading import Event

from image_awaiter.core.pullerpods import PullerPod
from image_awaiter.core.pullfacts import Folder, KubeletEvent, PullFacts
from image_awaiter.core.references import ImageKey, ImageRef
from image_awaiter.kube.watching import Informer

FACTS_GAP = 0.5  # pull facts are re-folded from the events at most this often
SETTLE_FACTS = 2.0  # seconds a successful run waits at most for the last Pulled events


class PullFactsWatch:
    """The kubelets' events on this run's puller pods, folded with the pods' nodes into
    `PullFacts` (incrementally: each event parsed once) when the stores changed."""

    def __init__(self, images: Sequence[ImageRef]) -> None:
        self.facts = PullFacts({})
        self._folder = Folder(images)
        self._events: Informer[KubeletEvent | None] | None = None
        self._pods: Informer[PullerPod] | None = None
        self._seen = (-1, -1, 0.0)  # (events, lists, when) at the last fold

    def attach(
        self, *, pods: Informer[PullerPod], events: Informer[KubeletEvent | None] | None
    ) -> None:
        """Fold from these caches from now on (started by `watches.Watches.start_pullers`)."""
        self._pods, self._events = pods, events

    def fold(self, *, force: bool = False) -> PullFacts:
        """Re-read the facts when the stores changed, at most every FACTS_GAP seconds unless
        forced: a fold walks every event of the run."""
        if self._events is None or self._pods is None:
            return self.facts
        now = time.monotonic()
        seen = (
            self._events.store.events + self._pods.store.events,
            self._events.store.lists + self._pods.store.lists,
        )
        if seen == self._seen[:2] or (not force and now - self._seen[2] < FACTS_GAP):
            return self.facts
        self._seen = (*seen, now)
        bound = [p for p in self._pods.snapshot().values() if p.node is not None]
        self.facts = self._folder.fold(
            self._events.snapshot(),
            pod_nodes={p.name: p.node for p in bound if p.node is not None},
            container_bounds={p.node: p.pull_seconds for p in bound if p.node is not None},
        )
        return self.facts

    def settle(
        self,
        done: Mapping[str, tuple[frozenset[str], tuple[ImageKey, ...]]],
        *,
        wake: Event,
        budget: float = SETTLE_FACTS,
    ) -> None:
        """A pod's status can show an image pulled before its `Pulled` event reaches the
        events watch: give the events a moment (bounded) so the report has the figures.
        `done`: per group, its done nodes and its images."""
        if self._events is None or self._pods is None:
            return
        until = time.monotonic() + budget
        while True:
            self.fold(force=True)
            if self._settled(self._pods.snapshot().values(), done) or time.monotonic() >= until:
                return
            wake.wait(0.1)
            wake.clear()

    def _settled(
        self,
        pods: Iterable[PullerPod],
        done: Mapping[str, tuple[frozenset[str], tuple[ImageKey, ...]]],
    ) -> bool:
        """Every done node with a puller pod of a group has an event fact, pulled or present,
        for each of that group's images."""
        facts = self.facts.facts
        wanted = {
            (pod.node, key)
            for pod in pods
            if pod.node is not None and pod.node in done.get(pod.group, ((), ()))[0]
            for key in done[pod.group][1]
        }
        return all(
            (fact := facts.get(pair)) is not None
            and fact.state in ("pulled", "present")
            and fact.source == "event"
            for pair in wanted
        )

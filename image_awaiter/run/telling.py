"""What a run tells while it works, and decides nothing with: the progress lines and the live
view, the pull facts folded from the kubelets' events (for the report, the view and the
judges' failure classes), and the Kubernetes Events on the awaiter's own pod. `awaiting.Run`
calls a `Teller` at each step of its loop."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from threading import Event

import structlog

from image_awaiter.cluster.podevents import PodEvents
from image_awaiter.core.combined import GroupEvaluation, group_progress
from image_awaiter.core.errors import ExitCode
from image_awaiter.core.outcomes import Outcome
from image_awaiter.core.pullfacts import Folder, KubeletEvent, PullFacts
from image_awaiter.core.readiness import Evaluation, PullerPod
from image_awaiter.core.references import ImageKey, ImageRef
from image_awaiter.kube.client import Kube
from image_awaiter.kube.decoding import EventCodec
from image_awaiter.kube.resources import EVENTS
from image_awaiter.kube.watching import Caches, Informer
from image_awaiter.output import logs
from image_awaiter.output.liveview import LiveView, live_view_wanted
from image_awaiter.output.progress import LivePicture, Progress
from image_awaiter.spec.settings import Job, Settings

log = structlog.get_logger("image_awaiter")

FACTS_GAP = 0.5  # pull facts are re-folded from the events at most this often
SETTLE_FACTS = 2.0  # seconds a successful run waits at most for the last Pulled events
# Kubelet events about pods in the DaemonSet's namespace; the API selects events on equality
# only (no set of pod names), so the codec keeps just this run's pods' (ARCHITECTURE.md).
KUBELET_POD_EVENTS = "involvedObject.kind=Pod,source=kubelet"
NOT_IN_SPEC = (
    "the spec's pod never pulls this image; only the nodes' own status.images can show it present"
)


def start_live_view(settings: Settings) -> LiveView | None:
    """The live view on a terminal; log lines then go above it, warnings and errors only
    (unless -v), so that the display is not a scroll of lines."""
    if (
        settings.command != "await"
        or settings.dry_run
        or not live_view_wanted(sys.stderr, settings.log_format, settings.progress)
    ):
        return None
    view = LiveView(stream=sys.stderr, show_excluded=settings.verbosity > 0)
    view.start()
    logs.configure(
        log_format="console",
        verbosity=settings.verbosity if settings.verbosity > 0 else -1,
        stream=view.writer(),
    )
    return view


def stop_live_view(view: LiveView | None, settings: Settings) -> None:
    """Before the final line, which must stand on its own; logging as it was."""
    if view is not None:
        view.stop()
        logs.configure(log_format=settings.log_format, verbosity=settings.verbosity)


class PullFactsWatch:
    """The kubelets' events on this run's puller pods, folded with the pods' nodes into
    `PullFacts` (incrementally: each event parsed once) when the stores changed."""

    def __init__(self, images: Sequence[ImageRef]) -> None:
        self.facts = PullFacts({})
        self._folder = Folder(images)
        self._events: Informer[KubeletEvent | None] | None = None
        self._pods: Informer[PullerPod] | None = None
        self._seen = (-1, -1, 0.0)  # (events, lists, when) at the last fold

    def start(
        self,
        caches: Caches,
        *,
        namespace: str,
        daemonsets: tuple[str, ...],
        pods: Informer[PullerPod],
    ) -> None:
        """Watch the events of pods named after any of `daemonsets` (one per pull group)."""
        self._pods = pods
        if daemonsets:
            self._events = caches.start(
                name="events",
                address=EVENTS.address(namespace=namespace),
                codec=EventCodec(pod_prefix=tuple(name + "-" for name in daemonsets)),
                field_selector=KUBELET_POD_EVENTS,
                optional=True,  # pull facts are worth having, not worth failing a run for
            )

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


class Teller:
    """Everything one run says about itself: logs, progress, the live view, its own pod's
    Events, and the pull facts behind them."""

    def __init__(
        self,
        *,
        settings: Settings,
        job: Job,
        kube: Kube,
        namespace: str,
        run_id: str,
        started: float,
        view: LiveView | None,
    ) -> None:
        self._job = job
        self._started = started
        self.progress = Progress(started=started, interval=settings.interval)
        self._picture = (
            LivePicture(view, images=[i.original for i in job.images], started=started)
            if view is not None
            else None
        )
        # Only `await` writes: `check` and `--dry-run` are read-only, Events on the pod too.
        writes = settings.events and settings.command == "await" and not settings.dry_run
        owner = settings.owner(default_namespace=namespace) if writes else None
        self._pod_events = PodEvents(kube=kube, pod=owner, run_id=run_id)
        self.facts = PullFactsWatch(job.images)
        self._platform_logged: set[tuple[str, ImageKey]] = set()
        log.info(
            "run.started",
            images=[i.original for i in job.images],
            source=job.source,
            groups=[g.name for g in job.groups],
            timeout=settings.timeout or None,
        )
        if len(job.groups) > 1:
            for group in job.groups:
                log.info(
                    "group.resolved", group=group.name, images=[i.original for i in group.images]
                )
        for skipped in job.skipped:
            log.warning(
                "manifests.skipped",
                resource=skipped.ref,
                images=list(skipped.images),
                source=skipped.source,
                detail=skipped.reason,
            )

    def observe(
        self, evaluation: Evaluation, groups: Sequence[GroupEvaluation], *, now: float
    ) -> None:
        self.progress.observe(
            evaluation, now=now, groups=group_progress(groups) if len(groups) > 1 else None
        )
        for (node, key), exclusion in evaluation.platform_excluded.items():
            if (node, key) not in self._platform_logged:
                self._platform_logged.add((node, key))
                log.warning(
                    "node.platform_excluded",
                    node=node,
                    image=exclusion.image,
                    reason=exclusion.reason,
                    message=exclusion.message,
                )
        if self._picture is not None:
            self._picture.observe(evaluation, now=now, pulled_bytes=self.facts.facts.pulled_bytes)

    def creating(self) -> None:
        """Pullers are about to be created: what they cannot show."""
        for image in self._job.not_in_spec:
            log.warning("image.not_in_spec", image=image.original, detail=NOT_IN_SPEC)

    def pulling(self, evaluation: Evaluation) -> None:
        """Pullers were created: the plan, on the awaiter's own pod."""
        waiting = len(evaluation.verdicts) - len(evaluation.done_nodes)
        images = ", ".join(i.original for i in self._job.images)
        self._pod_events.record(
            "ImagesPulling",
            f"pulling {len(self._job.images)} images ({images}) on {waiting} of "
            f"{len(evaluation.verdicts)} target nodes ({len(evaluation.excluded)} excluded)",
        )

    def succeeded(self, evaluation: Evaluation, message: str) -> None:
        if not evaluation.verdicts:
            log.warning("run.no_targets", excluded=len(evaluation.excluded))
        seconds = round(time.monotonic() - self._started, 2)
        log.info("run.succeeded", message=message, seconds=seconds)
        self._pod_events.record("ImagesReady", message)

    def pull_failed(self, failing: Sequence[GroupEvaluation], message: str) -> None:
        for group in failing:
            for failure in group.evaluation.failures:  # node=, image=, reason=, message=
                log.error("image.pull_failed", group=group.name, **dataclasses.asdict(failure))
        first = failing[0].evaluation.failures[0]
        self._pod_events.record(
            "ImagePullFailed", f"{first.kind or first.reason}: {message}", warning=True
        )

    def timed_out(self, outcome: Outcome) -> None:
        ignored = outcome.exit_code is ExitCode.OK  # --on-timeout succeed
        (log.warning if ignored else log.error)(
            "run.timeout_ignored" if ignored else "run.timed_out", message=outcome.message
        )

    def final(self, last: Evaluation | None) -> PullFacts:
        """The facts as they stand at the end, and the view's last frame."""
        facts = self.facts.fold(force=True)
        if self._picture is not None and last is not None:
            self._picture.observe(
                last, now=time.monotonic(), pulled_bytes=facts.pulled_bytes, final=True
            )
        return facts

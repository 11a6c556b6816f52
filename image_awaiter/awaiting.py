"""The await loop: gather a snapshot from the caches, evaluate, report, wait; and `execute`,
which turns every way a run can end into an `Outcome` and writes the report.

The puller DaemonSet's lifecycle lives in daemonsets.py, the caches in watching.py, signal
handling in signals.py, the wording of each ending in outcomes.py, the report in reporting.py.
"""

from __future__ import annotations

import dataclasses
import secrets
import sys
import time
from collections.abc import Iterable

import structlog

from image_awaiter import logs, outcomes
from image_awaiter.connecting import Connection, connect
from image_awaiter.daemonsets import PullerDaemonSet, check_namespace, sweep_stale
from image_awaiter.decoding import EventCodec, NodeCodec, PodCodec, UidCodec
from image_awaiter.errors import AwaiterError, DeadlineReached, ExitCode, Interrupted
from image_awaiter.kube import Kube
from image_awaiter.liveview import LiveView, live_view_wanted
from image_awaiter.outcomes import Outcome, Result
from image_awaiter.podevents import PodEvents
from image_awaiter.progress import LivePicture, Progress
from image_awaiter.pullers import run_selector
from image_awaiter.pullfacts import Folder, KubeletEvent, PullFacts
from image_awaiter.readiness import Evaluation, FailureRules, Judge, PullerPod
from image_awaiter.references import ImageKey
from image_awaiter.reporting import build_report, now_iso, write_report
from image_awaiter.resources import DAEMONSETS, EVENTS, NODES, PODS
from image_awaiter.settings import Job, Settings, resolve_job
from image_awaiter.signals import Hold, SignalGuard
from image_awaiter.targeting import NodeState, label_keys
from image_awaiter.watching import Caches, Informer

log = structlog.get_logger("image_awaiter")

MIN_EVALUATION_GAP = 0.05  # event-driven evaluations are at most this frequent
FACTS_GAP = 0.5  # pull facts are re-folded from the events at most this often
SETTLE_FACTS = 2.0  # seconds a successful run waits at most for the last Pulled events
# Kubelet events about pods in the DaemonSet's namespace; the API selects events on equality
# only (no set of pod names), so the codec keeps just this run's pods' (ARCHITECTURE.md).
KUBELET_POD_EVENTS = "involvedObject.kind=Pod,source=kubelet"
NOT_IN_SPEC = (
    "the spec's pod never pulls this image; only the nodes' own status.images can show it present"
)


def execute(settings: Settings) -> Outcome:
    """Run `settings.command`; every failure becomes an `Outcome` with its exit code."""
    started, started_wall = time.monotonic(), now_iso()
    structlog.contextvars.clear_contextvars()
    job: Job | None = None
    run: Run | None = None
    view = _live_view(settings)
    with SignalGuard() as signals:
        try:
            job = resolve_job(settings)
            run = Run(
                settings=settings,
                job=job,
                connection=_connect(settings),
                hold=signals.held,
                view=view,
            )
            try:
                outcome = run.check() if settings.command == "check" else run.await_images()
            except DeadlineReached as error:  # the API failed until the time was up
                outcome = run.timed_out(cause=error)
        except AwaiterError as error:
            outcome = _failed(error, run)
        finally:
            signals.defer()  # a signal now must not cut the cleanup short
            if run is not None:
                run.close()
            if view is not None:  # before the final line, which must stand on its own
                view.stop()
                logs.configure(log_format=settings.log_format, verbosity=settings.verbosity)
        if signals.deferred is not None and outcome.result is not Result.INTERRUPTED:
            outcome = _failed(Interrupted(signals.deferred), run)
    if run is not None and run.daemonset.record is not None:
        outcome = dataclasses.replace(outcome, daemonset=run.daemonset.record.to_report())
    if settings.report:
        report = build_report(
            outcome,
            command=settings.command,
            images=job.images if job else (),
            namespace=run.namespace if run else (settings.namespace or ""),
            started=(started_wall, started),
        )
        write_report(report, destination=settings.report)
    return outcome


def _live_view(settings: Settings) -> LiveView | None:
    """The live view on a terminal; log lines then go above it, warnings and errors only
    (unless -v), so that the display is not a scroll of lines."""
    if settings.command != "await" or not live_view_wanted(
        sys.stderr, settings.log_format, settings.progress
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


def _connect(settings: Settings) -> Connection:
    return connect(
        kubeconfig=settings.kubeconfig,
        context=settings.context,
        namespace=settings.namespace,
        in_cluster_namespace=settings.pod_namespace or settings.in_cluster_namespace,
    )


def _failed(error: AwaiterError, run: Run | None) -> Outcome:
    code, result, message = outcomes.failed(error)
    return run.outcome(code, result, message) if run else Outcome(code, result, message)


class Run:
    """One check or await: its caches, its puller DaemonSet, and the last evaluation."""

    def __init__(
        self,
        *,
        settings: Settings,
        job: Job,
        connection: Connection,
        hold: Hold,
        view: LiveView | None = None,
    ) -> None:
        self.settings = settings
        self.job = job
        self.namespace = connection.namespace
        self.own_namespace = settings.own_namespace(in_cluster=connection.in_cluster)
        self.started = time.monotonic()
        self.deadline = self.started + settings.timeout if settings.timeout > 0 else None
        self.kube = Kube(connection.client, deadline=self.deadline)
        self.run_id = secrets.token_hex(4)
        structlog.contextvars.bind_contextvars(
            run_id=self.run_id, command=settings.command, namespace=self.namespace
        )
        self.caches = Caches(kube=self.kube, hold=hold)
        self.node_codec = NodeCodec(wanted=job.keys, label_keys=label_keys([job.placement]))
        self.daemonset = PullerDaemonSet(
            kube=self.kube,
            namespace=self.namespace,
            run_id=self.run_id,
            manifest=job.manifest,
            owner=settings.owner(default_namespace=self.namespace),
        )
        self.judge = Judge(
            images=job.images,
            placement=job.placement,
            include_cordoned=settings.include_cordoned,
            grace=settings.pull_failure_grace,
            rules=FailureRules(
                fail_fast=settings.fail_fast, platform_mismatch=settings.on_platform_mismatch
            ),
        )
        self.progress = Progress(started=self.started, interval=settings.interval)
        self.picture = (
            LivePicture(view, images=[i.original for i in job.images], started=self.started)
            if view is not None
            else None
        )
        owner = settings.owner(default_namespace=self.namespace)
        self.pod_events = PodEvents(
            kube=self.kube, pod=owner if settings.events else None, run_id=self.run_id
        )
        self.events: Informer[KubeletEvent | None] | None = None
        self.pods: Informer[PullerPod] | None = None
        self.facts = PullFacts({})
        self.folder = Folder(job.images)
        self._facts_seen = (-1, -1, 0.0)  # (events, lists, when) at the last fold
        self._platform_logged: set[tuple[str, ImageKey]] = set()
        log.info(
            "run.started",
            images=[i.original for i in job.images],
            source=job.source,
            timeout=settings.timeout or None,
        )

    def check(self) -> Outcome:
        """Read-only: list nodes once and judge them on node.status.images alone."""
        check_namespace(self.kube, self.namespace, required=False, own=self.own_namespace)
        nodes = Informer(kube=self.kube, address=NODES.address(), codec=self.node_codec)
        evaluation = self._evaluate(nodes.list_once(), [])
        if evaluation.done:
            return self._success(evaluation)
        outcome = self.outcome(*outcomes.missing(evaluation))
        log.warning("check.missing", message=outcome.message)
        return outcome

    def await_images(self) -> Outcome:
        nodes = self.caches.start(name="nodes", address=NODES.address(), codec=self.node_codec)
        self.caches.wait_synced(deadline=self.deadline)
        evaluation = self._evaluate(nodes.snapshot(), [])
        if evaluation.done:
            log.info("run.fast_path", detail="every target node has every image; nothing created")
            return self._success(evaluation)
        for image in self.job.not_in_spec:
            log.warning("image.not_in_spec", image=image.original, detail=NOT_IN_SPEC)
        check_namespace(self.kube, self.namespace, required=True, own=self.own_namespace)
        sweep_stale(self.kube, self.namespace)
        self.daemonset.create(skip_nodes=self.judge.done_nodes)
        self._announce_plan(evaluation)
        ours, namespace = run_selector(self.run_id), self.namespace
        pods = self.caches.start(
            name="pods",
            address=PODS.address(namespace=namespace),
            codec=PodCodec(),
            label_selector=ours,
        )
        self.pods = pods
        if self.daemonset.record is not None:
            self.events = self.caches.start(
                name="events",
                address=EVENTS.address(namespace=namespace),
                codec=EventCodec(pod_prefix=self.daemonset.record.name + "-"),
                field_selector=KUBELET_POD_EVENTS,
                optional=True,  # pull facts are worth having, not worth failing a run for
            )
        daemonsets = self.caches.start(
            name="daemonsets",
            address=DAEMONSETS.address(namespace=namespace),
            codec=UidCodec(),
            label_selector=ours,
        )
        self.caches.wait_synced(deadline=self.deadline)
        return self._loop(nodes, pods, daemonsets)

    def _loop(
        self, nodes: Informer[NodeState], pods: Informer[PullerPod], daemonsets: Informer[str]
    ) -> Outcome:
        interval = self.settings.interval
        next_tick = time.monotonic()
        wake = self.caches.wake
        while True:
            self.caches.raise_errors()
            self.daemonset.keep_alive(
                cached_uids=set(daemonsets.snapshot().values()), skip_nodes=self.judge.done_nodes
            )
            pod_records = pods.snapshot().values()
            self._fold_facts(pod_records)
            evaluation = self._evaluate(nodes.snapshot(), pod_records)
            if evaluation.failures:
                return self._pull_failed(evaluation)
            if evaluation.done:
                return self._success(evaluation)
            now = time.monotonic()
            if self.deadline is not None and now >= self.deadline:
                return self.timed_out()
            while next_tick <= now:
                next_tick += interval
            until = min(next_tick, self.deadline) if self.deadline is not None else next_tick
            wake.wait(max(0.0, until - now))
            wake.clear()
            time.sleep(MIN_EVALUATION_GAP)  # coalesce a burst of events into one evaluation

    def _evaluate(self, nodes: dict[str, NodeState], pods: Iterable[PullerPod]) -> Evaluation:
        now = time.monotonic()
        evaluation = self.judge(nodes, pods, now=now, event_errors=self.facts.errors)
        self.progress.observe(evaluation, now=now)
        self._log_platform_exclusions(evaluation)
        if self.picture is not None:
            self.picture.observe(evaluation, now=now, pulled_bytes=self.facts.pulled_bytes)
        return evaluation

    def _fold_facts(self, pods: Iterable[PullerPod], *, force: bool = False) -> None:
        """Re-read the pull facts from the events store when it changed (at most every
        FACTS_GAP seconds unless forced): a fold walks every event of the run."""
        if self.events is None or self.pods is None:
            return
        now = time.monotonic()
        seen = (self.events.events + self.pods.events, self.events.lists + self.pods.lists)
        if seen == self._facts_seen[:2] or (not force and now - self._facts_seen[2] < FACTS_GAP):
            return
        self._facts_seen = (*seen, now)
        bound = [p for p in pods if p.node is not None]
        self.facts = self.folder.fold(
            self.events.snapshot(),
            pod_nodes={p.name: p.node for p in bound if p.node is not None},
            container_bounds={p.node: p.pull_seconds for p in bound if p.node is not None},
        )

    def _settle_facts(self, evaluation: Evaluation, *, budget: float = SETTLE_FACTS) -> None:
        """A pod's status can show an image pulled before its `Pulled` event reaches the
        events watch: give the events a moment (bounded) so the report has the figures."""
        if self.events is None or self.pods is None:
            return
        until = time.monotonic() + budget
        done = set(evaluation.done_nodes)
        while True:
            pods = self.pods.snapshot().values()
            self._fold_facts(pods, force=True)
            nodes = {p.node for p in pods if p.node in done}
            facts = self.facts.facts
            if (
                all(
                    (fact := facts.get((node, image.key))) is not None
                    and fact.state in ("pulled", "present")
                    and fact.source == "event"
                    for node in nodes
                    for image in self.job.images
                )
                or time.monotonic() >= until
            ):
                return
            self.caches.wake.wait(0.1)
            self.caches.wake.clear()

    def _log_platform_exclusions(self, evaluation: Evaluation) -> None:
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

    def _announce_plan(self, evaluation: Evaluation) -> None:
        waiting = len(evaluation.verdicts) - len(evaluation.done_nodes)
        images = ", ".join(i.original for i in self.job.images)
        self.pod_events.record(
            "ImagesPulling",
            f"pulling {len(self.job.images)} images ({images}) on {waiting} of "
            f"{len(evaluation.verdicts)} target nodes ({len(evaluation.excluded)} excluded)",
        )

    def _success(self, evaluation: Evaluation) -> Outcome:
        self._settle_facts(evaluation)
        outcome = self.outcome(*outcomes.succeeded(evaluation, images=len(self.job.images)))
        if not evaluation.verdicts:
            log.warning("run.no_targets", excluded=len(evaluation.excluded))
        seconds = round(time.monotonic() - self.started, 2)
        log.info("run.succeeded", message=outcome.message, seconds=seconds)
        self.pod_events.record("ImagesReady", outcome.message)
        return outcome

    def _pull_failed(self, evaluation: Evaluation) -> Outcome:
        for failure in evaluation.failures:  # node=, image=, reason=, message=
            log.error("image.pull_failed", **dataclasses.asdict(failure))
        outcome = self.outcome(*outcomes.pull_failed(evaluation))
        first = evaluation.failures[0]
        self.pod_events.record(
            "ImagePullFailed", f"{first.kind or first.reason}: {outcome.message}", warning=True
        )
        return outcome

    def timed_out(self, *, cause: DeadlineReached | None = None) -> Outcome:
        """The time is up; `cause` is an API that kept failing until the deadline."""
        outcome = self.outcome(
            *outcomes.timed_out(
                self.judge.last,
                timeout=self.settings.timeout,
                on_timeout=self.settings.on_timeout,
                cause=cause.message if cause else None,
            )
        )
        ignored = outcome.exit_code is ExitCode.OK  # --on-timeout succeed
        (log.warning if ignored else log.error)(
            "run.timeout_ignored" if ignored else "run.timed_out", message=outcome.message
        )
        return outcome

    def outcome(self, code: ExitCode, result: Result, message: str) -> Outcome:
        if self.pods is not None:
            self._fold_facts(self.pods.snapshot().values(), force=True)
        if self.picture is not None and self.judge.last is not None:
            self.picture.observe(
                self.judge.last,
                now=time.monotonic(),
                pulled_bytes=self.facts.pulled_bytes,
                final=True,
            )
        return Outcome(
            code,
            result,
            message,
            self.judge.last,
            self.progress.done_after,
            pull_facts=self.facts,
        )

    def close(self) -> None:
        """Stop the caches and delete the DaemonSet this run created, unless asked to keep it."""
        self.caches.stop()
        record = self.daemonset.record
        if record is not None and self.settings.keep_daemonset:
            log.info("daemonset.kept", name=record.name)
            return
        self.daemonset.delete()

"""The await loop: gather a snapshot from the caches, evaluate, report, wait; and `execute`,
which turns every way a run can end into an `Outcome` and writes the report.

The puller DaemonSet's lifecycle lives in daemonsets.py, the caches in watching.py, signal
handling in signals.py, the wording of each ending in outcomes.py, the report in reporting.py.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Iterable

import structlog

from image_awaiter import outcomes
from image_awaiter.connecting import Connection, connect
from image_awaiter.daemonsets import PullerDaemonSet, check_namespace, sweep_stale
from image_awaiter.decoding import NodeCodec, PodCodec, UidCodec
from image_awaiter.errors import AwaiterError, DeadlineReached, ExitCode, Interrupted
from image_awaiter.kube import Kube
from image_awaiter.outcomes import Outcome, Result
from image_awaiter.progress import Progress
from image_awaiter.pullers import run_selector
from image_awaiter.readiness import Evaluation, Judge, PullerPod
from image_awaiter.reporting import build_report, now_iso, write_report
from image_awaiter.resources import DAEMONSETS, NODES, PODS
from image_awaiter.settings import Job, Settings, resolve_job
from image_awaiter.signals import Hold, SignalGuard
from image_awaiter.targeting import NodeState
from image_awaiter.watching import Caches, Informer

log = structlog.get_logger("image_awaiter")

MIN_EVALUATION_GAP = 0.05  # event-driven evaluations are at most this frequent
NOT_IN_SPEC = (
    "the spec's pod never pulls this image; only the nodes' own status.images can show it present"
)


def execute(settings: Settings) -> Outcome:
    """Run `settings.command`; every failure becomes an `Outcome` with its exit code."""
    started, started_wall = time.monotonic(), now_iso()
    structlog.contextvars.clear_contextvars()
    job: Job | None = None
    run: Run | None = None
    with SignalGuard() as signals:
        try:
            job = resolve_job(settings)
            run = Run(settings=settings, job=job, connection=_connect(settings), hold=signals.held)
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
        self, *, settings: Settings, job: Job, connection: Connection, hold: Hold
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
        self.node_codec = NodeCodec(wanted=job.keys)
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
        )
        self.progress = Progress(started=self.started, interval=settings.interval)
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
        ours, namespace = run_selector(self.run_id), self.namespace
        pods = self.caches.start(
            name="pods",
            address=PODS.address(namespace=namespace),
            codec=PodCodec(),
            label_selector=ours,
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
            evaluation = self._evaluate(nodes.snapshot(), pods.snapshot().values())
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
        evaluation = self.judge(nodes, pods, now=now)
        self.progress.observe(evaluation, now=now)
        return evaluation

    def _success(self, evaluation: Evaluation) -> Outcome:
        outcome = self.outcome(*outcomes.succeeded(evaluation, images=len(self.job.images)))
        if not evaluation.verdicts:
            log.warning("run.no_targets", excluded=len(evaluation.excluded))
        seconds = round(time.monotonic() - self.started, 2)
        log.info("run.succeeded", message=outcome.message, seconds=seconds)
        return outcome

    def _pull_failed(self, evaluation: Evaluation) -> Outcome:
        for failure in evaluation.failures:  # node=, image=, reason=, message=
            log.error("image.pull_failed", **dataclasses.asdict(failure))
        return self.outcome(*outcomes.pull_failed(evaluation))

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
        return Outcome(code, result, message, self.judge.last, self.progress.done_after)

    def close(self) -> None:
        """Stop the caches and delete the DaemonSet this run created, unless asked to keep it."""
        self.caches.stop()
        record = self.daemonset.record
        if record is not None and self.settings.keep_daemonset:
            log.info("daemonset.kept", name=record.name)
            return
        self.daemonset.delete()

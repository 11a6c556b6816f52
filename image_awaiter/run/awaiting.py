"""The await loop: gather a snapshot from the caches, evaluate, report, wait; and `execute`,
which turns every way a run can end into an `Outcome` and writes the report.

The pull groups' DaemonSets and judges live in groupruns.py (one DaemonSet's lifecycle in
daemonsets.py), what the run tells while it works (progress, live view, pull facts, its own
pod's Events) in telling.py, the caches in watching.py, signal handling in signals.py, the
wording of each ending in outcomes.py, the report in reporting.py.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Iterable

import structlog

from image_awaiter.cluster.daemonsets import check_namespace
from image_awaiter.core import outcomes
from image_awaiter.core.errors import AwaiterError, DeadlineReached, ExitCode, Interrupted
from image_awaiter.core.outcomes import Outcome, Result
from image_awaiter.core.pullmethod import MethodChoice, choose_pull_method
from image_awaiter.core.readiness import Evaluation, PullerPod
from image_awaiter.core.references import parse_image
from image_awaiter.core.targeting import NodeState, label_keys
from image_awaiter.kube.client import Kube
from image_awaiter.kube.connecting import Connection, connect
from image_awaiter.kube.decoding import NodeCodec
from image_awaiter.kube.resources import NODES
from image_awaiter.kube.watching import Caches, Informer
from image_awaiter.output.liveview import LiveView
from image_awaiter.output.reporting import build_report, now_iso, write_report
from image_awaiter.run.groupruns import GroupRuns, write_plan
from image_awaiter.run.signals import Hold, SignalGuard
from image_awaiter.run.telling import Teller, start_live_view, stop_live_view
from image_awaiter.spec.pullers import AUTO
from image_awaiter.spec.settings import Job, Settings, resolve_job, with_pull_method

log = structlog.get_logger("image_awaiter")

MIN_EVALUATION_GAP = 0.05  # event-driven evaluations are at most this frequent


def execute(settings: Settings) -> Outcome:
    """Run `settings.command`; every failure becomes an `Outcome` with its exit code."""
    started, started_wall = time.monotonic(), now_iso()
    structlog.contextvars.clear_contextvars()
    job: Job | None = None
    run: Run | None = None
    view = start_live_view(settings)
    with SignalGuard() as signals:
        try:
            try:
                job = resolve_job(settings)
                run = Run(settings, job, _connect(settings), hold=signals.held, view=view)
                try:
                    outcome = run.check() if settings.command == "check" else run.await_images()
                except DeadlineReached as error:  # the API failed until the time was up
                    outcome = run.timed_out(cause=error)
            except AwaiterError as error:
                outcome = _failed(error, run)
            signals.defer()  # the outcome is known: a signal from now on is only recorded
        except Interrupted as interruption:  # raised wherever the main thread was, even above
            outcome = _failed(interruption, run)  # (the handler deferred further signals)
        finally:
            signals.defer()  # a signal now must not cut the cleanup short
            if run is not None:
                run.close()
            stop_live_view(view, settings)
        if signals.deferred is not None and outcome.result is not Result.INTERRUPTED:
            outcome = _failed(Interrupted(signals.deferred), run)
    if run is not None:
        outcome = dataclasses.replace(
            outcome, daemonset=run.groups.first_record(), groups=run.groups.outcomes()
        )
    if settings.report:
        report = build_report(
            outcome,
            command=settings.command,
            images=job.images if job else (),
            namespace=run.namespace if run else (settings.namespace or ""),
            started=(started_wall, started),
            skipped=job.skipped if job else (),
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


def _failed(error: AwaiterError | Interrupted, run: Run | None) -> Outcome:
    code, result, message = outcomes.failed(error)
    return run.outcome(code, result, message) if run else Outcome(code, result, message)


class Run:
    """One check or await: its caches, its pull groups (a DaemonSet and a judge each), what
    it tells, and the last evaluation (the groups' combined)."""

    def __init__(
        self,
        settings: Settings,
        job: Job,
        connection: Connection,
        *,
        hold: Hold,
        view: LiveView | None,
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
        self.node_codec = NodeCodec(
            wanted=job.keys, label_keys=label_keys(g.placement for g in job.groups)
        )
        self.groups = GroupRuns(
            settings=settings, job=job, kube=self.kube, namespace=self.namespace, run_id=self.run_id
        )
        self.last: Evaluation | None = None
        self.first: Evaluation | None = None  # before anything was created
        self.pull_method: MethodChoice | None = None  # what `--pull-method auto` chose
        self._read_nodes: dict[str, NodeState] = {}
        self.tell = Teller(
            settings=settings,
            job=job,
            kube=self.kube,
            namespace=self.namespace,
            run_id=self.run_id,
            started=self.started,
            view=view,
        )

    def check(self) -> Outcome:
        """Read-only: list nodes once and judge them on node.status.images alone. No namespace
        is read: `check` creates nothing in one, so it needs none."""
        evaluation = self._read_once()
        if evaluation.done:
            return self._success(evaluation)
        outcome = self.outcome(*outcomes.missing(evaluation))
        log.warning("check.missing", message=outcome.message)
        return outcome

    def plan(self) -> Outcome:
        """`await --dry-run`: `check`'s reading of the nodes per group, printed as a plan and,
        with `-o yaml`, the DaemonSets `await` would create. Creates nothing."""
        evaluation = self._read_once()
        if not evaluation.done:
            evaluation = self._choose_pull_method(self._read_nodes, evaluation)
        if not evaluation.done:  # `await` would create DaemonSets there: it reads it first
            check_namespace(self.kube, self.namespace, required=True, own=self.own_namespace)
        write_plan(self.groups, self.settings, lacking=not evaluation.done)
        outcome = self.outcome(*outcomes.planned(evaluation, groups=len(self.groups.each)))
        log.info("run.planned", message=outcome.message)
        return outcome

    def _read_once(self) -> Evaluation:
        nodes = Informer(kube=self.kube, address=NODES.address(), codec=self.node_codec)
        self._read_nodes = nodes.list_once()
        return self._evaluate(self._read_nodes, [])

    def _choose_pull_method(
        self, nodes: dict[str, NodeState], evaluation: Evaluation
    ) -> Evaluation:
        """`--pull-method auto`, decided once before anything is created, from the server's
        version and every target node's runtime: the generated pullers are built for it."""
        puller = self.settings.puller
        if puller.method != AUTO or not self.job.generated:
            return evaluation
        runtimes = {v.node: nodes[v.node].runtime for v in evaluation.verdicts if v.node in nodes}
        choice = choose_pull_method(server_version=self.kube.server_version(), runtimes=runtimes)
        log.info("pull_method.chosen", method=choice.method, reason=choice.reason)
        self.pull_method = choice
        chosen = dataclasses.replace(puller, method=choice.method)
        self.job = with_pull_method(self.job, chosen)
        self.groups = GroupRuns(
            settings=self.settings,
            job=self.job,
            kube=self.kube,
            namespace=self.namespace,
            run_id=self.run_id,
        )
        return self._evaluate(nodes, [])

    def await_images(self) -> Outcome:
        if self.settings.dry_run:
            return self.plan()
        nodes = self.caches.start(name="nodes", address=NODES.address(), codec=self.node_codec)
        self.caches.wait_synced(deadline=self.deadline)
        evaluation = self._evaluate(nodes.snapshot(), [])
        if evaluation.done:
            log.info("run.fast_path", detail="every target node has every image; nothing created")
            return self._success(evaluation)
        evaluation = self._choose_pull_method(nodes.snapshot(), evaluation)
        self.tell.creating()
        self.groups.create(own_namespace=self.own_namespace)
        self.tell.pulling(evaluation)
        pods, daemonsets = self.groups.watch(self.caches)
        self.tell.facts.start(
            self.caches, namespace=self.namespace, daemonsets=self.groups.names(), pods=pods
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
            self.groups.keep_alive(cached_uids=set(daemonsets.snapshot().values()))
            self.tell.facts.fold()
            evaluation = self._evaluate(nodes.snapshot(), pods.snapshot().values())
            if evaluation.failures:
                return self._pull_failed()
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
        errors = self.tell.facts.facts.errors
        evaluation = self.last = self.groups.judge(nodes, pods, now=now, event_errors=errors)
        self.first = self.first or evaluation
        self.tell.observe(evaluation, self.groups.evaluations(), now=now)
        return evaluation

    def _success(self, evaluation: Evaluation) -> Outcome:
        self.tell.facts.settle(self.groups.done(), wake=self.caches.wake)
        outcome = self.outcome(*outcomes.succeeded(evaluation, images=len(self.job.images)))
        self.tell.succeeded(evaluation, outcome.message)
        return outcome

    def _pull_failed(self) -> Outcome:
        failing = self.groups.failing()
        puller = self.settings.puller
        code, result, message = outcomes.pull_failed(
            failing[0].evaluation,
            helper=parse_image(puller.helper_image).key,
            pause=parse_image(puller.pause_image).key,
        )
        if self.groups.several:
            message = f"pull group {failing[0].name}: {message}"
        outcome = self.outcome(code, result, message)
        self.tell.pull_failed(failing, outcome.message)
        return outcome

    def timed_out(self, *, cause: DeadlineReached | None = None) -> Outcome:
        """The time is up; `cause` is an API that kept failing until the deadline."""
        outcome = self.outcome(
            *outcomes.timed_out(
                self.last,
                timeout=self.settings.timeout,
                on_timeout=self.settings.on_timeout,
                cause=cause.message if cause else None,
                report=bool(self.settings.report),
            )
        )
        self.tell.timed_out(outcome)
        return outcome

    def outcome(self, code: ExitCode, result: Result, message: str) -> Outcome:
        facts, done_after = self.tell.final(self.last), self.tell.progress.done_after
        return Outcome(
            code,
            result,
            message,
            self.last,
            done_after,
            pull_facts=facts,
            listed_at_start=outcomes.listed_images(self.first),
            pull_method=self.pull_method,
        )

    def close(self) -> None:
        """Stop the caches; delete every DaemonSet this run created unless asked to keep them."""
        self.caches.stop()
        self.groups.delete(keep=self.settings.keep_daemonset)

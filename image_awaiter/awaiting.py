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
from dataclasses import dataclass

import structlog
import yaml

from image_awaiter import outcomes
from image_awaiter.combined import GroupEvaluation, combine, group_progress, plan_text
from image_awaiter.connecting import Connection, connect
from image_awaiter.daemonsets import PullerDaemonSet, check_namespace, sweep_stale
from image_awaiter.decoding import NodeCodec, PodCodec, UidCodec
from image_awaiter.errors import AwaiterError, DeadlineReached, ExitCode, Interrupted
from image_awaiter.kube import Kube
from image_awaiter.outcomes import GroupOutcome, Outcome, Result
from image_awaiter.progress import Progress
from image_awaiter.pullers import prepare_for_run, run_selector
from image_awaiter.readiness import Evaluation, Judge, PullerPod
from image_awaiter.reporting import build_report, now_iso, write_report
from image_awaiter.resources import DAEMONSETS, NODES, PODS
from image_awaiter.settings import Group, Job, Settings, resolve_job
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
                if settings.command == "check":
                    outcome = run.check()
                elif settings.dry_run:
                    outcome = run.plan()
                else:
                    outcome = run.await_images()
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
    if run is not None:
        records = [g.daemonset.record for g in run.groups if g.daemonset.record is not None]
        outcome = dataclasses.replace(
            outcome,
            daemonset=records[0].to_report() if records else None,
            groups=run.group_outcomes(),
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


def _failed(error: AwaiterError, run: Run | None) -> Outcome:
    code, result, message = outcomes.failed(error)
    return run.outcome(code, result, message) if run else Outcome(code, result, message)


@dataclass(frozen=True, slots=True)
class GroupRun:
    """One pull group in a run: its puller DaemonSet and its own judge of its target nodes."""

    group: Group
    daemonset: PullerDaemonSet
    judge: Judge


class Run:
    """One check or await: its caches, one puller DaemonSet and one judge per pull group, and
    the last evaluation (the groups' combined)."""

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
        owner = settings.owner(default_namespace=self.namespace)
        self.groups = tuple(
            GroupRun(
                group=group,
                daemonset=PullerDaemonSet(
                    kube=self.kube,
                    namespace=self.namespace,
                    run_id=self.run_id,
                    manifest=group.manifest,
                    owner=owner,
                    group=group.name,
                ),
                judge=Judge(
                    images=group.images,
                    placement=group.placement,
                    include_cordoned=settings.include_cordoned,
                    grace=settings.pull_failure_grace,
                ),
            )
            for group in job.groups
        )
        self.last: Evaluation | None = None
        self.progress = Progress(started=self.started, interval=settings.interval)
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
                detail="a custom resource: its images are not awaited",
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

    def plan(self) -> Outcome:
        """`await --dry-run`: `check`'s reading of the nodes per group, printed as a plan and,
        with `-o yaml`, the DaemonSets `await` would create. Creates nothing."""
        nodes = Informer(kube=self.kube, address=NODES.address(), codec=self.node_codec)
        evaluation = self._evaluate(nodes.list_once(), [])
        to_stdout = self.settings.output is None and self.settings.report != "-"
        stream = sys.stdout if to_stdout else sys.stderr
        stream.write(plan_text(self._group_evaluations(), table=stream.isatty()))
        stream.flush()
        if self.settings.output == "yaml" and not evaluation.done:
            bodies = [
                prepare_for_run(
                    g.group.manifest,
                    run_id=self.run_id,
                    namespace=self.namespace,
                    owner=self.settings.owner(default_namespace=self.namespace),
                    created_at=now_iso(),
                    skip_nodes=g.judge.done_nodes,
                    group=g.group.name,
                )
                for g in self.groups
            ]
            sys.stdout.write(yaml.safe_dump_all(bodies, sort_keys=False))
            sys.stdout.flush()
        outcome = self.outcome(*outcomes.planned(evaluation, groups=len(self.groups)))
        log.info("run.planned", message=outcome.message)
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
        for group in self.groups:  # every group, so that nodes joining a done group get pullers
            group.daemonset.create(skip_nodes=group.judge.done_nodes)
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
            uids = set(daemonsets.snapshot().values())
            for group in self.groups:
                group.daemonset.keep_alive(cached_uids=uids, skip_nodes=group.judge.done_nodes)
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
        """Each group judges its own targets with its own pods; the run sees them combined."""
        now = time.monotonic()
        by_group: dict[str, list[PullerPod]] = {}
        for pod in pods:
            by_group.setdefault(pod.group, []).append(pod)
        for group in self.groups:
            group.judge(nodes, by_group.get(group.group.name, []), now=now)
        groups = self._group_evaluations()
        evaluation = self.last = combine(groups)
        self.progress.observe(
            evaluation, now=now, groups=group_progress(groups) if len(groups) > 1 else None
        )
        return evaluation

    def _group_evaluations(self) -> list[GroupEvaluation]:
        return [
            GroupEvaluation(g.group.name, g.group.images, g.judge.last)
            for g in self.groups
            if g.judge.last is not None
        ]

    def group_outcomes(self) -> tuple[GroupOutcome, ...]:
        return tuple(
            GroupOutcome(
                name=g.group.name,
                images=g.group.images,
                workloads=g.group.workloads,
                evaluation=g.judge.last,
                daemonset=g.daemonset.record.to_report() if g.daemonset.record else None,
            )
            for g in self.groups
        )

    def _success(self, evaluation: Evaluation) -> Outcome:
        outcome = self.outcome(*outcomes.succeeded(evaluation, images=len(self.job.images)))
        if not evaluation.verdicts:
            log.warning("run.no_targets", excluded=len(evaluation.excluded))
        seconds = round(time.monotonic() - self.started, 2)
        log.info("run.succeeded", message=outcome.message, seconds=seconds)
        return outcome

    def _pull_failed(self) -> Outcome:
        several = len(self.groups) > 1
        failing = [g for g in self.groups if g.judge.last is not None and g.judge.last.failures]
        for group in failing:
            assert group.judge.last is not None
            for failure in group.judge.last.failures:  # node=, image=, reason=, message=
                log.error(
                    "image.pull_failed", group=group.group.name, **dataclasses.asdict(failure)
                )
        first = failing[0]
        assert first.judge.last is not None
        code, result, message = outcomes.pull_failed(first.judge.last)
        named = f"pull group {first.group.name}: {message}" if several else message
        return self.outcome(code, result, named)

    def timed_out(self, *, cause: DeadlineReached | None = None) -> Outcome:
        """The time is up; `cause` is an API that kept failing until the deadline."""
        outcome = self.outcome(
            *outcomes.timed_out(
                self.last,
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
        return Outcome(code, result, message, self.last, self.progress.done_after)

    def close(self) -> None:
        """Stop the caches and delete every DaemonSet this run created, unless asked to keep
        them."""
        self.caches.stop()
        for group in self.groups:
            record = group.daemonset.record
            if record is not None and self.settings.keep_daemonset:
                log.info("daemonset.kept", name=record.name, group=group.group.name)
                continue
            group.daemonset.delete()

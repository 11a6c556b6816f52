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

from image_awaiter import logs, outcomes
from image_awaiter.combined import GroupEvaluation, combine, group_progress, plan_text
from image_awaiter.connecting import Connection, connect
from image_awaiter.daemonsets import PullerDaemonSet, check_namespace, sweep_stale
from image_awaiter.decoding import EventCodec, NodeCodec, PodCodec, UidCodec
from image_awaiter.errors import AwaiterError, DeadlineReached, ExitCode, Interrupted
from image_awaiter.kube import Kube
from image_awaiter.liveview import LiveView, live_view_wanted
from image_awaiter.outcomes import GroupOutcome, Outcome, Result
from image_awaiter.podevents import PodEvents
from image_awaiter.progress import LivePicture, Progress
from image_awaiter.pullers import prepare_for_run, run_selector
from image_awaiter.pullfacts import Folder, KubeletEvent, PullFacts
from image_awaiter.readiness import Evaluation, FailureRules, Judge, PullerPod
from image_awaiter.references import ImageKey
from image_awaiter.reporting import build_report, now_iso, write_report
from image_awaiter.resources import DAEMONSETS, EVENTS, NODES, PODS
from image_awaiter.settings import Group, Job, Settings, resolve_job
from image_awaiter.signals import Hold, SignalGuard
from image_awaiter.targeting import NodeState
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
            if view is not None:  # before the final line, which must stand on its own
                view.stop()
                logs.configure(log_format=settings.log_format, verbosity=settings.verbosity)
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


def _live_view(settings: Settings) -> LiveView | None:
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
        self.node_codec = NodeCodec(wanted=job.keys)
        owner = settings.owner(default_namespace=self.namespace)
        rules = FailureRules(
            fail_fast=settings.fail_fast, platform_mismatch=settings.on_platform_mismatch
        )
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
                    rules=rules,
                ),
            )
            for group in job.groups
        )
        self.last: Evaluation | None = None
        self.progress = Progress(started=self.started, interval=settings.interval)
        self.picture = (
            LivePicture(view, images=[i.original for i in job.images], started=self.started)
            if view is not None
            else None
        )
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
        self._announce_plan(evaluation)
        ours, namespace = run_selector(self.run_id), self.namespace
        pods = self.pods = self.caches.start(
            name="pods",
            address=PODS.address(namespace=namespace),
            codec=PodCodec(),
            label_selector=ours,
        )
        prefixes = tuple(
            g.daemonset.record.name + "-" for g in self.groups if g.daemonset.record is not None
        )
        if prefixes:
            self.events = self.caches.start(
                name="events",
                address=EVENTS.address(namespace=namespace),
                codec=EventCodec(pod_prefix=prefixes),
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
            uids = set(daemonsets.snapshot().values())
            for group in self.groups:
                group.daemonset.keep_alive(cached_uids=uids, skip_nodes=group.judge.done_nodes)
            pod_records = pods.snapshot().values()
            self._fold_facts(pod_records)
            evaluation = self._evaluate(nodes.snapshot(), pod_records)
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
            group.judge(
                nodes, by_group.get(group.group.name, []), now=now, event_errors=self.facts.errors
            )
        groups = self._group_evaluations()
        evaluation = self.last = combine(groups)
        self.progress.observe(
            evaluation, now=now, groups=group_progress(groups) if len(groups) > 1 else None
        )
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

    def _settle_facts(self, *, budget: float = SETTLE_FACTS) -> None:
        """A pod's status can show an image pulled before its `Pulled` event reaches the
        events watch: give the events a moment (bounded) so the report has the figures."""
        if self.events is None or self.pods is None:
            return
        until = time.monotonic() + budget
        while True:
            pods = list(self.pods.snapshot().values())
            self._fold_facts(pods, force=True)
            if self._facts_settled(pods) or time.monotonic() >= until:
                return
            self.caches.wake.wait(0.1)
            self.caches.wake.clear()

    def _facts_settled(self, pods: list[PullerPod]) -> bool:
        """Every done node with a puller pod of a group has an event fact for each of that
        group's images."""
        facts = self.facts.facts
        for group in self.groups:
            done = set(group.judge.last.done_nodes if group.judge.last is not None else ())
            nodes = {p.node for p in pods if p.node in done and p.group == group.group.name}
            for node in nodes:
                for image in group.group.images:
                    fact = facts.get((node, image.key))
                    if fact is None or fact.state not in ("pulled", "present"):
                        return False
                    if fact.source != "event":
                        return False
        return True

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
        self._settle_facts()
        outcome = self.outcome(*outcomes.succeeded(evaluation, images=len(self.job.images)))
        if not evaluation.verdicts:
            log.warning("run.no_targets", excluded=len(evaluation.excluded))
        seconds = round(time.monotonic() - self.started, 2)
        log.info("run.succeeded", message=outcome.message, seconds=seconds)
        self.pod_events.record("ImagesReady", outcome.message)
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
        outcome = self.outcome(code, result, named)
        failure = first.judge.last.failures[0]
        self.pod_events.record(
            "ImagePullFailed", f"{failure.kind or failure.reason}: {outcome.message}", warning=True
        )
        return outcome

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
        if self.pods is not None:
            self._fold_facts(self.pods.snapshot().values(), force=True)
        if self.picture is not None and self.last is not None:
            self.picture.observe(
                self.last, now=time.monotonic(), pulled_bytes=self.facts.pulled_bytes, final=True
            )
        return Outcome(
            code, result, message, self.last, self.progress.done_after, pull_facts=self.facts
        )

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

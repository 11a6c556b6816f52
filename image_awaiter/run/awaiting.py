"""The one loop every kind of run follows, and `execute`, which turns every way a run can end
into an `Outcome` and writes the report.

A run is built once (`context.open_context`) and follows its policy (`policies`): read the
nodes, judge, and step as the policy says: end, create the pullers, or watch and judge again.
The caches are started in watches.py, the pull groups' DaemonSets and judges live in
groupruns.py, what the run tells while it works in telling.py, the pull facts in
factswatch.py, signal handling in signals.py, the wording of each ending in outcomes.py, the
report in reporting.py.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable

import structlog

from image_awaiter.cluster.daemonsets import check_namespace
from image_awaiter.core import outcomes
from image_awaiter.core.errors import AwaiterError, DeadlineReached, ExitCode, Interrupted
from image_awaiter.core.outcomes import Outcome, Result, RunRecord
from image_awaiter.core.pullerpods import PullerPod
from image_awaiter.core.pullmethod import choose_pull_method
from image_awaiter.core.readiness import Evaluation
from image_awaiter.core.references import parse_image
from image_awaiter.core.targeting import NodeState
from image_awaiter.kube.client import server_version
from image_awaiter.kube.connecting import Connection, connect
from image_awaiter.output.liveview import LiveView
from image_awaiter.output.logs import Logging
from image_awaiter.output.plan import write_plan
from image_awaiter.output.reporting import now_iso, write_report
from image_awaiter.output.streams import Streams
from image_awaiter.run.context import RunContext, open_context
from image_awaiter.run.factswatch import PullFactsWatch
from image_awaiter.run.gategroups import group_runs
from image_awaiter.run.groupruns import GroupRuns
from image_awaiter.run.policies import Policy, Step, policy_for
from image_awaiter.run.signals import SignalGuard
from image_awaiter.run.telling import Teller, start_live_view, stop_live_view, tell_start
from image_awaiter.run.watches import NodeSource, PullerCaches, Watches
from image_awaiter.spec.gatesettings import GateSettings
from image_awaiter.spec.pullers import AUTO, PullerSettings
from image_awaiter.spec.settings import Job, Settings, resolve_job, with_pull_method

log = structlog.get_logger("image_awaiter")

MIN_EVALUATION_GAP = 0.05  # event-driven evaluations are at most this frequent


def execute(
    settings: Settings, *, streams: Streams | None = None, gate: GateSettings | None = None
) -> Outcome:
    """Run `settings.command` (with `gate`, the gate) and end it: every failure becomes an
    `Outcome` with its exit code, completed in one place (`_ended`), and the report is written
    from it alone."""
    streams = streams or Streams.standard()
    started = time.monotonic(), now_iso()
    structlog.contextvars.clear_contextvars()
    outcome, job, run = _outcome(settings, streams, gate)
    outcome = _ended(outcome, settings=settings, job=job, run=run, started=started)
    if settings.report:
        write_report(outcome, destination=settings.report, stdout=streams.out)
    return outcome


def execute_gate(settings: GateSettings) -> Outcome:
    """`image-awaiter gate`: the gate policy's run until a signal (SIGTERM: exit 0)."""
    return outcomes.gate_stopped(execute(settings.base, gate=settings))


def _outcome(
    settings: Settings, streams: Streams, gate: GateSettings | None
) -> tuple[Outcome, Job | None, Run | None]:
    """The run's outcome, and the job and run as far as they got; cleaned up whatever came."""
    job: Job | None = None
    run: Run | None = None
    policy = policy_for(settings, gate=gate)
    logging = Logging(settings.log_format, settings.verbosity)
    view = start_live_view(
        watching=not policy.once, progress=settings.progress, logging=logging, stream=streams.err
    )
    with SignalGuard() as signals:
        try:
            try:
                job = resolve_job(settings)
                context = open_context(
                    settings, job, connection=_connect(settings), hold=signals.held, gate=gate
                )
                run = Run(context, policy=policy, view=view, streams=streams)
                try:
                    outcome = run.go()
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
            stop_live_view(view, logging=logging)
        if signals.deferred is not None and outcome.result is not Result.INTERRUPTED:
            outcome = _failed(Interrupted(signals.deferred), run)
    return outcome, job, run


def _ended(
    outcome: Outcome,
    *,
    settings: Settings,
    job: Job | None,
    run: Run | None,
    started: tuple[float, str],
) -> Outcome:
    """The whole outcome: how the run ended, each group's, and what the run was."""
    record = RunRecord(
        command=settings.command,
        namespace=run.context.namespace if run else (settings.namespace or ""),
        images=job.images if job else (),
        skipped=job.skipped if job else (),
        started_at=started[1],
        finished_at=now_iso(),
        seconds=round(time.monotonic() - started[0], 3),
    )
    if run is None:
        return dataclasses.replace(outcome, record=record)
    groups = run.groups
    return dataclasses.replace(
        outcome, daemonset=groups.first_record(), groups=groups.outcomes(), record=record
    )


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


def _write_plan(groups: GroupRuns, settings: Settings, *, streams: Streams, lacking: bool) -> None:
    """The plan on stdout, unless stdout carries the DaemonSets (`-o`) or the report (`-`)."""
    to_out = settings.output is None and settings.report != "-"
    write_plan(
        groups.evaluations(),
        text=streams.out if to_out else streams.err,
        bodies=groups.would_create() if settings.output and lacking else (),
        output=settings.output,
        documents=streams.out,
    )


class Run:
    """One run following its policy: its pull groups (a DaemonSet and a judge each), what it
    tells, the pull facts, and the last evaluation (the groups' combined)."""

    def __init__(
        self, context: RunContext, *, policy: Policy, view: LiveView | None, streams: Streams
    ) -> None:
        settings = context.settings
        self.context, self.policy, self.streams = context, policy, streams
        self.watches = Watches(context)
        self.groups = group_runs(context)
        self.facts = PullFactsWatch(context.job.images)
        self.last: Evaluation | None = None
        self.first: Evaluation | None = None  # before anything was created
        self.parts = policy.parts(context)
        tell_start(context.job, timeout=settings.timeout)
        self.tell = Teller(
            context,
            facts=self.facts,
            view=view,
            interval=settings.interval,
            pod_events=settings.events and policy.writes,
        )

    def go(self) -> Outcome:
        """Read the nodes, then step as the policy says until it ends the run."""
        context, policy = self.context, self.policy
        if policy.once:
            evaluation = self._evaluate(read := self.watches.read_nodes(), [])
            if policy.checks_namespace and not evaluation.done:  # as `await` before creating
                self._choose_pull_method(read)
                check_namespace(
                    context.kube, context.namespace, required=True, own=context.own_namespace
                )
            return self._end(policy.first(evaluation))
        nodes = self.watches.start_nodes()
        context.caches.wait_synced(deadline=context.deadline)
        step = policy.first(self._evaluate(nodes.snapshot(), []))
        if step is Step.SUCCEEDED:
            log.info("run.fast_path", detail="every target node has every image; nothing created")
        if step is not Step.PULL:
            return self._end(step)
        self._choose_pull_method(nodes.snapshot())
        pullers = self._pull()
        context.caches.wait_synced(deadline=context.deadline)
        return self._loop(nodes, pullers)

    def _choose_pull_method(self, nodes: dict[str, NodeState]) -> None:
        """`--pull-method auto`: the generated pullers rebuilt for what it chose, and judged."""
        chosen = auto_pull_method(self.context, self.last, nodes)
        if chosen is not None:
            self.context = chosen
            self.groups = group_runs(self.context)
            self._evaluate(nodes, [])  # the new groups' judges, before their DaemonSets exist

    def _pull(self) -> PullerCaches:
        """Create every group's DaemonSet and watch what they show."""
        assert self.last is not None
        self.tell.creating()
        self.groups.create(own_namespace=self.context.own_namespace)
        self.tell.pulling(self.last)
        pullers = self.watches.start_pullers(self.groups.names())
        self.facts.attach(pods=pullers.pods, events=pullers.events)
        return pullers

    def _loop(self, nodes: NodeSource, pullers: PullerCaches) -> Outcome:
        caches, deadline = self.context.caches, self.context.deadline
        interval = self.context.settings.interval
        next_tick = time.monotonic()
        while True:
            caches.raise_errors()
            self.groups.keep_alive(pullers)
            self.facts.fold()
            evaluation = self._evaluate(nodes.snapshot(), pullers.pods.snapshot().values())
            now = time.monotonic()
            refused = self.groups.refused(pullers.failed_creates, now=now)
            step = self.policy.next(evaluation, now=now, deadline=deadline, refused=refused)
            if step is not Step.WATCH:
                return self._end(step)
            while next_tick <= now:
                next_tick += interval
            until = min(next_tick, deadline) if deadline is not None else next_tick
            caches.wake.wait(max(0.0, until - now))
            caches.wake.clear()
            time.sleep(MIN_EVALUATION_GAP)  # coalesce a burst of events into one evaluation

    def _evaluate(self, nodes: dict[str, NodeState], pods: Iterable[PullerPod]) -> Evaluation:
        now = time.monotonic()
        errors = self.facts.facts.errors
        evaluation = self.last = self.groups.judge(nodes, pods, now=now, event_errors=errors)
        self.first = self.first or evaluation
        self.tell.observe(evaluation, self.groups.evaluations(), now=now)
        for part in self.parts:
            part.observe(evaluation, now=now)
        return evaluation

    def _end(self, step: Step) -> Outcome:
        """The outcome of the step that ends the run."""
        assert self.last is not None
        if step is Step.SUCCEEDED:
            return self._success(self.last)
        if step is Step.MISSING:
            outcome = self.outcome(*outcomes.missing(self.last))
            log.warning("check.missing", message=outcome.message)
            return outcome
        if step is Step.PLANNED:
            return self._planned(self.last)
        if step is Step.PULL_FAILED:
            return self._pull_failed()
        if step is Step.PODS_REFUSED and (refused := self.groups.refusal) is not None:
            return self.tell.pods_refused(refused, self.outcome(*outcomes.pods_refused(refused)))
        return self.timed_out()

    def _planned(self, evaluation: Evaluation) -> Outcome:
        """`await --dry-run`: `check`'s reading of the nodes per group, printed as a plan and,
        with `-o yaml`, the DaemonSets `await` would create. Creates nothing."""
        _write_plan(
            self.groups, self.context.settings, streams=self.streams, lacking=not evaluation.done
        )
        outcome = self.outcome(*outcomes.planned(evaluation, groups=len(self.groups.each)))
        log.info("run.planned", message=outcome.message)
        return outcome

    def _success(self, evaluation: Evaluation) -> Outcome:
        self.facts.settle(self.groups.done(), wake=self.context.caches.wake)
        outcome = self.outcome(*outcomes.succeeded(evaluation, images=len(self.context.job.images)))
        self.tell.succeeded(evaluation, outcome.message)
        return outcome

    def _pull_failed(self) -> Outcome:
        outcome = self.outcome(*pull_failed(self.groups, self.context.settings.puller))
        self.tell.pull_failed(self.groups.failing(), outcome.message)
        return outcome

    def timed_out(self, *, cause: DeadlineReached | None = None) -> Outcome:
        """The time is up; `cause` is an API that kept failing until the deadline."""
        outcome = self.outcome(*timed_out(self.last, self.context.settings, cause=cause))
        self.tell.timed_out(outcome)
        return outcome

    def outcome(self, code: ExitCode, result: Result, message: str) -> Outcome:
        facts, done_after = self.tell.final(self.last), self.tell.progress.done_after
        listed, method = outcomes.listed_images(self.first), self.context.pull_method
        outcome = Outcome(code, result, message, self.last, done_after, pull_facts=facts)
        return dataclasses.replace(outcome, listed_at_start=listed, pull_method=method)

    def close(self) -> None:
        """Stop the caches; delete every DaemonSet this run created unless asked to keep them."""
        self.context.close()
        self.groups.delete(keep=self.context.settings.keep_daemonset)


def auto_pull_method(
    context: RunContext, evaluation: Evaluation | None, nodes: dict[str, NodeState]
) -> RunContext | None:
    """`--pull-method auto`, decided once before anything is created, from the server's
    version and every target node's runtime: the context with the job's generated pullers
    built for it and the choice. None when there is nothing to choose."""
    puller = context.settings.puller
    if puller.method != AUTO or not context.job.generated or evaluation is None:
        return None
    if context.gate is not None:  # the gate's pullers are generated as the job says
        return None
    runtimes = {v.node: nodes[v.node].runtime for v in evaluation.verdicts if v.node in nodes}
    choice = choose_pull_method(server_version=server_version(context.kube), runtimes=runtimes)
    log.info("pull_method.chosen", method=choice.method, reason=choice.reason)
    job = with_pull_method(context.job, dataclasses.replace(puller, method=choice.method))
    return dataclasses.replace(context, job=job, pull_method=choice)


def pull_failed(groups: GroupRuns, puller: PullerSettings) -> tuple[ExitCode, Result, str]:
    """The first failing group's ending, naming the group when there are several; the
    puller's own images (helper, pause) are told apart from the user's."""
    failing = groups.failing()
    helper, pause = (parse_image(i).key for i in (puller.helper_image, puller.pause_image))
    code, result, message = outcomes.pull_failed(failing[0].evaluation, helper=helper, pause=pause)
    if groups.several:
        message = f"pull group {failing[0].name}: {message}"
    return code, result, message


def timed_out(
    evaluation: Evaluation | None, settings: Settings, *, cause: DeadlineReached | None
) -> tuple[ExitCode, Result, str]:
    """The time is up; `cause` is an API that kept failing until the deadline."""
    return outcomes.timed_out(
        evaluation,
        timeout=settings.timeout,
        on_timeout=settings.on_timeout,
        cause=cause.message if cause else None,
        report=bool(settings.report),
    )

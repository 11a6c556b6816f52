"""The gate policy's part (`Releasing`): after every evaluation, each gated node decided
(`gating.decide`, from the verdicts of the pull groups that target it) and, on the leader only,
what the decisions say written: releases first, then conditions and Events of nodes still
waiting, eight nodes side by side.

`Releaser` is what the leader does with a decision: release the node (the condition, then the
taint), tell about a held one (the condition, Events once each), count it all in the metrics;
and, in a dry run, log what it would do. It remembers only what it wrote until the nodes cache
reads it back, and what each node's Events said; everything else is read from the cluster, so
a restart or a failover loses nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import structlog

from image_awaiter.cluster.nodegating import NodeEvents, NodeWriter
from image_awaiter.core.errors import AwaiterError
from image_awaiter.core.gating import (
    Action,
    Enforce,
    GateDecision,
    GateNode,
    GateRules,
    Reason,
    decide,
    writes_for,
)
from image_awaiter.core.readiness import Evaluation
from image_awaiter.core.references import ImageRef
from image_awaiter.kube.watching import Hold
from image_awaiter.output.metrics import Metrics
from image_awaiter.run.context import RunContext

log = structlog.get_logger("image_awaiter")

HELD_PER_TICK = 64  # held nodes written per turn, so that a burst never delays a release long


class Releasing:
    """The gate policy's part. Its first evaluation, read before the pullers' caches exist,
    decides nothing; from the next on, every gated node is decided and the leader writes."""

    def __init__(self, context: RunContext) -> None:
        assert context.gate is not None, "a gate's part needs a gate's context"
        self._gate = gate = context.gate
        self._wake = context.caches.wake
        self._images = {g.name: g.images for g in context.job.groups}
        self._only = context.job.groups[0].name if context.job.groups else ""
        settings = gate.settings
        self.releaser = Releaser(
            writer=NodeWriter(
                kube=context.kube, gate=settings.taint, condition_type=settings.condition
            ),
            events=NodeEvents(kube=context.kube),
            metrics=gate.metrics,
            enforce=settings.enforce,
        )
        gate.start()

    def observe(self, evaluation: Evaluation, *, now: float) -> None:
        gate = self._gate
        if gate.nodes is None or not gate.pullers_watched:
            return
        if not gate.synced:
            gate.synced = True
            settings = gate.settings
            log.info(
                "gate.started",
                taint=str(settings.taint),
                enforce=str(settings.enforce),
                groups=list(self._images),
                dry_run=settings.dry_run,
            )
        gate.last_tick = time.monotonic()
        leading = gate.leading
        gate.metrics.set("leader", 1.0 if leading else 0.0)
        named = evaluation.groups or ((self._only, evaluation),)
        if self._tick(gate.nodes.judged, named, leading=leading):
            self._wake.set()  # writes left for the next turn: evaluate again at once

    def _tick(
        self,
        gated: Mapping[str, GateNode],
        named: Sequence[tuple[str, Evaluation]],
        *,
        leading: bool,
    ) -> bool:
        """Decide every gated node; the leader writes. True when writes were left over."""
        gate, releaser = self._gate, self.releaser
        decisions = decide_all(gated, [e for _, e in named], rules=gate.settings.rules)
        releaser.forget_gone(gated)
        pending = [d for d in decisions if not d.releases]
        gate.metrics.set("nodes_pending", float(len(pending)))
        if gate.settings.dry_run:
            releaser.report_dry(decisions)
            return False
        if not leading:
            return False
        releases = [d for d in decisions if releaser.pending_release(d, gated[d.node])]
        in_parallel(
            gate.pool,
            gate.hold,
            lambda d: releaser.release(d, gated[d.node], images=self._images_of(named, d.node)),
            releases,
        )
        due = [d for d in pending if releaser.due(d, gated[d.node])]
        in_parallel(
            gate.pool, gate.hold, lambda d: releaser.hold(d, gated[d.node]), due[:HELD_PER_TICK]
        )
        return len(due) > HELD_PER_TICK

    def _images_of(self, named: Sequence[tuple[str, Evaluation]], node: str) -> list[ImageRef]:
        """The images of the groups that judged `node` a target."""
        return [
            image
            for name, evaluation in named
            if any(v.node == node for v in evaluation.verdicts)
            for image in self._images.get(name, ())
        ]


def decide_all(
    gated: Mapping[str, GateNode], evaluations: Sequence[Evaluation], *, rules: GateRules
) -> list[GateDecision]:
    """Every gated node's decision, by name, from each pull group's evaluation."""
    verdicts = [{v.node: v for v in e.verdicts} for e in evaluations]
    wall = time.time()  # --max-wait counts from creationTimestamp, a wall-clock time
    return [
        decide(
            node,
            [v[name] for v in verdicts if name in v],
            excluded=[e.excluded[name] for e in evaluations if name in e.excluded],
            now=wall,
            rules=rules,
        )
        for name, node in sorted(gated.items())
    ]


def in_parallel(
    pool: ThreadPoolExecutor,
    hold: Hold,
    write: Callable[[GateDecision], object],
    decisions: list[GateDecision],
) -> None:
    """Each node's writes in order, nodes side by side: a burst of joining nodes waits on the
    API's latency once per writer, not once per node."""
    if len(decisions) <= 1:
        for decision in decisions:
            write(decision)
        return
    with hold():  # the pool starts threads
        futures = [pool.submit(write, d) for d in decisions]
    for future in futures:
        future.result()


class Releaser:
    def __init__(
        self,
        *,
        writer: NodeWriter,
        events: NodeEvents,
        metrics: Metrics,
        enforce: Enforce,
    ) -> None:
        self.writer = writer
        self.events = events
        self.metrics = metrics
        self.enforce = enforce
        self.told: dict[str, set[str]] = {}  # node -> what its Events said already
        self.written: dict[str, str] = {}  # node -> condition summary written, until read back
        self.released: dict[str, bytes] = {}  # node -> its taints when we removed the gate's

    def forget_gone(self, gated: Mapping[str, GateNode]) -> None:
        """Nodes no longer gated (released, deleted) leave every record."""
        self.told = {n: t for n, t in self.told.items() if n in gated}
        self.written = {n: s for n, s in self.written.items() if n in gated}
        self.released = {n: t for n, t in self.released.items() if n in gated}

    def pending_release(self, decision: GateDecision, node: GateNode) -> bool:
        """A release not yet written (the cache may still show a node we released)."""
        return decision.releases and node.taints != self.released.get(decision.node)

    def release(
        self, decision: GateDecision, node: GateNode, *, images: Sequence[ImageRef]
    ) -> None:
        name = decision.node
        writes = writes_for(decision, self._as_written(node), enforce=self.enforce)
        if writes.condition is not None:
            try:  # the condition first, so that a rule reading it never lags the taint
                self.writer.set_condition(name, writes.condition, previous=self._previous(node))
                self.written[name] = writes.condition.summary
            except AwaiterError as error:  # the taint is released all the same
                log.warning("gate.condition_failed", node=name, error=error.one_line())
                if not writes.untaint:
                    return  # nothing released: the next turn tries again
        try:
            if writes.untaint and not self.writer.untaint(name, node.taints):
                return  # the node is gone
        except AwaiterError as error:
            log.warning("gate.release_failed", node=name, error=error.one_line())
            return
        self.released[name] = node.taints
        self._tell_released(decision, images=images)

    def _tell_released(self, decision: GateDecision, *, images: Sequence[ImageRef]) -> None:
        name, reason = decision.node, decision.reason
        # first: a scrape that counts a release also counts its pulls and its time
        if reason is Reason.PRESENT:
            for image in images:
                self.metrics.inc("image_pulls_total", image=image.original)
        self.metrics.observe(decision.waited)
        self.metrics.inc("nodes_released_total", reason=str(reason))
        if decision.action is Action.RELEASE_LATE:
            self.events.record(
                name, "ImagesMaxWaitExceeded", f"released: {decision.message}", warning=True
            )
        else:
            self.events.record(name, "ImagesReady", decision.message)
        log.info(
            "gate.released",
            node=name,
            reason=str(reason),
            after_seconds=round(decision.waited, 1),
            missing=list(decision.missing),
        )

    def due(self, decision: GateDecision, node: GateNode) -> bool:
        """Whether holding `node` has something left to write or tell."""
        told = self.told.get(decision.node, set())
        writes = writes_for(decision, self._as_written(node), enforce=self.enforce)
        return (
            writes.condition is not None
            or "pending" not in told
            or any(f"failed:{f.image}:{f.reason}" not in told for f in decision.failures)
            or (decision.action is Action.HOLD_LATE and "late" not in told)
        )

    def hold(self, decision: GateDecision, node: GateNode) -> int:
        """Condition and Events of a node still held; returns the writes made."""
        name, made = decision.node, 0
        told = self.told.setdefault(name, set())
        writes = writes_for(decision, self._as_written(node), enforce=self.enforce)
        try:
            if writes.condition is not None:
                self.writer.set_condition(name, writes.condition, previous=self._previous(node))
                self.written[name] = writes.condition.summary
                made += 1
        except AwaiterError as error:
            log.warning("gate.condition_failed", node=name, error=error.one_line())
        if "pending" not in told:
            told.add("pending")
            self.events.record(name, "ImagesPending", decision.message)
            log.info("gate.holding", node=name, missing=list(decision.missing))
            made += 1
        made += self._tell_failures(decision, told)
        if decision.action is Action.HOLD_LATE and "late" not in told:
            told.add("late")
            message = f"kept (--on-max-wait keep): {decision.message}"
            self.events.record(name, "ImagesMaxWaitExceeded", message, warning=True)
            made += 1
        return made

    def _tell_failures(self, decision: GateDecision, told: set[str]) -> int:
        """An Event at once for each pull failure, with the runtime's message and the advice
        `await` gives; once per node, image and reason."""
        made = 0
        for failure in decision.failures:
            key = f"failed:{failure.image}:{failure.reason}"
            if key in told:
                continue
            told.add(key)
            self.metrics.inc("image_pull_failures_total", image=failure.image)
            advice = f"; {failure.advice}" if failure.advice else ""
            self.events.record(
                decision.node, "ImagesPullFailed", f"{failure}{advice}", warning=True
            )
            log.warning(
                "gate.pull_failed", node=decision.node, image=failure.image, reason=failure.reason
            )
            made += 1
        return made

    def report_dry(self, decisions: Sequence[GateDecision]) -> None:
        """--dry-run: each node's would-be release or hold, logged once."""
        for decision in decisions:
            told = self.told.setdefault(decision.node, set())
            what = "release" if decision.releases else "hold"
            if what in told:
                continue
            told.add(what)
            log.info(
                f"gate.would_{what}",
                node=decision.node,
                reason=str(decision.reason),
                message=decision.message,
            )

    def _previous(self, node: GateNode) -> str:
        return self.written.get(node.state.name, node.condition)

    def _as_written(self, node: GateNode) -> GateNode:
        """The node with the condition as last written, until the cache reads it back."""
        return with_condition(node, self.written.get(node.state.name))


def with_condition(node: GateNode, written: str | None) -> GateNode:
    if written is None or written == node.condition:
        return node
    return GateNode(state=node.state, created=node.created, taints=node.taints, condition=written)

"""`image-awaiter gate`: the long-running run. Its caches (the nodes carrying the gate taint,
the gate's puller pods and DaemonSets), its leader election, and the loop: judge every gated
node with each pull group's `Judge` (the same readiness rules as `await`), decide
(`gating.decide`), and, on the leader only, write what the decisions say (`gating.writes_for`):
releases first, then conditions and Events of nodes still waiting.

Everything it knows is read back from the cluster (the taint, the condition, the creation time
that `--max-wait` counts from), so a restart or a failover loses nothing. SIGTERM ends it with
exit 0 and leaves the DaemonSets (the chart owns them).
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer

import structlog

from image_awaiter.cluster.gatepullers import (
    GATE_SELECTOR,
    GatePullers,
    Listed,
    deployment_owner,
    gate_manifest,
    listed,
)
from image_awaiter.cluster.leases import LeaderElector, LeaseTiming
from image_awaiter.cluster.nodegating import NodeEvents, NodeWriter
from image_awaiter.core import outcomes
from image_awaiter.core.errors import AwaiterError, ExitCode, Interrupted
from image_awaiter.core.gating import GateDecision, GateNode, histogram_buckets
from image_awaiter.core.outcomes import Outcome, Result
from image_awaiter.core.pullerpods import PullerPod
from image_awaiter.core.targeting import label_keys
from image_awaiter.kube.caches import Caches
from image_awaiter.kube.client import Kube
from image_awaiter.kube.connecting import connect
from image_awaiter.kube.decoding import JsonCodec
from image_awaiter.kube.gatenodes import GateNodeCodec
from image_awaiter.kube.podcodec import PodCodec
from image_awaiter.kube.resources import DAEMONSETS, NODES, PODS
from image_awaiter.kube.watching import Informer
from image_awaiter.output.metrics import Metrics, serve
from image_awaiter.run.gatejudges import GateJudges
from image_awaiter.run.releasing import Releaser
from image_awaiter.run.signals import Hold, SignalGuard
from image_awaiter.spec.gatesettings import GateSettings
from image_awaiter.spec.settings import Job, resolve_job

log = structlog.get_logger("image_awaiter")

MIN_EVALUATION_GAP = 0.05
HELD_PER_TICK = 64  # held nodes written per turn, so that a burst never delays a release long
WRITERS = 8  # nodes written side by side
STALLED_AFTER = 60.0  # /healthz fails when the loop has not turned for this long


def execute_gate(settings: GateSettings) -> Outcome:
    """Run the gate until a signal; every failure becomes an `Outcome`."""
    structlog.contextvars.clear_contextvars()
    gate: Gate | None = None
    with SignalGuard() as signals:
        try:
            try:
                job = resolve_job(settings.base)
                gate = Gate(settings, job, hold=signals.held)
                gate.run()
                outcome = Outcome(ExitCode.OK, Result.SUCCESS, "gate stopped")
            except AwaiterError as error:
                outcome = Outcome(*outcomes.failed(error))
            signals.defer()
        except Interrupted as interruption:
            signals.defer()
            # SIGTERM is how Kubernetes stops a Deployment's pod: a normal end, exit 0.
            code = ExitCode.OK if interruption.signal_name == "SIGTERM" else ExitCode.SIGINT
            outcome = Outcome(code, Result.INTERRUPTED, f"gate stopped by {interruption}")
        finally:
            signals.defer()
            if gate is not None:
                gate.close()
    return outcome


class Gate:
    def __init__(self, settings: GateSettings, job: Job, *, hold: Hold) -> None:
        base = settings.base
        connection = connect(
            kubeconfig=base.kubeconfig,
            context=base.context,
            namespace=base.namespace,
            in_cluster_namespace=base.pod_namespace or base.in_cluster_namespace,
        )
        self.settings = settings
        self.namespace = connection.namespace
        self.kube = Kube(connection.client)
        structlog.contextvars.bind_contextvars(command="gate", namespace=self.namespace)
        self.caches = Caches(kube=self.kube, hold=hold)
        self.hold = hold
        self.pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="gate-writer")
        self.judges = GateJudges(job=job, taint=settings.taint, base=base)
        self.codec = GateNodeCodec(
            gate=settings.taint,
            condition=settings.condition,
            wanted=job.keys,
            label_keys=label_keys(g.placement for g in job.groups),
        )
        owner = (
            deployment_owner(self.kube, namespace=self.namespace, name=settings.owner_deployment)
            if settings.owner_deployment and not settings.dry_run
            else None
        )
        self.pullers = GatePullers(
            kube=self.kube,
            namespace=self.namespace,
            manifests=[
                gate_manifest(g.manifest, gate=settings.taint, group=g.name, owner=owner)
                for g in job.groups
            ],
        )
        self.metrics = Metrics(buckets=histogram_buckets())
        self.writer = NodeWriter(
            kube=self.kube, gate=settings.taint, condition_type=settings.condition
        )
        self.releaser = Releaser(
            writer=self.writer,
            events=NodeEvents(kube=self.kube),
            metrics=self.metrics,
            enforce=settings.enforce,
        )
        self.elector = _elector(settings, kube=self.kube, namespace=self.namespace)
        self.last_tick = time.monotonic()
        self.server: ThreadingHTTPServer | None = None
        self.synced = False

    @property
    def leading(self) -> bool:
        if self.settings.dry_run:
            return False
        return self.elector is None or self.elector.leading

    def run(self) -> None:
        if self.settings.metrics_addr is not None:
            self.server = serve(
                self.settings.metrics_addr,
                metrics=self.metrics,
                healthy=lambda: time.monotonic() - self.last_tick < STALLED_AFTER,
                ready=lambda: self.synced,
            )
        nodes = self.caches.start(name="nodes", address=NODES.address(), codec=self.codec)
        pods = self.caches.start(
            name="pods",
            address=PODS.address(namespace=self.namespace),
            codec=PodCodec(),
            label_selector=GATE_SELECTOR,
        )
        daemonsets = self.caches.start(
            name="daemonsets",
            address=DAEMONSETS.address(namespace=self.namespace),
            codec=JsonCodec(listed),
            label_selector=GATE_SELECTOR,
        )
        if self.elector is not None:
            self.elector.start()
        self.caches.wait_synced(deadline=None)
        self.synced = True
        log.info(
            "gate.started",
            taint=str(self.settings.taint),
            enforce=str(self.settings.enforce),
            groups=[g.name for g in self.judges.groups],
            dry_run=self.settings.dry_run,
        )
        self._loop(nodes, pods, daemonsets)

    def _loop(
        self,
        nodes: Informer[GateNode],
        pods: Informer[PullerPod],
        daemonsets: Informer[Listed],
    ) -> None:
        interval = self.settings.base.interval
        wake = self.caches.wake
        while True:
            self.caches.raise_errors()
            self.last_tick = time.monotonic()
            leading = self.leading
            self.metrics.set("leader", 1.0 if leading else 0.0)
            if leading:
                self.pullers.ensure(daemonsets.snapshot())
            more = self.tick(nodes.snapshot(), pods.snapshot().values(), leading=leading)
            if not more:
                wake.wait(interval)
                wake.clear()
            time.sleep(MIN_EVALUATION_GAP)

    def tick(
        self, gated: Mapping[str, GateNode], pods: Iterable[PullerPod], *, leading: bool
    ) -> bool:
        """Judge and decide every gated node; the leader writes. True when writes were left
        for the next turn."""
        decisions = self.judges.decide(gated, pods, rules=self.settings.rules)
        releaser = self.releaser
        releaser.forget_gone(gated)
        pending = [d for d in decisions if not d.releases]
        self.metrics.set("nodes_pending", float(len(pending)))
        if self.settings.dry_run:
            releaser.report_dry(decisions)
            return False
        if not leading:
            return False
        releases = [d for d in decisions if releaser.pending_release(d, gated[d.node])]
        in_parallel(
            self.pool,
            self.hold,
            lambda d: releaser.release(d, gated[d.node], images=self.judges.images_of(d.node)),
            releases,
        )
        due = [d for d in pending if releaser.due(d, gated[d.node])]
        in_parallel(
            self.pool, self.hold, lambda d: releaser.hold(d, gated[d.node]), due[:HELD_PER_TICK]
        )
        return len(due) > HELD_PER_TICK

    def close(self) -> None:
        self.caches.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.elector is not None:
            self.elector.stop(release=True)
        if self.server is not None:
            self.server.shutdown()
        log.info("gate.stopped", daemonsets="left in place (the chart owns them)")


def _elector(settings: GateSettings, *, kube: Kube, namespace: str) -> LeaderElector | None:
    """None when this process writes alone (--no-leader-elect) or never (--dry-run)."""
    lease = settings.lease
    if settings.dry_run or not settings.leader_election:
        return None
    base = settings.base
    identity = lease.identity or base.pod_name or f"{socket.gethostname()}_{secrets.token_hex(4)}"
    return LeaderElector(
        kube=Kube(kube.client),
        namespace=lease.namespace or namespace,
        name=lease.name,
        identity=identity,
        timing=LeaseTiming(lease.duration, lease.renew_deadline, lease.retry_period),
    )


def in_parallel(
    pool: ThreadPoolExecutor,
    hold: Hold,
    write: Callable[[GateDecision], object],
    decisions: list[GateDecision],
) -> None:
    """Each node's writes in order, nodes side by side: a burst of joining nodes waits on the
    API's latency once per `WRITERS` nodes, not once per node."""
    if len(decisions) <= 1:
        for decision in decisions:
            write(decision)
        return
    with hold():  # the pool starts threads
        futures = [pool.submit(write, d) for d in decisions]
    for future in futures:
        future.result()

"""What a gate run adds to its `RunContext`: the gate's settings, the leader elector, the
metrics and the probes that serve them, the pool that writes nodes side by side, and the cache
of the nodes carrying the gate taint (started by `watches.Watches`, read by the gate's part).

Built once by `open_gate`; started by the gate's part (`gatepolicy.Releasing`), closed with
the run's context. A run that is not a gate has none."""

from __future__ import annotations

import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

import structlog

from image_awaiter.cluster.leases import LeaderElector, LeaseTiming
from image_awaiter.core.gating import GateNode, histogram_buckets
from image_awaiter.core.targeting import NodeState
from image_awaiter.kube.client import Kube
from image_awaiter.kube.watching import Hold, Informer
from image_awaiter.output.metrics import Metrics, serve
from image_awaiter.spec.gatesettings import GateSettings

log = structlog.get_logger("image_awaiter")

WRITERS = 8  # nodes written side by side
STALLED_AFTER = 60.0  # /healthz fails when the loop has not turned for this long


@dataclass(slots=True)
class GateContext:
    settings: GateSettings
    metrics: Metrics
    elector: LeaderElector | None  # None: this process writes alone, or never (--dry-run)
    hold: Hold  # holds the signals back while a thread starts
    nodes: GatedNodes | None = None  # the gated nodes, once `Watches` started their cache
    pullers_watched: bool = False  # the gate's pullers' caches started (`Watches`)
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            max_workers=WRITERS, thread_name_prefix="gate-writer"
        )
    )
    server: ThreadingHTTPServer | None = None
    last_tick: float = field(default_factory=time.monotonic)
    synced: bool = False  # every cache listed once: /readyz

    @property
    def leading(self) -> bool:
        if self.settings.dry_run:
            return False
        return self.elector is None or self.elector.leading

    def start(self) -> None:
        """Serve the metrics and probes, and start electing a leader."""
        if self.settings.metrics_addr is not None:
            self.server = serve(
                self.settings.metrics_addr,
                metrics=self.metrics,
                healthy=lambda: time.monotonic() - self.last_tick < STALLED_AFTER,
                ready=lambda: self.synced,
            )
        if self.elector is not None:
            with self.hold():
                self.elector.start()

    def close(self) -> None:
        """Stop writing, give the lease up, stop serving; the DaemonSets stay."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.elector is not None:
            self.elector.stop(release=True)
        if self.server is not None:
            self.server.shutdown()
        log.info("gate.stopped", daemonsets="left in place (the chart owns them)")


class GatedNodes:
    """The cache of the nodes carrying the gate taint. `snapshot` gives their states to judge
    and keeps the nodes it gave (`judged`), so that the decisions read the same nodes as the
    evaluation they follow."""

    def __init__(self, informer: Informer[GateNode]) -> None:
        self._informer = informer
        self.judged: dict[str, GateNode] = {}

    def snapshot(self) -> dict[str, NodeState]:
        self.judged = self._informer.snapshot()
        return {name: node.state for name, node in self.judged.items()}


def open_gate(settings: GateSettings, *, kube: Kube, namespace: str, hold: Hold) -> GateContext:
    """The gate's part of the run's context (nothing started yet)."""
    return GateContext(
        settings=settings,
        metrics=Metrics(buckets=histogram_buckets()),
        elector=_elector(settings, kube=kube, namespace=namespace),
        hold=hold,
    )


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

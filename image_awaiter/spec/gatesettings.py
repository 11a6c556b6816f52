"""What `image-awaiter gate` is made of: the image inputs and connection of `await` (`base`)
plus the gate's own options, immutable, checked once."""

from __future__ import annotations

from dataclasses import dataclass

from image_awaiter.core.errors import UsageError
from image_awaiter.core.gating import Enforce, GateRules, GateTaint
from image_awaiter.spec.settings import Settings

DEFAULT_LEASE = "image-awaiter-gate"


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    name: str = DEFAULT_LEASE
    namespace: str | None = None  # None: the gate's namespace
    identity: str = ""  # "" : the pod's name (POD_NAME), else the host name and a random tail
    duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


@dataclass(frozen=True, slots=True)
class GateSettings:
    base: Settings  # images, pull groups, puller options, connection, logging
    taint: GateTaint
    condition: str
    enforce: Enforce
    rules: GateRules
    lease: LeaseSettings
    metrics_addr: str | None = None
    dry_run: bool = False
    leader_election: bool = True
    owner_deployment: str | None = None  # the chart's Deployment: its DaemonSets' owner

    def check(self) -> GateSettings:
        """Refuse contradictions before anything touches the cluster."""
        if self.rules.max_wait <= 0:
            raise UsageError("--max-wait must be greater than zero", hint="e.g. 15m (the default)")
        lease = self.lease
        if not 0 < lease.retry_period < lease.renew_deadline < lease.duration:
            raise UsageError(
                "lease timing must satisfy 0 < --lease-retry-period < --lease-renew-deadline "
                "< --lease-duration",
                hint="e.g. 2s, 10s, 15s (the defaults)",
            )
        if "/" not in self.condition or not self.condition.split("/", 1)[1]:
            raise UsageError(
                f"invalid --condition {self.condition!r}",
                hint="a domain-prefixed condition type, e.g. image-awaiter.io/ImagesReady",
            )
        if self.metrics_addr is not None and not _port(self.metrics_addr):
            raise UsageError(
                f"invalid --metrics-addr {self.metrics_addr!r}", hint="use HOST:PORT or :PORT"
            )
        return self


def _port(address: str) -> bool:
    _, sep, port = address.rpartition(":")
    return bool(sep) and port.isdigit() and int(port) < 65536

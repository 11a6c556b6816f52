"""What every part of one run shares, built once before anything is read: the settings and the
job, the API client bound to the run's deadline, the namespace, the run id, the owner of what
the run creates, the caches, and when the run started and must end.

Parts take the `RunContext` for who and where the run is, and from the settings only the few
values they read (given as arguments); `Run` and the choice of policy read `context.settings`.
A gate's context carries its own part too (`gatecontext.GateContext`: the elector, the metrics)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import structlog

from image_awaiter.core.pullmethod import MethodChoice
from image_awaiter.kube.api import KubeApi
from image_awaiter.kube.caches import Caches
from image_awaiter.kube.client import Kube
from image_awaiter.kube.connecting import Connection
from image_awaiter.kube.watching import Hold
from image_awaiter.run.gatecontext import GateContext, open_gate
from image_awaiter.spec.gatesettings import GateSettings
from image_awaiter.spec.pullers import Owner
from image_awaiter.spec.settings import Job, Settings


@dataclass(frozen=True, slots=True)
class RunContext:
    settings: Settings
    job: Job
    kube: KubeApi  # every request bounded by `deadline` (client.Kube, or a test's own)
    namespace: str  # where the pullers and their pods live
    own_namespace: str | None  # the awaiter pod's own, when it runs in one
    run_id: str  # labels what this run creates
    owner: Owner | None  # the awaiter's own pod, owner of what it creates
    caches: Caches  # every informer of the run, stopped together
    started: float  # monotonic
    deadline: float | None  # monotonic; None: no timeout
    pull_method: MethodChoice | None = None  # what `--pull-method auto` chose, once it has
    gate: GateContext | None = None  # a gate's elector, metrics and gated nodes

    def close(self) -> None:
        """Stop every cache, and what the gate started."""
        self.caches.stop()
        if self.gate is not None:
            self.gate.close()


def open_context(
    settings: Settings,
    job: Job,
    *,
    connection: Connection,
    hold: Hold,
    gate: GateSettings | None = None,
) -> RunContext:
    """The run's context, with a new run id bound to every log line from now on; with `gate`,
    a gate's (its command named `gate`)."""
    started = time.monotonic()
    deadline = started + settings.timeout if settings.timeout > 0 else None
    kube = Kube(connection.client, deadline=deadline)
    namespace, run_id = connection.namespace, secrets.token_hex(4)
    structlog.contextvars.bind_contextvars(
        run_id=run_id, command="gate" if gate else settings.command, namespace=namespace
    )
    return RunContext(
        settings=settings,
        job=job,
        kube=kube,
        namespace=namespace,
        own_namespace=settings.own_namespace(in_cluster=connection.in_cluster),
        run_id=run_id,
        owner=settings.owner(default_namespace=namespace),
        caches=Caches(kube=kube, hold=hold),
        started=started,
        deadline=deadline,
        gate=open_gate(gate, kube=kube, namespace=namespace, hold=hold) if gate else None,
    )

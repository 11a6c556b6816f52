"""`image-awaiter gate`: its options (the image inputs of `await`, the gate's own) parsed into
`GateSettings`, and its ending. Nothing here decides: `run.awaiting.execute_gate` runs it."""

from __future__ import annotations

import os
from typing import Any

import click

from image_awaiter.cli.commands import cli
from image_awaiter.cli.ending import Ending, default_termination_log
from image_awaiter.cli.options import DURATION, ENV, read_settings, shared_options_without
from image_awaiter.core.errors import ExitCode, UsageError
from image_awaiter.core.gating import (
    DEFAULT_CONDITION,
    DEFAULT_TAINT,
    Enforce,
    GateRules,
    GateTaint,
)
from image_awaiter.spec.gatesettings import DEFAULT_LEASE, GateSettings, LeaseSettings

# `await` options that mean nothing to a run that never ends and keeps its DaemonSets.
NOT_FOR_THE_GATE = (
    "--timeout",
    "--on-timeout",
    "--keep-daemonset",
    "--report",
    "--progress/--no-progress",
    "--pod-events/--no-pod-events",
    "--include-cordoned",
)
# (option, env, default, help) of the gate's own options that take a value
GATE_OPTIONS: tuple[tuple[str, str, Any, str], ...] = (
    (
        "--taint",
        "TAINT",
        DEFAULT_TAINT,
        "The gate taint KEY[=VALUE]:EFFECT that new nodes "
        "register with; removed, and only it, once their images are there.",
    ),
    (
        "--condition",
        "CONDITION",
        DEFAULT_CONDITION,
        "Node condition type written through "
        "nodes/status (True once released), for the Node Readiness Controller.",
    ),
    (
        "--max-wait",
        "MAX_WAIT",
        "15m",
        "Release a node anyway this long after its "
        "creationTimestamp, with a Warning Event naming what is missing.",
    ),
    (
        "--metrics-addr",
        "METRICS_ADDR",
        None,
        "Serve Prometheus /metrics, /healthz and /readyz on HOST:PORT (':8080': every address).",
    ),
    (
        "--owner-deployment",
        "OWNER_DEPLOYMENT",
        None,
        "The gate's Deployment (the chart's): owner of the puller DaemonSets, so that "
        "uninstalling it removes them.",
    ),
    (
        "--lease-name",
        "LEASE_NAME",
        DEFAULT_LEASE,
        "The coordination.k8s.io Lease replicas elect a leader on.",
    ),
    ("--lease-namespace", "LEASE_NAMESPACE", None, "Namespace of the Lease [default: the gate's]."),
    (
        "--lease-duration",
        "LEASE_DURATION",
        "15s",
        "How long a lease holds without renewal (failover time).",
    ),
    (
        "--lease-renew-deadline",
        "LEASE_RENEW_DEADLINE",
        "10s",
        "A leader that cannot renew this long stops writing.",
    ),
    (
        "--lease-retry-period",
        "LEASE_RETRY_PERIOD",
        "2s",
        "Between two tries to take or renew the lease.",
    ),
)
DURATIONS = frozenset(
    {"--max-wait", "--lease-duration", "--lease-renew-deadline", "--lease-retry-period"}
)


def _gate_options(function: Any) -> Any:
    for name, env, default, text in reversed(GATE_OPTIONS):
        function = click.option(
            name,
            envvar=ENV + env,
            show_envvar=True,
            default=default,
            show_default=default is not None,
            type=DURATION if name in DURATIONS else str,
            help=text,
        )(function)
    choices = (
        (
            "--enforce",
            "ENFORCE",
            [e.value for e in Enforce],
            "both",
            "taint: remove the taint; "
            "condition: only write the condition (never the node object); both.",
        ),
        (
            "--on-max-wait",
            "ON_MAX_WAIT",
            ["untaint", "keep"],
            "untaint",
            "At --max-wait: release the node anyway, or keep it held (a Warning Event either way).",
        ),
    )
    for name, env, values, default, text in choices:
        function = click.option(
            name,
            envvar=ENV + env,
            show_envvar=True,
            type=click.Choice(values),
            default=default,
            show_default=True,
            help=text,
        )(function)
    function = click.option(
        "--leader-elect/--no-leader-elect",
        envvar=ENV + "LEADER_ELECT",
        show_envvar=True,
        default=True,
        show_default=True,
        help="Elect one writing replica on the Lease; off: this process always writes.",
    )(function)
    return click.option(
        "--dry-run",
        envvar=ENV + "DRY_RUN",
        show_envvar=True,
        is_flag=True,
        help="Watch and log what it would release; write nothing (no DaemonSet, no node).",
    )(function)


@click.command("gate")
@shared_options_without(*NOT_FOR_THE_GATE)
@_gate_options
def gate_command(**options: Any) -> Ending:
    """Long-running: hold new nodes (a startup taint, a node condition) until their images are
    there. SIGTERM exits 0 and leaves the puller DaemonSets (remove them with `kubectl delete
    daemonset -l image-awaiter.io/role=gate`)."""
    return run_gate(options)


def run_gate(options: dict[str, Any]) -> Ending:
    from image_awaiter.output import logs
    from image_awaiter.run.awaiting import execute_gate

    termination_log = options["termination_log"] or default_termination_log(os.environ)
    try:
        settings = gate_settings(options, os.environ)
    except UsageError as error:
        return Ending(int(ExitCode.USAGE), error.one_line(), termination_log)
    logs.configure(log_format=settings.base.log_format, verbosity=settings.base.verbosity)
    outcome = execute_gate(settings)
    return Ending(int(outcome.exit_code), outcome.message, termination_log)


def gate_settings(options: dict[str, Any], environ: Any) -> GateSettings:
    base_options = {
        "timeout": 0.0,
        "on_timeout": "fail",
        "keep_daemonset": True,
        "report": None,
        "progress": False,
        "pod_events": False,
        "include_cordoned": True,
        **options,
        "dry_run": False,
        "output": None,
    }
    base = read_settings("await", base_options, environ, termination_log=None)
    return GateSettings(
        base=base,
        taint=GateTaint.parse(options["taint"]),
        condition=options["condition"],
        enforce=Enforce(options["enforce"]),
        rules=GateRules(max_wait=options["max_wait"], on_max_wait=options["on_max_wait"]),
        lease=LeaseSettings(
            name=options["lease_name"],
            namespace=options["lease_namespace"],
            identity=environ.get("POD_NAME") or "",
            duration=options["lease_duration"],
            renew_deadline=options["lease_renew_deadline"],
            retry_period=options["lease_retry_period"],
        ),
        metrics_addr=options["metrics_addr"],
        dry_run=options["dry_run"],
        leader_election=options["leader_elect"],
        owner_deployment=options["owner_deployment"],
    ).check()


cli.add_command(gate_command)

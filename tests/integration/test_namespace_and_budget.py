"""What a new user's trial found (issue 19): `check` needs no namespace, `await --dry-run`
reads it as the real run does, and an unreachable API server ends the run after one 30 s
budget, not 30 s per request."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, cli_command, cli_env

BUSYBOX = "busybox:1.36"
RETRY_BUDGET = 30.0
SLACK = 6.0  # start-up, the last attempt's own time, cleanup: on a loaded 2-core machine


def namespace_reads(sim: Any) -> list[str]:
    return [r.path for r in sim.requests if r.path.startswith("/api/v1/namespaces/nosuchns")]


def test_check_needs_no_namespace_and_reads_none(sim: Any, run_cli: Any) -> None:
    sim.add_node("a", images=(BUSYBOX,))
    result = run_cli("check", "--image", BUSYBOX, "-n", "nosuchns")
    assert result.code == 0, result.output
    assert namespace_reads(sim) == []


def test_a_dry_run_in_a_missing_namespace_predicts_the_real_runs_exit_3(
    sim: Any, run_cli: Any
) -> None:
    sim.add_node("a")
    planned = run_cli("await", "--image", BUSYBOX, "-n", "nosuchns", "--dry-run")
    real = run_cli("await", "--image", BUSYBOX, "-n", "nosuchns")
    assert (planned.code, real.code) == (3, 3), planned.output + real.output
    assert "namespace 'nosuchns' not found" in planned.last_line
    assert planned.report is not None and planned.report["result"] == "api-error"


def test_a_dry_run_with_nothing_missing_reads_no_namespace_as_the_real_run(
    sim: Any, run_cli: Any
) -> None:
    sim.add_node("a", images=(BUSYBOX,))
    result = run_cli("await", "--image", BUSYBOX, "-n", "nosuchns", "--dry-run")
    assert result.code == 0, result.output
    assert namespace_reads(sim) == []


def closed_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return int(listener.getsockname()[1])


def kubeconfig_for(server: str, path: Path) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("server", "command"),
    [
        (f"http://127.0.0.1:{closed_port()}", "check"),
        ("https://no-such-api-server.invalid:6443", "await"),
    ],
    ids=["closed port", "unresolvable name"],
)
def test_an_unreachable_api_server_ends_the_run_after_one_retry_budget(
    server: str, command: str, tmp_path: Path
) -> None:
    kubeconfig = kubeconfig_for(server, tmp_path / "kubeconfig")
    started = time.monotonic()
    proc = subprocess.run(
        cli_command([command, "--image", BUSYBOX, "--kubeconfig", str(kubeconfig), "-n", "ns"]),
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
        cwd=ROOT,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert RETRY_BUDGET - 1 < elapsed < RETRY_BUDGET + SLACK
    [last] = proc.stderr.strip().splitlines()[-1:]
    assert last.startswith("image-awaiter: the Kubernetes API at ") and "kept failing" in last

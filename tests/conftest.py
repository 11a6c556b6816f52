"""Fixtures shared by the integration tests: a simulated cluster and the real CLI run against it
as a subprocess, exactly as an operator or a Helm hook would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The real control plane: `control_plane` (one per run, shared by the workers) and `namespace`.
pytest_plugins = ("simcluster.controlplane.pytest_plugin",)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "sim-token-s3cr3t"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KUBERNETES_", "IMAGE_AWAITER_", "POD_")) and k != "KUBECONFIG"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def cli_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "image_awaiter", *args]


@pytest.fixture
def sim() -> Iterator[Any]:
    from simcluster import SimCluster

    cluster = SimCluster(seed=1, time_scale=0.05)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kubeconfig(sim: Any, tmp_path: Path) -> Path:
    return Path(sim.write_kubeconfig(tmp_path / "kubeconfig", token=TOKEN))


@pytest.fixture
def run_cli(kubeconfig: Path, tmp_path: Path) -> Any:
    """Run `image-awaiter <args>` against the simulated cluster; returns a CliResult."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
        timeout: float = 120,
        kube: bool = True,
        report: bool = True,
    ) -> CliResult:
        report_path = tmp_path / f"report-{os.urandom(3).hex()}.json"
        full = list(args)
        if kube:
            full += ["--kubeconfig", str(kubeconfig)]
        if report:
            full += ["--report", str(report_path)]
        if "--log-format" not in full:
            full += ["--log-format", "json"]
        proc = subprocess.run(
            cli_command(full),
            capture_output=True,
            text=True,
            input=stdin,
            timeout=timeout,
            env=cli_env(env),
            cwd=ROOT,
            check=False,
        )
        parsed = json.loads(report_path.read_text()) if report_path.exists() else None
        return CliResult(
            code=proc.returncode, stdout=proc.stdout, stderr=proc.stderr, report=parsed
        )

    return run


def spawn_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start `image-awaiter <args>` in the background, output captured as text."""
    return subprocess.Popen(
        cli_command(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(env),
        cwd=ROOT,
    )


def spawn_await(
    kubeconfig: Path,
    image: str,
    *extra: str,
    interval: str | None = "100ms",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start `image-awaiter await --image IMAGE` in the background against the simulated
    cluster, logging JSON lines, re-evaluating every `interval` (None: the default)."""
    args = ["await", "--image", image, "--kubeconfig", str(kubeconfig), "--log-format", "json"]
    if interval is not None:
        args += ["--interval", interval]
    return spawn_cli(*args, *extra, env=env)

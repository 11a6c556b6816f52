"""The real CLI against the real control plane: an admin kubeconfig for one test's namespace,
`image-awaiter` run to its end or started in the background, and readers of what the
controllers did there (pods, the DaemonSet controller's events)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcluster.apiclient import Api
from tests.conftest import ROOT, cli_command, cli_env

MANAGED = "app.kubernetes.io/managed-by=image-awaiter"


@dataclass(frozen=True)
class Ran:
    code: int
    stderr: str
    report: dict[str, Any] | None
    seconds: float

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def awaiter_args(kubeconfig: Path, report: Path, *args: str) -> list[str]:
    return [*args, "--kubeconfig", str(kubeconfig), "--report", str(report), "--log-format", "json"]


def run_awaiter(
    kubeconfig: Path,
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Ran:
    """`image-awaiter ARGS` to its end, as an operator runs it; the report parsed."""
    report = tmp_path / f"report-{os.urandom(3).hex()}.json"
    started = time.monotonic()
    done = subprocess.run(
        cli_command(awaiter_args(kubeconfig, report, *args)),
        capture_output=True, text=True, env=cli_env(env), cwd=ROOT, timeout=timeout, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    parsed = json.loads(report.read_text()) if report.exists() else None
    return Ran(done.returncode, done.stderr, parsed, seconds)


def start_awaiter(
    kubeconfig: Path, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    report = tmp_path / f"report-{os.urandom(3).hex()}.json"
    return subprocess.Popen(
        cli_command(awaiter_args(kubeconfig, report, *args)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(env), cwd=ROOT,
    )  # fmt: skip


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll a real condition (bounded); its first truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s"
        time.sleep(0.1)


def our_pods(admin: Api, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = admin.get(
        f"/api/v1/namespaces/{namespace}/pods?labelSelector={MANAGED}"
    )["items"]
    return items


def our_daemonsets(admin: Api, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = admin.get(
        f"/apis/apps/v1/namespaces/{namespace}/daemonsets?labelSelector={MANAGED}"
    )["items"]
    return items


def failed_creates(admin: Api, namespace: str) -> list[str]:
    """The DaemonSet controller's FailedCreate messages in the namespace."""
    events = admin.get(
        f"/api/v1/namespaces/{namespace}/events"
        "?fieldSelector=involvedObject.kind%3DDaemonSet,reason%3DFailedCreate"
    )["items"]
    return [str(e["message"]) for e in events]


def stand_in_pod(admin: Api, namespace: str, *, account: str = "default") -> dict[str, str]:
    """A Pod object standing for the awaiter's own pod (no kubelet runs it; it is never bound),
    and the downward-API environment the chart's Job gives the awaiter: with it the awaiter
    owns its DaemonSets by this pod (ownerReference) and records Events on it, as the hook."""
    pod = admin.create(
        f"/api/v1/namespaces/{namespace}/pods",
        {
            "metadata": {"generateName": "hook-"},
            "spec": {
                "serviceAccountName": account,
                "automountServiceAccountToken": False,
                "nodeSelector": {"image-awaiter.test/nowhere": "true"},  # never scheduled
                "containers": [{"name": "awaiter", "image": "ghcr.io/image-awaiter/image-awaiter"}],
            },
        },
    )
    meta = pod["metadata"]
    return {"POD_NAME": meta["name"], "POD_UID": meta["uid"], "POD_NAMESPACE": namespace}

"""The guarantees a pre-upgrade hook lives by: SIGKILL leaves nothing behind for long, leftovers
of earlier runs are swept (never foreign objects), deadlines hold under faults, and a long wait
with steady churn keeps memory, threads and connections flat."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from simcluster import Fault
from tests.conftest import cli_command, cli_env
from tests.integration.helpers import our_daemonsets

IMAGE = "quay.io/org/slow:1"


def _spawn(
    kubeconfig: Path,
    *args: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_command(
            [
                "await",
                "--image",
                IMAGE,
                "--kubeconfig",
                str(kubeconfig),
                "--log-format",
                "json",
                *args,
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(env),
    )


def test_after_sigkill_the_daemonset_is_collected_when_the_owner_pod_goes(
    sim: Any, kubeconfig: Path
) -> None:
    sim.registry.add(IMAGE, pull_seconds=10_000)
    sim.add_node("a")
    owner = sim.create(
        "pods",
        {"metadata": {"name": "hook-xyz"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}},
        namespace="default",
    )
    proc = _spawn(
        kubeconfig,
        env={
            "POD_NAME": "hook-xyz",
            "POD_UID": owner["metadata"]["uid"],
            "POD_NAMESPACE": "default",
        },
    )
    assert sim.wait_for(
        lambda s: (
            len(our_daemonsets(s)) == 1
            and s.objects("pods", "default")
            and len(s.objects("pods", "default")) == 2
        ),
        timeout=30,
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert len(our_daemonsets(sim)) == 1  # SIGKILL: no cleanup ran
    sim.delete("pods", "hook-xyz", namespace="default")  # the Job's pod goes away
    assert sim.wait_for(
        lambda s: our_daemonsets(s) == [] and s.objects("pods", "default") == [], timeout=10
    )


def _puller(name: str, *, labels: dict[str, str], created: datetime | None) -> dict[str, Any]:
    annotations = (
        {"image-awaiter.io/created-at": created.strftime("%Y-%m-%dT%H:%M:%SZ")} if created else {}
    )
    selector = {"app": name}
    return {
        "metadata": {"name": name, "labels": {**labels, **selector}, "annotations": annotations},
        "spec": {
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {"containers": [{"name": "p", "image": "pause:3"}]},
            },
        },
    }


def test_stale_daemonsets_of_earlier_runs_are_swept_and_foreign_ones_are_not(
    sim: Any, run_cli: Any
) -> None:
    ours = {"app.kubernetes.io/managed-by": "image-awaiter", "image-awaiter.io/run-id": "old1"}
    long_ago = datetime.now(UTC) - timedelta(days=2)
    sim.create("daemonsets", _puller("leftover", labels=ours, created=long_ago), "default")
    sim.create(
        "daemonsets",
        _puller(
            "running-elsewhere",
            labels={**ours, "image-awaiter.io/run-id": "new2"},
            created=datetime.now(UTC),
        ),
        "default",
    )
    sim.create(
        "daemonsets",
        _puller(
            "no-run-id", labels={"app.kubernetes.io/managed-by": "image-awaiter"}, created=long_ago
        ),
        "default",
    )
    sim.create("daemonsets", _puller("foreign-old", labels={}, created=long_ago), "default")
    sim.add_node("a")
    result = run_cli("await", "--image", "busybox:1", "--interval", "200ms")
    assert result.code == 0, result.output
    names = {d["metadata"]["name"] for d in sim.objects("daemonsets", "default")}
    assert names == {"running-elsewhere", "no-run-id", "foreign-old"}
    assert "daemonset.swept" in result.stderr and "leftover" in result.stderr


@pytest.mark.parametrize(("on_timeout", "code"), [("fail", 1), ("succeed", 0)])
def test_an_api_failing_until_the_deadline_is_a_timeout_and_never_pushes_the_exit_past_it(
    sim: Any, kubeconfig: Path, on_timeout: str, code: int, tmp_path: Path
) -> None:
    """Regression (chaos seed 2039, second finding): retries that ran into the deadline ended
    the run as an API failure, exit 3, although the time was simply up and `--on-timeout
    succeed` had promised never to block the upgrade."""
    sim.add_node("a")
    sim.faults.add(Fault(path="/pods", status=503, times=None))  # pods never answer
    report = tmp_path / "report.json"
    proc = _spawn(
        kubeconfig, "--timeout", "3s", "--on-timeout", on_timeout, "--report", str(report)
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-2000:]
    # Measured by the run itself, so a loaded machine's slow interpreter start does not count;
    # what may follow the deadline is the DaemonSet's deletion, nothing else.
    elapsed = json.loads(report.read_text())["durationSeconds"]
    assert elapsed < 3 + 3, f"exit {elapsed:.1f} s after the run started with --timeout 3s"
    assert our_daemonsets(sim) == []
    assert "Traceback" not in err
    assert "timed out after 3s" in err


def test_an_unreachable_api_server_exits_3_within_the_retry_budget(
    sim: Any, kubeconfig: Path
) -> None:
    sim.stop()
    started = time.monotonic()
    proc = _spawn(kubeconfig, "--timeout", "0")
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 3, err
    assert time.monotonic() - started < 45
    assert "kept failing" in err.strip().splitlines()[-1]


def _proc_stats(pid: int) -> tuple[int, int, int]:
    """(RSS kB, threads, open file descriptors) of a live process."""
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return (
        int(fields["VmRSS"].split()[0]),
        int(fields["Threads"]),
        len(os.listdir(f"/proc/{pid}/fd")),
    )


MIN_CHURN_STEPS = 160  # four compactions, ~500 node events, however slow the machine is
MIN_FAULTS = 20  # and the wait goes on until the API faults really hit the awaiter


def test_a_long_wait_with_steady_churn_keeps_memory_threads_and_connections_flat(
    sim: Any, kubeconfig: Path
) -> None:
    """A 30-minute wait, scaled: every watch is cut after a few events, history is compacted
    (410 Gone, relists), nodes join, leave and flap all the time, for SOAK_SECONDS."""
    seconds = float(os.environ.get("SOAK_SECONDS", "24"))
    sim.registry.add(IMAGE, pull_seconds=0.2)
    sim.fail_pull(IMAGE, reason="ErrImagePull", message="stuck", nodes=["stuck"])
    sim.add_node("stuck")
    for index in range(10):
        sim.add_node(f"n{index}")
    sim.faults.add(Fault(watch=True, status=0, cut_after_events=3, probability=0.5, times=None))
    sim.faults.add(Fault(status=503, probability=0.05, times=None))
    proc = _spawn(kubeconfig, "--timeout", "0", "--pull-failure-grace", "1h")
    stop = threading.Event()
    steps = [0]  # churn steps done; the wait lasts at least MIN_CHURN_STEPS of them

    def churn() -> None:
        step = 0
        while not stop.wait(0.1):
            step += 1
            steps[0] = step
            sim.add_node(f"churn-{step}")
            if step > 3:
                sim.remove_node(f"churn-{step - 3}")
            sim.set_node_ready(f"n{step % 10}", step % 2 == 0)
            if step % 40 == 0:
                sim.compact()

    churner = threading.Thread(target=churn, daemon=True)
    assert sim.wait_for(lambda s: len(our_daemonsets(s)) == 1, timeout=30)
    churner.start()
    samples = []
    deadline = time.monotonic() + seconds
    cap = time.monotonic() + 10 * seconds  # a loaded machine gets longer, never forever
    while time.monotonic() < cap and (
        time.monotonic() < deadline
        or steps[0] < MIN_CHURN_STEPS
        or sim.faults.injected <= MIN_FAULTS
    ):
        samples.append(_proc_stats(proc.pid))
        stop.wait(1.0)
    stop.set()
    churner.join()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err[-2000:]
    assert our_daemonsets(sim) == []
    warm = samples[len(samples) // 4 :]
    rss = [s[0] for s in warm]
    threads = [s[1] for s in warm]
    fds = [s[2] for s in warm]
    assert max(threads) <= min(threads) + 2, threads
    assert max(fds) <= min(fds) + 4, fds
    assert rss[-1] <= rss[0] * 1.25 + 4096, rss
    assert sim.faults.injected > MIN_FAULTS

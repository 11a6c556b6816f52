"""The CLI against a real cluster: the same contract as the simulated tests, for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import cli_command, cli_env
from tests.e2e.conftest import leftover_daemonsets

pytestmark = pytest.mark.e2e

PAUSE = "registry.k8s.io/pause:3.10"
ABSENT = f"registry.k8s.io/e2e-test-images/agnhost:2.{uuid.uuid4().int % 1000}-absent"


def _run(kubeconfig: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command([*args, "--kubeconfig", str(kubeconfig), "--log-format", "json"]),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
        check=False,
    )


def _busybox_spec(tmp_path: Path, image: str) -> Path:
    labels = {"app": "e2e-puller"}
    spec = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "e2e-puller"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "initContainers": [{"name": "pull", "image": image, "command": ["true"]}],
                    "containers": [{"name": "pause", "image": PAUSE}],
                },
            },
        },
    }
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(spec))
    return path


def test_check_on_a_real_cluster_reports_an_absent_image_and_creates_nothing(
    real_kubeconfig: Path,
) -> None:
    result = _run(real_kubeconfig, "check", "--image", ABSENT, "--report", "-")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["summary"]["targets"] >= 1
    assert leftover_daemonsets(real_kubeconfig) == []


def test_await_pulls_an_image_on_every_node_and_cleans_up(
    real_kubeconfig: Path, tmp_path: Path
) -> None:
    spec = _busybox_spec(tmp_path, "busybox:1.36.1")
    result = _run(real_kubeconfig, "await", "--daemonset-spec", str(spec), "--timeout", "5m")
    assert result.returncode == 0, result.stderr
    assert leftover_daemonsets(real_kubeconfig) == []
    again = _run(real_kubeconfig, "check", "--image", "busybox:1.36.1")
    assert again.returncode in (0, 1)  # node.status.images may lag or hide small images


def test_await_on_an_image_that_does_not_exist_exits_4(real_kubeconfig: Path) -> None:
    result = _run(
        real_kubeconfig,
        "await",
        "--image",
        ABSENT,
        "--pull-method",
        "imageVolumes",
        "--pull-failure-grace",
        "30s",
        "--timeout",
        "4m",
    )
    assert result.returncode in (4, 1), result.stderr  # 1 where ImageVolume is unsupported
    assert leftover_daemonsets(real_kubeconfig) == []


def test_generated_shell_free_puller_on_a_real_cluster(real_kubeconfig: Path) -> None:
    helper = os.environ.get("IMAGE_AWAITER_E2E_HELPER_IMAGE")
    if not helper:
        pytest.skip(
            "set IMAGE_AWAITER_E2E_HELPER_IMAGE to an image-awaiter image the cluster "
            "can pull (e.g. one loaded with `kind load docker-image`)"
        )
    result = _run(
        real_kubeconfig,
        "await",
        "--image",
        "gcr.io/distroless/static:nonroot",
        "--helper-image",
        helper,
        "--timeout",
        "5m",
    )
    assert result.returncode == 0, result.stderr
    assert leftover_daemonsets(real_kubeconfig) == []


def test_sigterm_on_a_real_cluster_deletes_the_daemonset(
    real_kubeconfig: Path, tmp_path: Path
) -> None:
    spec = _busybox_spec(tmp_path, ABSENT)
    proc = subprocess.Popen(
        cli_command(
            [
                "await",
                "--daemonset-spec",
                str(spec),
                "--pull-failure-grace",
                "10m",
                "--kubeconfig",
                str(real_kubeconfig),
                "--log-format",
                "json",
            ]
        ),
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "daemonset.created" in line:
            break
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert leftover_daemonsets(real_kubeconfig) == []

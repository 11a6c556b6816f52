"""`python -m simcluster serve` from the outside: one line naming the kubeconfig, real kubectl
works against it, images nobody added fail to pull with containerd's text, SIGTERM exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.simulated_api.conftest import ROOT, tool

DAEMONSET = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "probe", "namespace": "default"},
    "spec": {
        "selector": {"matchLabels": {"app": "probe"}},
        "template": {
            "metadata": {"labels": {"app": "probe"}},
            "spec": {"containers": [{"name": "c", "image": "quay.io/org/missing:1"}]},
        },
    },
}


def test_serve_prints_its_kubeconfig_serves_kubectl_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    kubeconfig, audit = tmp_path / "kubeconfig", tmp_path / "audit.jsonl"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simcluster",
            "serve",
            "--nodes=2",
            "--image=quay.io/org/app:1=0.1",
            f"--kubeconfig={kubeconfig}",
            f"--audit-log={audit}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("simulated cluster at https://127.0.0.1:")
        assert line.strip().endswith(f"KUBECONFIG={kubeconfig}")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}
        nodes = subprocess.run(
            [tool("kubectl"), "get", "nodes", "-o", "name"], capture_output=True, text=True, env=env
        )
        assert nodes.stdout.split() == ["node/node-1", "node/node-2"], nodes.stderr
        manifest = tmp_path / "ds.json"
        manifest.write_text(json.dumps(DAEMONSET))
        applied = subprocess.run(
            [tool("kubectl"), "apply", "-f", str(manifest)], capture_output=True, text=True, env=env
        )
        assert applied.returncode == 0, applied.stderr
        message = ""
        deadline = time.monotonic() + 30
        while "repository does not exist" not in message and time.monotonic() < deadline:
            pods = subprocess.run(
                [tool("kubectl"), "get", "pods", "-o", "json"],
                capture_output=True,
                text=True,
                env=env,
            )
            statuses = [
                s
                for p in json.loads(pods.stdout)["items"]
                for s in (p.get("status") or {}).get("containerStatuses") or []
            ]
            waiting = [s["state"].get("waiting") or {} for s in statuses]
            message = " ".join(w.get("message", "") for w in waiting)
            time.sleep(0.2)  # polling a separate process: there is no event to await from here
        # A repository the registry never heard of: containerd's text for it (the simulated
        # kubelets' table in simcluster/nodes/messages.py cites its source).
        assert (
            'failed to pull and unpack image "quay.io/org/missing:1": failed to resolve reference '
            '"quay.io/org/missing:1": pull access denied, repository does not exist or may '
            "require authorization"
        ) in message
        entries = [json.loads(line) for line in audit.read_text().splitlines()]
        assert ("create", "daemonsets", 201) in [
            (e["verb"], e["resource"], e["code"]) for e in entries
        ]
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0


def test_the_readme_await_against_make_sim_pulls_with_the_default_helper_image(
    tmp_path: Path,
) -> None:
    """Issue 19: `make sim`'s registry lacked the project's own image, so the default
    `--helper-image` failed on every node (exit 4); it holds it, as ghcr.io will once the
    release workflow has run."""
    kubeconfig = tmp_path / "kubeconfig"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simcluster",
            "serve",
            "--nodes=2",
            "--image=quay.io/example/model:1=0.2",
            f"--kubeconfig={kubeconfig}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("simulated cluster at ")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}
        env = {k: v for k, v in env.items() if not k.startswith("IMAGE_AWAITER_")}
        ran = subprocess.run(
            [sys.executable, "-m", "image_awaiter", "await", "--image", "quay.io/example/model:1"],
            capture_output=True,
            text=True,
            env={**env, "IMAGE_AWAITER_LOG_FORMAT": "json", "IMAGE_AWAITER_INTERVAL": "200ms"},
            cwd=ROOT,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr[-2000:]
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0

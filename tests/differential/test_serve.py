"""`python -m simcluster serve --control-plane real` from the outside: without the binaries it
exits 2 naming `make control-plane`; with them, one ready line naming the kubeconfig once the
nodes are Ready, real kubectl sees the real server, SIGTERM stops everything and exits 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from simcluster.controlplane import binaries
from simcluster.nodes.factory import KUBERNETES_RELEASE
from tests.differential.conftest import ROOT


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "simcluster", "serve", "--control-plane", "real", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_serve_real_without_built_binaries_exits_2_naming_make_control_plane(
    tmp_path: Path,
) -> None:
    env = {**os.environ, binaries.BIN_ENV: str(tmp_path)}
    server = _serve(env=env)
    stdout, stderr = server.communicate(timeout=60)
    assert (server.returncode, stdout) == (2, "")
    assert "make control-plane" in stderr


def test_serve_real_is_ready_with_ready_nodes_for_kubectl_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    kubeconfig, audit = tmp_path / "kubeconfig", tmp_path / "audit.jsonl"
    server = _serve("--nodes=2", f"--kubeconfig={kubeconfig}", f"--audit-log={audit}")
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith(f"real control plane (Kubernetes {KUBERNETES_RELEASE}) at https://")
        assert line.strip().endswith(f"KUBECONFIG={kubeconfig}")
        kubectl = str(binaries.bin_dir() / "kubectl")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}
        version = subprocess.run(
            [kubectl, "version", "-o", "json"], capture_output=True, text=True, env=env
        )
        assert json.loads(version.stdout)["serverVersion"]["gitVersion"] == KUBERNETES_RELEASE
        nodes = subprocess.run(
            [kubectl, "get", "nodes", "-o", "json"], capture_output=True, text=True, env=env
        )
        ready = {
            n["metadata"]["name"]: next(
                c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready"
            )
            for n in json.loads(nodes.stdout)["items"]
        }
        assert ready == {"node-1": "True", "node-2": "True"}
        assert '"kind":"Event","apiVersion":"audit.k8s.io/v1"' in audit.read_text()
        port = int(line.split("https://127.0.0.1:")[1].split(";")[0])
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, "kube-apiserver still listens"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

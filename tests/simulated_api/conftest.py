"""A simulated cluster served over TLS, with an admin kubeconfig, for the real kubectl and helm."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from simcluster import SimCluster

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    local = ROOT / ".tools" / "bin" / name
    found = str(local) if local.is_file() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (make helm fetches it)")
    return found


@dataclass
class Api:
    sim: SimCluster
    kubeconfig: Path
    home: Path

    def run(
        self, program: str, *args: str, token: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [tool(program), *args]
        if token is not None:
            command.append(f"--token={token}")
        return subprocess.run(command, capture_output=True, text=True, env=self.env(), timeout=120)

    def popen(self, program: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [tool(program), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(self.home / "helm-cache"),
            "HELM_CONFIG_HOME": str(self.home / "helm-config"),
            "HELM_DATA_HOME": str(self.home / "helm-data"),
        }

    def kubectl(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, token=token)

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    sim = SimCluster(seed=9, audit_log=tmp_path / "audit.jsonl")
    sim.use_self_signed_tls(tmp_path / "tls")
    sim.start()
    try:
        sim.add_node("node-a", labels={"node-role.kubernetes.io/worker": ""})
        sim.add_node("node-b")
        kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
        home = tmp_path / "home"
        home.mkdir()
        yield Api(sim, kubeconfig, home)
    finally:
        sim.stop()

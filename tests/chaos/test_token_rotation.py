"""Service-account token rotation mid-run, through the real in-cluster configuration path.

The simulated API server serves HTTPS with a throwaway CA; the awaiter runs as in a pod
(KUBERNETES_SERVICE_HOST/PORT, a token file, ca.crt). Only the file locations and the client's
one-minute re-read period are moved for the test, by a sitecustomize module on PYTHONPATH: the
product code path (kubernetes.config.load_incluster_config and its refresh hook) is unchanged.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from simcluster import SimCluster
from tests.conftest import cli_command, cli_env
from tests.integration.helpers import our_daemonsets

SITECUSTOMIZE = """
import datetime
import kubernetes.config.incluster_config as incluster
incluster.SERVICE_TOKEN_FILENAME = {token!r}
incluster.SERVICE_CERT_FILENAME = {ca!r}
_init = incluster.InClusterConfigLoader.__init__
def _fast_refresh(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self._token_refresh_period = datetime.timedelta(seconds=0.5)
incluster.InClusterConfigLoader.__init__ = _fast_refresh
"""


@pytest.fixture
def tls_sim(tmp_path: Path) -> Any:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    made = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=sim-apiserver",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    sim = SimCluster(seed=3)
    sim.tls = (str(cert), str(key))
    sim.start()
    yield sim
    sim.stop()


def test_a_rotated_service_account_token_is_picked_up_mid_run(tls_sim: Any, tmp_path: Path) -> None:
    sim = tls_sim
    account = tmp_path / "serviceaccount"
    account.mkdir()
    token_file = account / "token"
    token_file.write_text("token-one")
    (account / "ca.crt").write_text(Path(sim.tls[0]).read_text())
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        SITECUSTOMIZE.format(token=str(token_file), ca=str(account / "ca.crt"))
    )
    sim.tokens.clear()
    sim.tokens.add("token-one")
    sim.registry.add("quay.io/org/slow:1", pull_seconds=4)
    sim.add_node("a")
    env = cli_env(
        {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(sim.port),
            "POD_NAMESPACE": "default",
            "PYTHONPATH": os.pathsep.join([str(site), os.getcwd()]),
        }
    )
    proc = subprocess.Popen(
        cli_command(
            [
                "await",
                "--image",
                "quay.io/org/slow:1",
                "--interval",
                "200ms",
                "--log-format",
                "json",
                "-v",
            ]
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert sim.wait_for(lambda s: len(our_daemonsets(s)) == 1, timeout=30)
    # The kubelet rotates the projected token: the new one is valid at once, the old one
    # a little longer; the client must switch before the old one is revoked.
    rotated = account / "token.new"
    rotated.write_text("token-two")
    rotated.replace(token_file)
    sim.tokens.add("token-two")
    assert sim.wait_for(lambda s: s.token_uses["token-two"] > 0, timeout=20)
    sim.tokens.discard("token-one")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert our_daemonsets(sim) == []
    assert "token-one" not in out + err and "token-two" not in out + err

"""On the real control plane: the awaiter reads its initial state as streaming lists from
kube-apiserver's watch cache (`sendInitialEvents=true`, KEP-3157, on by default since 1.32),
which the real server answers, so it never falls back to paged quorum lists of nodes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simcluster.controlplane.endpoints import Endpoint
from tests.realcp.awaiter import run_awaiter, stand_in_pod
from tests.realcp.charts import apply_identity, chart_without, kubectl, token_kubeconfig
from tests.realcp.nodes import ready_node

IMAGE = "quay.io/example/model:1"


@pytest.fixture
def node(control_plane: Endpoint, namespace: str) -> Iterator[str]:
    with ready_node(control_plane.admin, f"{namespace}-node") as name:
        yield name


def _requests(control_plane: Endpoint, user: str) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in control_plane.audit_log.read_text().splitlines()]
    return [e for e in entries if e["user"]["username"] == user]


def test_initial_reads_are_streaming_lists_the_real_watch_cache_answers(
    control_plane: Endpoint, namespace: str, node: str, tmp_path: Path
) -> None:
    release = namespace[-20:].strip("-")
    chart = chart_without(None, tmp_path)
    account = apply_identity(control_plane, chart=chart, release=release, namespace=namespace)
    kubeconfig = token_kubeconfig(
        control_plane, account=account, namespace=namespace, path=tmp_path / "kubeconfig"
    )
    try:
        ran = run_awaiter(
            kubeconfig, tmp_path, "await", "--image", IMAGE, "--timeout", "3s",
            "--node-selector", f"kubernetes.io/hostname={node}",
            env=stand_in_pod(control_plane.admin, namespace, account=account),
        )  # fmt: skip
    finally:
        kubectl(control_plane, "delete", "clusterrole,clusterrolebinding", "--ignore-not-found",
                "-l", f"app.kubernetes.io/instance={release}")  # fmt: skip
    assert ran.code == 1, ran.stderr  # no kubelet here: it times out, having read everything
    mine = _requests(control_plane, f"system:serviceaccount:{namespace}:{account}")
    streaming = {
        e["objectRef"]["resource"]
        for e in mine
        if "sendInitialEvents=true" in e["requestURI"] and e["responseStatus"]["code"] == 200
    }
    assert {"nodes", "pods", "daemonsets", "events"} <= streaming, streaming
    paged_node_lists = [
        e["requestURI"]
        for e in mine
        if e["verb"] == "list" and e["objectRef"]["resource"] == "nodes"
    ]
    assert paged_node_lists == []

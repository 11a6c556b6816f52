"""On the real control plane (kube-apiserver's RBAC authorizer, not ours): the chart's RBAC is
sufficient (the awaiter, with a token of the chart's ServiceAccount, makes no request that is
refused) and minimal: with any ONE required rule removed the run ends with the real 403 and
exit 3; without the optional events rule it goes on with a warning.

The awaiter runs as the hook's ServiceAccount from the test (a TokenRequest token, as the pod's
projected one): the proof is about what the API server lets that identity do, which needs no
kubelet. The rules are read from the chart's templates, so a rule added later gets its case."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simcluster.controlplane.endpoints import Endpoint
from tests.realcp.awaiter import run_awaiter, stand_in_pod
from tests.realcp.charts import (
    apply_identity,
    chart_without,
    kubectl,
    rule_id,
    rules,
    token_kubeconfig,
)
from tests.realcp.nodes import ready_node

IMAGE = "quay.io/example/model:1"
OPTIONAL = "role.yaml:events"  # pull times and sizes only: README, RBAC


@pytest.fixture
def node(control_plane: Endpoint, namespace: str) -> Iterator[str]:
    with ready_node(control_plane.admin, f"{namespace}-node") as name:
        yield name


def _refused(control_plane: Endpoint, user: str) -> set[tuple[str, str]]:
    """(verb, resource) of every request by `user` the API server answered 403."""
    refused = set()
    for line in control_plane.audit_log.read_text().splitlines():
        entry: dict[str, Any] = json.loads(line)
        if entry["user"]["username"] == user and entry["responseStatus"]["code"] == 403:
            refused.add((entry["verb"], entry["objectRef"]["resource"]))
    return refused


def _run_as_chart(
    control_plane: Endpoint,
    namespace: str,
    node: str,
    tmp_path: Path,
    *,
    case: tuple[str, str] | None,
) -> tuple[Any, str]:
    """The awaiter as the chart's ServiceAccount, with one rule removed (or none); the run and
    the ServiceAccount's user name."""
    chart = chart_without(case, tmp_path)
    release = namespace[-20:].strip("-")
    account = apply_identity(control_plane, chart=chart, release=release, namespace=namespace)
    kubeconfig = token_kubeconfig(
        control_plane, account=account, namespace=namespace, path=tmp_path / "kubeconfig"
    )
    hook = stand_in_pod(control_plane.admin, namespace, account=account)
    try:
        ran = run_awaiter(
            kubeconfig, tmp_path, "await", "--image", IMAGE, "--timeout", "4s",
            "--node-selector", f"kubernetes.io/hostname={node}", env=hook,
        )  # fmt: skip
    finally:  # the cluster-scoped half of the chart's identity outlives the namespace
        kubectl(control_plane, "delete", "clusterrole,clusterrolebinding", "--ignore-not-found",
                "-l", f"app.kubernetes.io/instance={release}")  # fmt: skip
    return ran, f"system:serviceaccount:{namespace}:{account}"


def test_the_chart_grants_four_rules_daemonsets_pods_events_and_nodes() -> None:
    assert sorted(rule_id(case) for case in rules()) == [
        "clusterrole.yaml:nodes",
        "role.yaml:daemonsets",
        "role.yaml:events",
        "role.yaml:pods",
    ]


def test_with_every_rule_nothing_the_awaiter_asks_is_refused(
    control_plane: Endpoint, namespace: str, node: str, tmp_path: Path
) -> None:
    ran, user = _run_as_chart(control_plane, namespace, node, tmp_path, case=None)
    assert ran.code == 1, ran.stderr  # no kubelet pulls here: the run times out, unrefused
    assert "timed out" in ran.last_line
    assert _refused(control_plane, user) == set()
    recorded = control_plane.admin.get(f"/api/v1/namespaces/{namespace}/events")["items"]
    on_its_pod = {e["reason"] for e in recorded if e["involvedObject"]["kind"] == "Pod"}
    assert "ImagesPulling" in on_its_pod, on_its_pod  # events create, as the hook's pod


def test_without_the_events_rule_the_run_goes_on_and_only_events_are_refused(
    control_plane: Endpoint, namespace: str, node: str, tmp_path: Path
) -> None:
    [case] = [case for case in rules() if rule_id(case) == OPTIONAL]
    ran, user = _run_as_chart(control_plane, namespace, node, tmp_path, case=case)
    assert ran.code == 1, ran.stderr
    assert '"event": "watch.unavailable"' in ran.stderr
    refused = _refused(control_plane, user)
    assert refused and {resource for _, resource in refused} == {"events"}, refused


@pytest.mark.parametrize(
    "case", [case for case in rules() if rule_id(case) != OPTIONAL], ids=rule_id
)
def test_removing_any_one_required_rule_gives_the_real_403_and_exit_3(
    case: tuple[str, str], control_plane: Endpoint, namespace: str, node: str, tmp_path: Path
) -> None:
    resource = rule_id(case).split(":")[1]
    ran, user = _run_as_chart(control_plane, namespace, node, tmp_path, case=case)
    assert ran.code == 3, ran.stderr
    refused = _refused(control_plane, user)
    assert resource in {r for _, r in refused}, refused
    # the API server's own words, and what to grant
    assert f'User "{user}" cannot' in ran.last_line, ran.last_line
    assert resource in ran.last_line

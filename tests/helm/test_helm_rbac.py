"""The chart's RBAC is minimal: with any ONE of its rules removed, the first `helm install`
fails in the hook, refused by the simulated API server's RBAC enforcement. (That the RBAC is
sufficient, with no request refused, is test_helm_lifecycle's
test_the_awaiters_service_account_makes_no_request_its_rbac_refuses.)

The rules are read from the chart's templates, so a rule added later gets its own case."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helm.conftest import BASE, CHART, NAMESPACE, Cluster
from tests.realcp.charts import rule_id, rules

# Reading the kubelets' events only adds pull times and sizes to the report: without that rule
# the awaiter warns and goes on (README, RBAC), so its absence shows as a refusal, not a failure.
OPTIONAL = "role.yaml:events"


def test_the_chart_grants_four_rules_daemonsets_pods_events_and_nodes() -> None:
    assert sorted(rule_id(case) for case in rules()) == [
        "clusterrole.yaml:nodes",
        "role.yaml:daemonsets",
        "role.yaml:events",
        "role.yaml:pods",
    ]


def _without(case: tuple[str, str], tmp_path: Path) -> Path:
    template, rule = case
    chart = tmp_path / "image-awaiter"
    shutil.copytree(CHART, chart)
    path = chart / "templates" / template
    path.write_text(path.read_text().replace(rule, "", 1))
    assert rule not in path.read_text()
    return chart


def _refused(cluster: Cluster) -> set[tuple[str, int]]:
    return {
        (e.resource, e.code)
        for e in cluster.audit_since()
        if e.user.startswith("system:serviceaccount:") and e.code == 403
    }


def test_without_the_events_rule_the_install_succeeds_and_only_events_are_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    [case] = [case for case in rules() if rule_id(case) == OPTIONAL]
    chart = _without(case, tmp_path)

    done = cluster.helm("install", "hub", str(chart), "--set", f"images={{{BASE}}}")

    assert done.returncode == 0, done.stderr
    assert cluster.status("hub")["info"]["status"] == "deployed"
    assert {resource for resource, _ in _refused(cluster)} == {"events"}


@pytest.mark.parametrize(
    "case", [case for case in rules() if rule_id(case) != OPTIONAL], ids=rule_id
)
def test_removing_any_one_required_rule_makes_the_first_install_fail_with_a_refusal(
    case: tuple[str, str], cluster: Cluster, tmp_path: Path
) -> None:
    chart = _without(case, tmp_path)
    resource = rule_id(case).split(":")[1]

    done = cluster.helm("install", "hub", str(chart), "--set", f"images={{{BASE}}}")

    assert done.returncode != 0, done.stdout
    assert cluster.status("hub")["info"]["status"] == "failed"
    refused = _refused(cluster)
    assert (resource, 403) in refused, refused
    [pod] = cluster.hook_pods()
    [status] = pod["status"]["containerStatuses"]
    assert status["state"]["terminated"]["exitCode"] == 3  # forbidden: an API failure
    assert cluster.sim.objects("daemonsets", NAMESPACE) == []

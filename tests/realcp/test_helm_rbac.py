"""tests/helm/test_helm_rbac.py on the real control plane: with any ONE of the chart's required
RBAC rules removed, the first `helm install` of the application chart fails in the hook,
refused by kube-apiserver's own RBAC (a 403 in its audit log, the hook's pod exiting 3);
without the optional events rule it succeeds and only events are refused. The hook's pod is a
process of the HTTP kubelet simulator running as the chart's ServiceAccount (its projected
token), installed by the real helm 4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simcluster.controlplane.endpoints import Endpoint
from tests.realcp.charts import chart_without, rule_id, rules
from tests.realcp.releases import BASE, RELEASE, Story, release_world

OPTIONAL = "role.yaml:events"  # pull times and sizes only: README, RBAC


def _refused(story: Story) -> set[tuple[str, str]]:
    """(verb, resource) of each request of a ServiceAccount of the story's namespace that the
    API server answered 403."""
    prefix = f"system:serviceaccount:{story.namespace}:"
    refused = set()
    for line in story.control_plane.audit_log.read_text().splitlines():
        entry = json.loads(line)
        if entry["user"]["username"].startswith(prefix) and entry["responseStatus"]["code"] == 403:
            refused.add((entry["verb"], entry["objectRef"]["resource"]))
    return refused


def test_without_the_events_rule_the_install_succeeds_and_only_events_are_refused(
    control_plane: Endpoint, tmp_path: Path
) -> None:
    [case] = [case for case in rules() if rule_id(case) == OPTIONAL]
    changed = chart_without(case, tmp_path / "changed")
    with release_world(control_plane, helm="helm4", home=tmp_path, dependency=changed) as story:
        done = story.helm("install", RELEASE, str(story.chart), *story.values(BASE))
        assert done.returncode == 0, done.stderr
        assert story.status() == "deployed"
        refused = _refused(story)
        assert refused and {resource for _, resource in refused} == {"events"}, refused


@pytest.mark.parametrize(
    "case", [case for case in rules() if rule_id(case) != OPTIONAL], ids=rule_id
)
def test_removing_any_one_required_rule_makes_the_first_install_fail_with_the_real_403(
    case: tuple[str, str], control_plane: Endpoint, tmp_path: Path
) -> None:
    resource = rule_id(case).split(":")[1]
    changed = chart_without(case, tmp_path / "changed")
    with release_world(control_plane, helm="helm4", home=tmp_path, dependency=changed) as story:
        done = story.helm("install", RELEASE, str(story.chart), *story.values(BASE))
        assert done.returncode != 0, done.stdout
        assert story.status() == "failed"
        refused = _refused(story)
        assert resource in {r for _, r in refused}, refused
        [pod] = story.hook_pods()
        [status] = pod["status"]["containerStatuses"]
        terminated = status["state"]["terminated"]
        assert terminated["exitCode"] == 3, terminated  # forbidden: an API failure
        assert "cannot" in terminated["message"] and resource in terminated["message"]
        assert story.get("/apis/apps/v1/namespaces/{ns}/daemonsets") == []

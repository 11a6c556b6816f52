"""The chart's node gate (gate.enabled): what it deploys, with which rights, and that the
Deployment's arguments and its spec ConfigMap are what the real CLI accepts."""

from __future__ import annotations

from typing import Any

import yaml

from image_awaiter.cli.gate import gate_command, gate_settings
from image_awaiter.core.gating import Enforce
from image_awaiter.spec.settings import resolve_job
from tests.chart.conftest import Render, by_kind, gate_daemonsets, one

GATE_TAINT = "startup-taint.cluster-autoscaler.kubernetes.io/images-pending"


def rules(role: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [
        (group, resource, tuple(rule["verbs"]))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    ]


def test_the_gate_is_off_by_default(render: Render) -> None:
    objects = render("default-values.yaml")
    assert by_kind(objects, "Deployment") == []
    assert by_kind(objects, "PodDisruptionBudget") == []
    assert gate_daemonsets(objects) == []


def test_the_gate_deploys_two_replicas_with_a_budget_probes_and_its_own_toleration(
    render: Render,
) -> None:
    objects = render("gate-values.yaml")
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    pod = deployment["spec"]["template"]["spec"]
    assert {"key": GATE_TAINT, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_gate_replaces_the_continuous_puller(render: Render) -> None:
    objects = render("gate-values.yaml")  # continuous.enabled is true there too
    assert by_kind(objects, "DaemonSet") == []
    assert len(gate_daemonsets(objects)) == 2  # one per pull group


def test_the_gate_has_least_rbac(render: Render) -> None:
    objects = render("gate-values.yaml")
    cluster_roles = [
        r for r in by_kind(objects, "ClusterRole") if r["metadata"]["name"].endswith("gate-nodes")
    ]
    assert rules(cluster_roles[0]) == [
        ("", "nodes", ("get", "list", "watch", "patch")),
        ("", "nodes/status", ("patch",)),
    ]
    roles = {r["metadata"]["name"]: r for r in by_kind(objects, "Role")}
    gate_role = roles["hub-image-awaiter-gate"]
    assert rules(gate_role) == [
        ("apps", "daemonsets", ("get", "list", "watch", "create", "update")),
        ("apps", "deployments", ("get",)),
        ("", "pods", ("get", "list", "watch")),
        ("coordination.k8s.io", "leases", ("create",)),
        ("coordination.k8s.io", "leases", ("get", "update")),
    ]
    events = [r for r in roles.values() if r["metadata"].get("namespace") == "default"]
    assert [rules(r) for r in events] == [[("", "events", ("create", "patch"))]]
    gate_roles = [gate_role, *events, *cluster_roles]
    assert all("delete" not in verbs for role in gate_roles for _, _, verbs in rules(role))


def test_the_deployments_arguments_and_spec_are_what_the_cli_accepts(render: Render) -> None:
    objects = render("gate-values.yaml")
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[0] == "gate"
    context = gate_command.make_context("gate", list(args[1:]))
    settings = gate_settings(context.params, {"POD_NAME": "hub-image-awaiter-gate-0"})
    assert settings.taint.key == GATE_TAINT
    assert settings.enforce is Enforce.BOTH
    assert settings.rules.on_max_wait == "keep"
    assert settings.owner_deployment == "hub-image-awaiter-gate"
    [configmap] = [
        c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("gate-spec")
    ]
    spec_path = settings.base.daemonset_specs[0]
    assert spec_path == "/etc/image-awaiter/daemonset.yaml"
    documents = list(yaml.safe_load_all(configmap["data"]["daemonset.yaml"]))
    assert len(documents) == 2


def test_the_gate_spec_resolves_into_one_pull_group_per_placement(
    render: Render, tmp_path: Any
) -> None:
    objects = render("gate-values.yaml")
    [configmap] = [
        c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("gate-spec")
    ]
    spec = tmp_path / "daemonset.yaml"
    spec.write_text(configmap["data"]["daemonset.yaml"])
    container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    args = [a if a != "/etc/image-awaiter/daemonset.yaml" else str(spec) for a in container["args"]]
    context = gate_command.make_context("gate", args[1:])
    job = resolve_job(gate_settings(context.params, {}).base)
    originals = [{i.original for i in g.images} for g in job.groups]
    assert "quay.io/jupyter/datascience-notebook:2025-06-02" in originals[0]
    assert "nvcr.io/nvidia/pytorch:25.01-py3" in originals[1]
    assert "nvcr.io/nvidia/pytorch:25.01-py3" not in originals[0]

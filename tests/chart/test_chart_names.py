"""Resource names and labels the chart renders are valid for a real API server whatever the alias,
release name or overrides (issue 9: `alias: prePuller` rendered `r1-prePuller-hook`, which an
API server rejects), and every name comes from `_helpers.tpl` (issue 10)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from image_awaiter.spec.pullers import prepare_for_run
from tests.chart.conftest import (
    CHART,
    Render,
    by_kind,
    hook_daemonset,
    hook_daemonsets,
    one,
    parent_chart,
)

KUBERNETES_VERSION = "1.33"
# k8s.io/apimachinery/pkg/util/validation: IsDNS1123Subdomain, IsQualifiedName, IsValidLabelValue.
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
HELM_NAME_LIMIT = 63
# The Job controller creates pods with generateName `<job>-` and labels them
# `batch.kubernetes.io/job-name: <job>`; the API server cuts a generateName base to 58 characters
# before adding 5 random ones (k8s.io/apiserver/pkg/storage/names/generate.go:
# maxGeneratedNameLength = 63 - 5), so `<job>-xxxxx` stays whole only up to 63 - len("-xxxxx").
JOB_NAME_LIMIT = 57
# Helm's own limit for release names.
LONG_RELEASE = "jupyterhub-production-eu-west-1-research-computing-01"
LONG_NAMESPACE = "research-computing-jupyterhub-production-eu-west-1-namespace-01"


def name_problems(obj: dict[str, Any]) -> list[str]:
    """Every way `obj`'s name and labels (and its pod template's) break the API server's rules."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    problems = []
    limit = JOB_NAME_LIMIT if kind == "Job" else HELM_NAME_LIMIT
    if not DNS1123_SUBDOMAIN.fullmatch(name) or len(name) > limit:
        problems.append(f"{kind} name {name!r} ({len(name)} chars, limit {limit})")
    label_sets = [obj["metadata"].get("labels") or {}]
    template = obj.get("spec", {}).get("template")
    if template:
        label_sets.append(template["metadata"].get("labels") or {})
        label_sets.append(obj["spec"].get("selector", {}).get("matchLabels") or {})
    for labels in label_sets:
        for key, value in labels.items():
            prefix, _, short = key.rpartition("/")
            if prefix and not DNS1123_SUBDOMAIN.fullmatch(prefix):
                problems.append(f"{kind} {name}: label key prefix {prefix!r}")
            if not QUALIFIED_NAME.fullmatch(short) or len(short) > 63:
                problems.append(f"{kind} {name}: label key {key!r}")
            if not LABEL_VALUE.fullmatch(str(value)) or len(str(value)) > 63:
                problems.append(f"{kind} {name}: label {key}={value!r}")
    return problems


def referenced_names(objects: list[dict[str, Any]]) -> set[str]:
    """Names one rendered object uses to point at another (ServiceAccount, ConfigMap, Role,
    PriorityClass): they must match objects the chart renders."""
    names = set()
    for obj in objects:
        if "roleRef" in obj:
            names.add(obj["roleRef"]["name"])
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        names.update(v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v)
        for field in ("serviceAccountName", "priorityClassName"):
            if field in pod:
                names.add(pod[field])
    return names


def with_hook_daemonset(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*objects, *hook_daemonsets(objects)] if by_kind(objects, "ConfigMap") else objects


def test_a_mixed_case_alias_and_the_longest_release_name_give_valid_names(
    render: Render, tmp_path: Path
) -> None:
    assert len(LONG_RELEASE) == 53 and len(LONG_NAMESPACE) == 63
    parent = parent_chart(tmp_path, alias="prePuller")
    sets = ("prePuller.continuous.enabled=true", "prePuller.puller.priorityClass.create=true")
    for release, namespace in [("r1", "default"), (LONG_RELEASE, LONG_NAMESPACE)]:
        objects = with_hook_daemonset(
            render(chart=parent, release=release, namespace=namespace, sets=sets)
        )
        assert [p for obj in objects for p in name_problems(obj)] == []
        invalid = []
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                invalid.append(f"{obj['kind']} {obj['metadata']['name']}: {error.message}")
        assert invalid == []
        assert {o["kind"] for o in objects} == {
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
            "PriorityClass",
            "ConfigMap",
            "Job",
            "DaemonSet",
        }
        assert referenced_names(objects) <= {o["metadata"]["name"] for o in objects}
    short = render(chart=parent, release="r1")
    assert one(short, "Job")["metadata"]["name"] == "r1-prepuller-hook"
    assert {c["metadata"]["name"] for c in by_kind(short, "ConfigMap")} == {
        "hub-config",
        "r1-prepuller-spec",
    }


def test_long_names_are_cut_in_the_base_so_suffixes_stay_distinct(render: Render) -> None:
    sets = (
        "continuous.enabled=true",
        "puller.imagePullSecret.create=true",
        "puller.imagePullSecret.registry=quay.io",
        "puller.imagePullSecret.username=robot",
        "puller.imagePullSecret.password=not-a-secret",
    )
    objects = render(
        "default-values.yaml", release=LONG_RELEASE, namespace=LONG_NAMESPACE, sets=sets
    )
    hook_secret, continuous_secret = sorted(
        (s["metadata"]["name"] for s in by_kind(objects, "Secret")),
        key=lambda name: not name.endswith("-hook-pull-secret"),
    )
    assert hook_secret.endswith("-hook-pull-secret")
    assert continuous_secret.endswith("-pull-secret") and "-hook-" not in continuous_secret
    suffixes = {
        "Job": "-hook",
        "ConfigMap": "-spec",
        "DaemonSet": "-continuous-puller",
    }
    for kind, suffix in suffixes.items():
        name = one(objects, kind)["metadata"]["name"]
        assert name.endswith(suffix) and LONG_RELEASE[:20] in name, (kind, name)
    assert hook_daemonset(objects)["metadata"]["name"].endswith("-hook-puller")
    cluster_role = one(objects, "ClusterRole")["metadata"]["name"]
    other = render("default-values.yaml", release=f"{LONG_RELEASE[:-1]}2", namespace=LONG_NAMESPACE)
    other_cluster_role = one(other, "ClusterRole")["metadata"]["name"]
    assert cluster_role.endswith("-nodes") and other_cluster_role != cluster_role


@pytest.mark.parametrize("values", sorted(p.name for p in (CHART / "ci").glob("*.yaml")))
def test_every_lint_values_file_renders_valid_names_and_labels(render: Render, values: str) -> None:
    objects = with_hook_daemonset(render(values, release=LONG_RELEASE))
    assert [p for obj in objects for p in name_problems(obj)] == []


def test_the_awaiters_per_run_daemonset_name_from_the_longest_release_is_valid(
    render: Render,
) -> None:
    manifest = hook_daemonset(render("default-values.yaml", release=LONG_RELEASE))
    run = prepare_for_run(
        manifest, run_id="0123abcd", namespace="jhub", owner=None, created_at="2026-01-01T00:00Z"
    )
    assert name_problems(run) == []


def test_name_overrides_replace_the_base_of_every_name(render: Render) -> None:
    named = render("default-values.yaml", sets=("nameOverride=Pre_Puller",))
    assert one(named, "Job")["metadata"]["name"] == "hub-pre-puller-hook"
    assert one(named, "Job")["metadata"]["labels"]["app.kubernetes.io/name"] == "pre-puller"
    full = render("default-values.yaml", sets=("fullnameOverride=Images",))
    names = {o["metadata"]["name"] for o in full}
    assert names == {"images", "images-spec", "images-hook", "jhub-images-nodes"}


def test_no_template_builds_a_resource_name_itself() -> None:
    """Names come from `_helpers.tpl` only: no template calls `fullname` or glues a suffix."""
    offenders = []
    for template in sorted((CHART / "templates").iterdir()):
        if template.name == "_helpers.tpl":
            continue
        for number, line in enumerate(template.read_text().splitlines(), start=1):
            if '"image-awaiter.fullname"' in line or re.search(r"\}\}-[a-z]", line):
                offenders.append(f"{template.name}:{number}: {line.strip()}")
    assert offenders == []


def test_every_template_opens_with_a_comment_saying_what_it_is_for() -> None:
    templates = sorted((CHART / "templates").iterdir())
    assert [t.name for t in templates if not t.read_text().startswith("{{/*")] == []

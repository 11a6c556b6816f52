"""The simulated apiserver's pure decisions, as literal tables: name and label validation texts,
PATCH semantics, server-side apply ownership, and RBAC grants."""

from __future__ import annotations

from typing import Any

import pytest

from simcluster.apiserver import patching, rbac, schemas, validation
from simcluster.apiserver.kinds import BY_RESOURCE
from simcluster.apiserver.store import StoreError

SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


@pytest.mark.parametrize(
    ("resource", "name", "errors"),
    [
        ("configmaps", "r1-pre-puller-spec", []),
        ("configmaps", "r1.spec", []),
        ("configmaps", "r1-prePuller-spec", [SUBDOMAIN]),
        ("namespaces", "team.a", ["must not contain dots"]),
        ("namespaces", "Team", [LABEL]),
        ("namespaces", "a" * 64, ["must be no more than 63 characters"]),
        ("jobs", "j" * 254, ["must be no more than 253 characters"]),
        ("roles", "system:image-awaiter", []),
        ("roles", "a/b", ["may not contain '/'"]),
    ],
)
def test_object_names_follow_each_kinds_rule(resource: str, name: str, errors: list[str]) -> None:
    found = validation.object_meta(BY_RESOURCE[resource], {"name": name})
    assert [e.body for e in found] == [f'Invalid value: "{name}": {m}' for m in errors]


def test_an_invalid_configmap_name_gives_the_apiservers_status_message() -> None:
    kind = BY_RESOURCE["configmaps"]
    errors = validation.check(kind, {"metadata": {"name": "r1-prePuller-spec"}})
    body = validation.status(kind, "r1-prePuller-spec", errors)
    assert body["message"] == (
        'ConfigMap "r1-prePuller-spec" is invalid: metadata.name: Invalid value: '
        f'"r1-prePuller-spec": {SUBDOMAIN}'
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "r1-prePuller-spec": {SUBDOMAIN}',
            "field": "metadata.name",
        }
    ]


@pytest.mark.parametrize(
    ("labels", "fields"),
    [
        ({"app.kubernetes.io/name": "x", "tier": ""}, []),
        ({"bad key": "x"}, ["metadata.labels"]),
        ({"ok": "not ok!"}, ["metadata.labels"]),
        ({"Example.com/name": "x"}, ["metadata.labels"]),
        ({"k": "v" * 64}, ["metadata.labels"]),
    ],
)
def test_label_keys_and_values_are_checked(labels: dict[str, str], fields: list[str]) -> None:
    found = validation.object_meta(BY_RESOURCE["pods"], {"name": "p", "labels": labels})
    assert [e.field for e in found] == fields


def test_a_job_needs_a_template_with_a_never_or_onfailure_restart_policy() -> None:
    job = {
        "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
    }
    [error] = validation.check(BY_RESOURCE["jobs"], job)
    assert str(error) == (
        'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: '
        '"OnFailure", "Never"'
    )
    assert [str(e) for e in validation.check(BY_RESOURCE["jobs"], {"metadata": {"name": "j"}})] == [
        "spec.template: Required value"
    ]


def test_a_daemonset_selector_is_immutable_on_update() -> None:
    def daemonset(app: str) -> dict[str, Any]:
        return {
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": {"app": app}},
                "template": {
                    "metadata": {"labels": {"app": app}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        }

    kind = BY_RESOURCE["daemonsets"]
    [error] = validation.check(kind, daemonset("b"), daemonset("a"))
    assert error.field == "spec.selector"
    assert error.body.endswith(": field is immutable")


def test_a_pod_update_may_change_images_only() -> None:
    old = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "a:1"}]}}
    image = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "a:2"}]}}
    args = {**old, "spec": {"containers": [{"name": "c", "image": "a:1", "args": ["x"]}]}}
    kind = BY_RESOURCE["pods"]
    assert validation.update(kind, old, image) == []
    [error] = validation.update(kind, old, args)
    assert str(error).startswith("spec: Forbidden: pod updates may not change fields other than")


# ---------------------------------------------------------------------------- patching

POD_SPEC = schemas.field(schemas.for_kind(BY_RESOURCE["pods"]), "spec")


def test_a_strategic_merge_patch_merges_containers_by_name_and_deletes_by_directive() -> None:
    live = {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}
    patch = {"containers": [{"name": "b", "image": "b:2"}, {"name": "a", "$patch": "delete"}]}
    assert patching.strategic_merge(live, patch, POD_SPEC) == {
        "containers": [{"name": "b", "image": "b:2"}]
    }


def test_a_merge_patch_replaces_lists_and_removes_nulls() -> None:
    live = {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n"}
    patched = patching.merge_patch(live, {"containers": [{"name": "c"}], "nodeName": None})
    assert patched == {"containers": [{"name": "c"}]}


def test_a_json_patch_adds_replaces_and_tests() -> None:
    doc = {"metadata": {"labels": {"a": "1"}}, "list": [1, 2]}
    ops = [
        {"op": "test", "path": "/metadata/labels/a", "value": "1"},
        {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
        {"op": "replace", "path": "/list/0", "value": 9},
        {"op": "add", "path": "/list/-", "value": 3},
    ]
    assert patching.json_patch(doc, ops) == {
        "metadata": {"labels": {"a": "1", "b/c": "2"}},
        "list": [9, 2, 3],
    }
    with pytest.raises(StoreError) as failed:
        patching.json_patch(doc, [{"op": "test", "path": "/list/0", "value": 7}])
    assert failed.value.code == 422


def _apply(
    live: dict[str, Any] | None, applied: dict[str, Any], manager: str, force: bool = False
) -> dict[str, Any]:
    return patching.apply(
        live,
        applied,
        manager=manager,
        force=force,
        schema=schemas.for_kind(BY_RESOURCE["configmaps"]),
        api_version="v1",
        now="2026-01-01T00:00:00Z",
    )


def test_server_side_apply_removes_fields_its_manager_stopped_applying() -> None:
    first = _apply(None, {"data": {"a": "1", "b": "2"}}, "helm")
    second = _apply(first, {"data": {"a": "1"}}, "helm")
    assert second["data"] == {"a": "1"}
    [entry] = second["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["fieldsV1"]) == (
        "helm",
        "Apply",
        {"f:data": {"f:a": {}}},
    )


def test_server_side_apply_conflicts_with_another_manager_until_forced() -> None:
    first = _apply(None, {"data": {"a": "1"}}, "helm")
    with pytest.raises(StoreError) as conflict:
        _apply(first, {"data": {"a": "2"}}, "other")
    assert conflict.value.code == 409
    assert conflict.value.message == (
        'Apply failed with 1 conflict: conflict with "helm" using v1: .data.a'
    )
    forced = _apply(first, {"data": {"a": "2"}}, "other", force=True)
    assert forced["data"] == {"a": "2"}
    owners = {e["manager"]: e["fieldsV1"] for e in forced["metadata"]["managedFields"]}
    assert owners == {"other": {"f:data": {"f:a": {}}}}


def test_applying_the_same_value_as_another_manager_shares_the_field() -> None:
    first = _apply(None, {"data": {"a": "1"}}, "helm")
    shared = _apply(first, {"data": {"a": "1"}}, "other")
    assert {e["manager"] for e in shared["metadata"]["managedFields"]} == {"helm", "other"}


# ---------------------------------------------------------------------------- RBAC

ACCOUNT = rbac.service_account_user("apps", "awaiter")
ROLE = {
    "rules": [
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["create", "delete"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["spec"],
            "verbs": ["get"],
        },
    ]
}
NODE_READER = {"rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]}]}


def _binding(kind: str, name: str, subject: dict[str, str]) -> dict[str, Any]:
    return {"roleRef": {"kind": kind, "name": name}, "subjects": [subject]}


@pytest.mark.parametrize(
    ("verb", "group", "resource", "namespace", "name", "allowed"),
    [
        ("list", "", "pods", "apps", "", True),
        ("get", "", "pods/log", "apps", "hook", True),
        ("delete", "", "pods", "apps", "hook", False),
        ("list", "", "pods", "other", "", False),
        ("create", "apps", "daemonsets", "apps", "", True),
        ("create", "", "daemonsets", "apps", "", False),
        ("get", "", "configmaps", "apps", "spec", True),
        ("get", "", "configmaps", "apps", "other", False),
        ("list", "", "configmaps", "apps", "", False),
        ("watch", "", "nodes", "", "", True),
        ("get", "", "nodes", "", "node-a", False),
        ("get", "", "namespaces", "", "apps", False),
    ],
)
def test_a_service_account_may_do_only_what_its_bound_roles_grant(
    verb: str, group: str, resource: str, namespace: str, name: str, allowed: bool
) -> None:
    request = rbac.Attributes(verb, group, resource, namespace, name)
    decided = rbac.allowed(
        ACCOUNT,
        request,
        roles={("apps", "awaiter"): ROLE},
        cluster_roles={("", "node-reader"): NODE_READER},
        role_bindings={
            ("apps", "awaiter"): _binding(
                "Role",
                "awaiter",
                {"kind": "ServiceAccount", "name": "awaiter", "namespace": "apps"},
            )
        },
        cluster_role_bindings={
            ("", "nodes"): _binding(
                "ClusterRole",
                "node-reader",
                {"kind": "Group", "name": "system:serviceaccounts:apps"},
            )
        },
    )
    assert decided is allowed


def test_the_admin_may_do_anything_and_forbidden_messages_name_scope_and_group() -> None:
    request = rbac.Attributes("delete", "apps", "daemonsets", "", "")
    assert rbac.allowed(
        rbac.ADMIN_USER,
        request,
        roles={},
        cluster_roles={},
        role_bindings={},
        cluster_role_bindings={},
    )
    assert rbac.forbidden_message(ACCOUNT, request) == (
        'daemonsets.apps is forbidden: User "system:serviceaccount:apps:awaiter" cannot delete '
        'resource "daemonsets" in API group "apps" at the cluster scope'
    )
    named = rbac.Attributes("get", "", "pods/log", "apps", "hook")
    assert rbac.forbidden_message(ACCOUNT, named) == (
        'pods "hook" is forbidden: User "system:serviceaccount:apps:awaiter" cannot get resource '
        '"pods/log" in API group "" in the namespace "apps"'
    )

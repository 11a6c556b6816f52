"""The real kubectl against the simulated cluster: discovery, Table output, create, apply (client-
and server-side), describe, events, logs, validation and RBAC errors shown verbatim, audit log."""

from __future__ import annotations

import json
from pathlib import Path

from tests.simulated_api.conftest import Api

DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: web
  namespace: default
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example.com/web:IMAGE_TAG
        env:
        - {name: MODE, value: "1"}
"""


def _manifest(tmp_path: Path, tag: str) -> str:
    path = tmp_path / f"ds-{tag}.yaml"
    path.write_text(DAEMONSET.replace("IMAGE_TAG", tag))
    return str(path)


def test_kubectl_get_nodes_wide_prints_the_apiservers_columns(api: Api) -> None:
    result = api.kubectl("get", "nodes", "-o", "wide")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert "CONTAINER-RUNTIME" in header
    assert [r.split()[:3] for r in rows] == [
        ["node-a", "Ready", "worker"],
        ["node-b", "Ready", "<none>"],
    ]
    assert result.stderr == ""


def test_kubectl_create_namespace_is_stored_and_audited_as_the_admin(api: Api) -> None:
    result = api.kubectl("create", "namespace", "demo")
    assert result.stdout.strip() == "namespace/demo created", result.stderr
    namespace = api.sim.store.get("namespaces", "demo")
    assert namespace is not None
    assert namespace["metadata"]["labels"] == {"kubernetes.io/metadata.name": "demo"}
    [entry] = [e for e in api.sim.audit.clients() if e.verb == "create"]
    assert (entry.user, entry.resource, entry.code) == ("kubernetes-admin", "namespaces", 201)


def test_an_invalid_name_is_refused_with_the_apiservers_message_verbatim(api: Api) -> None:
    result = api.kubectl("create", "configmap", "r1-prePuller-spec", "--from-literal=a=b")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'error: failed to create configmap: ConfigMap "r1-prePuller-spec" is invalid: '
        'metadata.name: Invalid value: "r1-prePuller-spec": a lowercase RFC 1123 subdomain '
        "must consist of lower case alphanumeric characters, '-' or '.', and must start and "
        "end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )
    assert api.sim.objects("configmaps") == []


def test_kubectl_apply_client_side_then_server_side_updates_one_daemonset(
    api: Api, tmp_path: Path
) -> None:
    first = api.kubectl("apply", "-f", _manifest(tmp_path, "1"))
    assert first.stdout.strip() == "daemonset.apps/web created", first.stderr
    second = api.kubectl("apply", "-f", _manifest(tmp_path, "2"))
    assert second.stdout.strip() == "daemonset.apps/web configured", second.stderr
    third = api.kubectl("apply", "--server-side", "-f", _manifest(tmp_path, "3"))
    assert third.stdout.strip() == "daemonset.apps/web serverside-applied", third.stderr
    [ds] = api.sim.objects("daemonsets", "default")
    [container] = ds["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/web:3"
    assert container["env"] == [{"name": "MODE", "value": "1"}]
    managers = {(m["manager"], m["operation"]) for m in ds["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers
    assert ds["metadata"]["generation"] == 3
    wide = api.kubectl("get", "ds", "-o", "wide")
    assert "registry.example.com/web:3" in wide.stdout
    assert "app=web" in wide.stdout


def test_a_server_side_apply_by_another_manager_conflicts_until_forced(
    api: Api, tmp_path: Path
) -> None:
    assert api.kubectl("apply", "--server-side", "-f", _manifest(tmp_path, "1")).returncode == 0
    other = ["apply", "--server-side", "--field-manager=other", "-f", _manifest(tmp_path, "2")]
    refused = api.kubectl(*other)
    assert refused.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl"' in refused.stderr
    assert '.spec.template.spec.containers[name="web"].image' in refused.stderr
    forced = api.kubectl(*other, "--force-conflicts")
    assert forced.returncode == 0, forced.stderr
    [ds] = api.sim.objects("daemonsets", "default")
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.com/web:2"


def test_kubectl_describe_node_and_get_events_show_the_nodes_events(api: Api) -> None:
    api.sim.create(
        "events",
        {
            "metadata": {"name": "node-a.17f0"},
            "involvedObject": {"kind": "Node", "name": "node-a", "uid": "node-a"},
            "reason": "NodeReady",
            "message": "Node node-a status is now: NodeReady",
            "type": "Normal",
            "source": {"component": "kubelet", "host": "node-a"},
            "count": 1,
        },
        "default",
    )
    described = api.kubectl("describe", "node", "node-a")
    assert described.returncode == 0, described.stderr
    assert "Name:               node-a" in described.stdout
    assert "Node node-a status is now: NodeReady" in described.stdout
    events = api.kubectl("get", "events")
    assert events.stdout.splitlines()[0].split() == [
        "LAST",
        "SEEN",
        "TYPE",
        "REASON",
        "OBJECT",
        "MESSAGE",
    ]
    assert "node/node-a" in events.stdout


def test_kubectl_logs_serves_the_pods_log_bytes(api: Api) -> None:
    api.sim.create(
        "pods",
        {
            "metadata": {"name": "hook"},
            "spec": {"nodeName": "node-a", "containers": [{"name": "main", "image": "busybox:1"}]},
            "status": {"phase": "Succeeded"},
        },
        "default",
    )
    api.sim.pod_logs[("default", "hook")] = b"pulling 1 image\nall nodes ready\n"
    result = api.kubectl("logs", "hook")
    assert result.stdout == "pulling 1 image\nall nodes ready\n", result.stderr
    tail = api.kubectl("logs", "hook", "--tail=1")
    assert tail.stdout == "all nodes ready\n"
    logs = [e for e in api.sim.audit.clients() if e.resource == "pods/log"]
    assert [(e.verb, e.namespace, e.name, e.code) for e in logs] == [
        ("get", "default", "hook", 200)
    ] * 2


def test_a_service_account_token_without_a_grant_is_forbidden_with_the_real_message(
    api: Api,
) -> None:
    api.sim.create("serviceaccounts", {"metadata": {"name": "reader"}}, "default")
    token = api.sim.token_for_service_account("default", "reader")
    refused = api.kubectl("get", "pods", token=token)
    assert refused.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:default:'
        'reader" cannot list resource "pods" in API group "" in the namespace "default"'
    )
    api.sim.create(
        "roles",
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        },
        "default",
    )
    api.sim.create(
        "rolebindings",
        {
            "metadata": {"name": "reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "default"}],
        },
        "default",
    )
    allowed = api.kubectl("get", "pods", token=token)
    assert allowed.returncode == 0, allowed.stderr
    nodes = api.kubectl("get", "nodes", token=token)
    assert 'cannot list resource "nodes" in API group "" at the cluster scope' in nodes.stderr

    def codes() -> list[tuple[str, int]]:
        account = api.sim.audit.by("system:serviceaccount:default:reader")
        return [(e.resource, e.code) for e in account if e.resource]

    assert api.sim.audit.wait_until(lambda: len(codes()) >= 3)  # written after each answer
    assert codes() == [("pods", 403), ("pods", 200), ("nodes", 403)]


def test_an_unknown_token_is_unauthorized(api: Api) -> None:
    result = api.kubectl("get", "pods", token="not-a-token")
    assert result.returncode == 1
    assert "Unauthorized" in result.stderr or "provide credentials" in result.stderr


def test_the_audit_log_file_has_one_json_line_per_request(api: Api, tmp_path: Path) -> None:
    api.kubectl("get", "nodes")
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert len(lines) == len(api.sim.audit.entries)
    clients = [line for line in lines if not line["user_agent"].startswith("kubelet/")]
    [listed] = [line for line in clients if line["resource"] == "nodes"]
    assert {k: listed[k] for k in ("user", "verb", "namespace", "name", "code")} == {
        "user": "kubernetes-admin",
        "verb": "list",
        "namespace": "",
        "name": "",
        "code": 200,
    }


def test_kubectl_get_watch_prints_each_change_as_a_table_row(api: Api) -> None:
    watcher = api.popen("kubectl", "get", "nodes", "--watch")
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().split()[:2] == ["NAME", "STATUS"]
        assert watcher.stdout.readline().split()[:2] == ["node-a", "Ready"]
        assert watcher.stdout.readline().split()[:2] == ["node-b", "Ready"]
        api.sim.set_node_ready("node-a", False)
        assert watcher.stdout.readline().split()[:2] == ["node-a", "NotReady"]
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)


def test_kubectl_auth_can_i_answers_from_the_same_rbac_rules(api: Api) -> None:
    api.sim.create("serviceaccounts", {"metadata": {"name": "reader"}}, "default")
    api.sim.create(
        "clusterroles",
        {
            "metadata": {"name": "log-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}],
        },
    )
    api.sim.create(
        "rolebindings",
        {
            "metadata": {"name": "logs"},
            "roleRef": {"kind": "ClusterRole", "name": "log-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader"}],
        },
        "default",
    )
    token = api.sim.token_for_service_account("default", "reader")
    logs = api.kubectl("auth", "can-i", "get", "pods", "--subresource=log", token=token)
    assert logs.stdout.strip() == "yes", logs.stderr
    elsewhere = api.kubectl(
        "auth", "can-i", "get", "pods", "--subresource=log", "-n", "kube-system", token=token
    )
    assert elsewhere.stdout.strip() == "no"
    assert api.kubectl("auth", "can-i", "delete", "nodes").stdout.strip() == "yes"
    listed = api.kubectl("auth", "can-i", "--list", token=token)  # a protobuf rules review
    assert listed.returncode == 0, listed.stderr
    assert ["pods/log", "[]", "[]", "[get]"] in [
        line.split() for line in listed.stdout.splitlines()
    ]
    impersonated = api.kubectl(
        "auth", "can-i", "delete", "nodes", "--as=system:serviceaccount:default:reader"
    )
    assert impersonated.stdout.strip() == "no"
    whoami = api.kubectl("auth", "whoami", "--as=system:serviceaccount:default:reader")
    assert "system:serviceaccount:default:reader" in whoami.stdout, whoami.stderr

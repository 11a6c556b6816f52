"""Object lifecycle through the real kubectl: optimistic concurrency on replace, generateName,
status subresources, and deletion with each propagationPolicy (dependents by ownerReferences)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.simulated_api.conftest import Api


def _owned_configmap(name: str, owner: dict[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "metadata": {
            "name": name,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": meta["name"], "uid": meta["uid"]}
            ],
        },
        "data": {"k": "v"},
    }


def test_kubectl_replace_with_a_stale_resource_version_is_a_409_conflict(
    api: Api, tmp_path: Path
) -> None:
    created = api.sim.create(
        "configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}}, "default"
    )
    api.kubectl("patch", "configmap", "c", "--type=merge", "-p", '{"data":{"a":"2"}}')
    stale = {**created, "data": {"a": "3"}}
    path = tmp_path / "stale.json"
    path.write_text(json.dumps(stale))
    result = api.kubectl("replace", "-f", str(path))
    assert result.returncode == 1
    assert (
        'Operation cannot be fulfilled on configmaps "c": the object has been modified; please '
        "apply your changes to the latest version and try again"
    ) in result.stderr
    current = api.sim.store.get("configmaps", "c", "default")
    assert current is not None and current["data"] == {"a": "2"}


def test_generate_name_gets_a_random_valid_suffix(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "cm.json"
    path.write_text(
        json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "run-"}})
    )
    result = api.kubectl("create", "-f", str(path), "-o", "name")
    assert result.returncode == 0, result.stderr
    name = result.stdout.strip().removeprefix("configmap/")
    assert name.startswith("run-") and len(name) == len("run-") + 5


def test_a_status_patch_changes_only_status_and_a_main_patch_keeps_it(api: Api) -> None:
    # A pod no controller acts on (bound to no node, not the awaiter image), so its status is
    # the patches' alone; a Job's status belongs to the Job controller (jobs.py).
    api.sim.api_create(
        "pods",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}},
        "default",
    )
    status = api.kubectl(
        "patch",
        "pod",
        "p",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Running"},"spec":{"activeDeadlineSeconds":5}}',
    )
    assert status.returncode == 0, status.stderr
    pod = api.sim.store.get("pods", "p", "default")
    assert pod is not None
    assert pod["status"]["phase"] == "Running"
    assert "activeDeadlineSeconds" not in pod["spec"]
    main = api.kubectl("patch", "pod", "p", "--type=merge", "-p", '{"status":{"phase":"Failed"}}')
    assert main.returncode == 0, main.stderr
    pod = api.sim.store.get("pods", "p", "default")
    assert pod is not None and pod["status"]["phase"] == "Running"


def test_a_jobs_selector_is_generated_on_its_controller_uid(api: Api) -> None:
    job = api.sim.api_create(
        "jobs",
        {
            "metadata": {"name": "j"},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox:1"}],
                    }
                }
            },
        },
        "default",
    )
    assert job["spec"]["selector"]["matchLabels"] == {
        "batch.kubernetes.io/controller-uid": job["metadata"]["uid"]
    }


def test_deletion_cascades_in_background_and_foreground_and_orphans_on_request(api: Api) -> None:
    for policy, cascade in (
        ("background", "background"),
        ("foreground", "foreground"),
        ("orphan", "orphan"),
    ):
        owner = api.sim.create("configmaps", {"metadata": {"name": f"owner-{policy}"}}, "default")
        api.sim.create("configmaps", _owned_configmap(f"child-{policy}", owner), "default")
        result = api.kubectl("delete", "configmap", f"owner-{policy}", f"--cascade={cascade}")
        assert result.returncode == 0, result.stderr
    names = {c["metadata"]["name"] for c in api.sim.objects("configmaps", "default")}
    assert names == {"child-orphan"}
    orphan = api.sim.store.get("configmaps", "child-orphan", "default")
    assert orphan is not None and orphan["metadata"]["ownerReferences"] == []


def test_a_server_dry_run_answers_as_if_written_and_writes_nothing(api: Api) -> None:
    """Issue 17: `kubectl delete node --dry-run=server` really deleted the node."""
    api.sim.add_node("dry-node")
    created = api.kubectl("create", "namespace", "dry", "--dry-run=server")
    deleted = api.kubectl("delete", "node", "dry-node", "--dry-run=server")
    assert (created.returncode, deleted.returncode) == (0, 0), created.stderr + deleted.stderr
    assert created.stdout.strip() == "namespace/dry created (server dry run)"
    assert deleted.stdout.strip() == 'node "dry-node" deleted (server dry run)'
    assert api.sim.store.get("namespaces", "dry") is None
    assert api.sim.store.get("nodes", "dry-node") is not None

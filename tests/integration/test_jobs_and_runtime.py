"""Jobs whose pod runs the real image-awaiter CLI inside the simulated cluster, driven and read
with the real kubernetes client: the Helm hook's shape without Helm. The Job controller and pod
runtime live in tests/simcluster/jobs.py and runtime.py."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config, watch

from tests.integration.helpers import our_daemonsets

AWAITER = "ghcr.io/image-awaiter/image-awaiter:0.1.0"
PRESENT = "quay.io/jupyter/base-notebook:2025-01-01"
MISSING = "registry.example.com/team/never-pushed:1.0"
SLOW = "registry.example.com/team/large-model:2.1"
ACCOUNT = "awaiter"


def allow_everything(sim: Any) -> None:
    """The ServiceAccount the Jobs' pods run as, allowed everything: RBAC itself is proven
    with the chart's own Roles (tests/chart)."""
    sim.create("serviceaccounts", {"metadata": {"name": ACCOUNT}}, namespace="default")
    sim.create(
        "clusterroles",
        {
            "metadata": {"name": ACCOUNT},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        },
    )
    sim.create(
        "clusterrolebindings",
        {
            "metadata": {"name": ACCOUNT},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": ACCOUNT,
            },
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": "default"}],
        },
    )


@pytest.fixture
def api(sim: Any, kubeconfig: Path) -> Iterator[client.ApiClient]:
    allow_everything(sim)
    with config.new_client_from_config(config_file=str(kubeconfig)) as api_client:
        yield api_client


def job_body(
    name: str,
    args: list[str],
    *,
    backoff_limit: int = 0,
    deadline: int | None = None,
    container: dict[str, Any] | None = None,
    volumes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Job shaped like the chart's hook: the awaiter image, its entrypoint, downward-API env."""
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": ACCOUNT,
                "containers": [
                    {
                        "name": "awaiter",
                        "image": AWAITER,
                        "args": [*args, "--log-format", "json", "--interval", "200ms"],
                        "env": [
                            {
                                "name": variable,
                                "valueFrom": {"fieldRef": {"fieldPath": f"metadata.{field}"}},
                            }
                            for variable, field in (
                                ("POD_NAME", "name"),
                                ("POD_UID", "uid"),
                                ("POD_NAMESPACE", "namespace"),
                            )
                        ],
                        **(container or {}),
                    }
                ],
                "volumes": volumes or [],
            }
        },
    }
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


def finished(sim: Any, name: str) -> str | None:
    """The Job's final condition type, None while it runs."""
    job = sim.store.get("jobs", name, "default")
    for condition in ((job or {}).get("status") or {}).get("conditions") or []:
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return str(condition["type"])
    return None


def run_job(sim: Any, api: client.ApiClient, body: dict[str, Any]) -> Any:
    client.BatchV1Api(api).create_namespaced_job("default", body)
    return run_job_wait(sim, api, body["metadata"]["name"])


def run_job_wait(sim: Any, api: client.ApiClient, name: str, timeout: float = 60) -> Any:
    assert sim.wait_for(lambda s: finished(s, name) is not None, timeout=timeout)
    return client.BatchV1Api(api).read_namespaced_job(name, "default")


def job_pods(api: client.ApiClient, name: str) -> list[Any]:
    pods = client.CoreV1Api(api).list_namespaced_pod("default", label_selector=f"job-name={name}")
    return sorted(pods.items, key=lambda p: p.metadata.creation_timestamp or "")


def condition(job: Any, kind: str) -> Any:
    return next(c for c in job.status.conditions if c.type == kind)


def log_of(api: client.ApiClient, pod: Any) -> str:
    return str(client.CoreV1Api(api).read_namespaced_pod_log(pod.metadata.name, "default"))


def test_a_job_running_check_completes_when_every_node_has_the_images(
    sim: Any, api: client.ApiClient
) -> None:
    for node in ("a", "b"):
        sim.add_node(node, images=[PRESENT])
    job = run_job(sim, api, job_body("check-ok", ["check", "--image", PRESENT]))
    assert condition(job, "Complete").reason == "CompletionsReached"
    assert condition(job, "SuccessCriteriaMet").status == "True"
    assert job.status.succeeded == 1 and job.status.completion_time is not None
    [pod] = job_pods(api, "check-ok")
    assert pod.status.phase == "Succeeded"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert pod.metadata.owner_references[0].kind == "Job"
    assert pod.metadata.labels["batch.kubernetes.io/job-name"] == "check-ok"
    assert '"event": "run.succeeded"' in log_of(api, pod)
    events = client.CoreV1Api(api).list_namespaced_event(
        "default", field_selector=f"involvedObject.name={pod.metadata.name}"
    )
    assert [e.reason for e in events.items] == [
        "Scheduled",
        "Pulling",
        "Pulled",
        "Created",
        "Started",
    ]


def test_a_job_running_check_fails_with_backoff_limit_exceeded_when_an_image_is_missing(
    sim: Any, api: client.ApiClient
) -> None:
    sim.add_node("a", images=[PRESENT])
    job = run_job(sim, api, job_body("check-missing", ["check", "--image", MISSING]))
    failed = condition(job, "Failed")
    assert (failed.reason, failed.message) == (
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
    )
    assert condition(job, "FailureTarget").reason == "BackoffLimitExceeded"
    [pod] = job_pods(api, "check-missing")
    terminated = pod.status.container_statuses[0].state.terminated
    assert (pod.status.phase, terminated.exit_code, terminated.reason) == ("Failed", 1, "Error")
    assert MISSING in log_of(api, pod)


def test_backoff_limit_one_gives_the_job_two_pods_before_it_fails(
    sim: Any, api: client.ApiClient
) -> None:
    sim.add_node("a")
    job = run_job(sim, api, job_body("retry", ["check", "--image", MISSING], backoff_limit=1))
    assert condition(job, "Failed").reason == "BackoffLimitExceeded"
    assert job.status.failed == 2
    pods = job_pods(api, "retry")
    assert [p.status.phase for p in pods] == ["Failed", "Failed"]
    assert len({p.metadata.name for p in pods}) == 2


def test_a_job_running_await_owns_its_daemonset_through_the_downward_api_and_completes(
    sim: Any, api: client.ApiClient
) -> None:
    sim.registry.add(SLOW, pull_seconds=40)  # 2 s at the fixture's time scale
    for node in ("a", "b"):
        sim.add_node(node)
    owners: list[dict[str, Any]] = []

    def daemonset_seen(s: Any) -> bool:
        sets = our_daemonsets(s)
        owners.extend(sets[0]["metadata"].get("ownerReferences") or [] if sets else [])
        return bool(sets)

    client.BatchV1Api(api).create_namespaced_job(
        "default", job_body("pull", ["await", "--image", SLOW])
    )
    assert sim.wait_for(daemonset_seen, timeout=60)
    job = run_job_wait(sim, api, "pull")
    assert condition(job, "Complete").status == "True"
    [pod] = job_pods(api, "pull")
    assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [
        ("Pod", pod.metadata.name, pod.metadata.uid)
    ]
    assert our_daemonsets(sim) == []
    for node in client.CoreV1Api(api).list_node().items:
        names = {n for image in node.status.images or [] for n in image.names}
        assert f"{SLOW.rsplit(':', 1)[0]}:2.1" in names, node.metadata.name


def test_active_deadline_sends_sigterm_so_the_awaiter_cleans_up_and_the_job_fails(
    sim: Any, api: client.ApiClient
) -> None:
    sim.registry.add(SLOW, pull_seconds=100_000)
    sim.add_node("a")
    core = client.CoreV1Api(api)
    stream = watch.Watch().stream(
        core.list_namespaced_pod, "default", label_selector="job-name=slow", timeout_seconds=60
    )
    client.BatchV1Api(api).create_namespaced_job(
        "default", job_body("slow", ["await", "--image", SLOW], deadline=8)
    )
    assert sim.wait_for(lambda s: bool(our_daemonsets(s)), timeout=30)
    exit_codes = []
    for event in stream:
        statuses = event["object"].status.container_statuses or []
        exit_codes += [s.state.terminated.exit_code for s in statuses if s.state.terminated]
        if event["type"] == "DELETED":
            break
    assert exit_codes and set(exit_codes) == {143}
    job = run_job_wait(sim, api, "slow")
    failed = condition(job, "Failed")
    assert (failed.reason, failed.message) == (
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
    )
    assert our_daemonsets(sim) == []  # the awaiter's own cleanup, before the pod went
    assert job_pods(api, "slow") == []


def test_a_configmap_volume_reaches_the_process_as_its_daemonset_spec(
    sim: Any, api: client.ApiClient
) -> None:
    sim.add_node("a", images=[PRESENT])
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "user-pullers"},
        "spec": {
            "selector": {"matchLabels": {"app": "p"}},
            "template": {
                "metadata": {"labels": {"app": "p"}},
                "spec": {"containers": [{"name": "c", "image": PRESENT}]},
            },
        },
    }
    client.CoreV1Api(api).create_namespaced_config_map(
        "default",
        {"metadata": {"name": "spec"}, "data": {"daemonset.yaml": yaml.safe_dump(manifest)}},
    )
    body = job_body(
        "from-spec",
        ["check", "--daemonset-spec", "/etc/image-awaiter/daemonset.yaml"],
        container={"volumeMounts": [{"name": "spec", "mountPath": "/etc/image-awaiter"}]},
        volumes=[{"name": "spec", "configMap": {"name": "spec"}}],
    )
    job = run_job(sim, api, body)
    assert condition(job, "Complete").status == "True"
    log = log_of(api, job_pods(api, "from-spec")[0])
    started = next(e for e in map(json.loads, log.splitlines()) if e["event"] == "run.started")
    assert started["images"] == [PRESENT]
    assert started["source"].endswith("/etc/image-awaiter/daemonset.yaml")  # mapped, read


def test_an_empty_termination_file_falls_back_to_the_log_tail_on_error(
    sim: Any, api: client.ApiClient
) -> None:
    sim.add_node("a", images=[PRESENT])
    body = job_body(
        "fallback",
        ["check", "--image", MISSING],
        container={
            "terminationMessagePolicy": "FallbackToLogsOnError",
            # Whatever the CLI writes to a termination file goes nowhere: only the log is left.
            "env": [{"name": "IMAGE_AWAITER_TERMINATION_LOG", "value": os.devnull}],
        },
    )
    run_job(sim, api, body)
    [pod] = job_pods(api, "fallback")
    message = pod.status.container_statuses[0].state.terminated.message
    log = log_of(api, pod)
    assert message and log.endswith(message) and len(message.encode()) <= 2048
    assert MISSING in message


def test_stopping_the_cluster_stops_the_processes_its_pods_run(tmp_path: Path) -> None:
    from tests.simcluster import SimCluster

    cluster = SimCluster(seed=2, time_scale=0.05)
    cluster.start()
    try:
        cluster.registry.add(SLOW, pull_seconds=100_000)
        cluster.add_node("a")
        allow_everything(cluster)
        cluster.create("jobs", job_body("forever", ["await", "--image", SLOW]), "default")
        assert cluster.wait_for(lambda s: bool(our_daemonsets(s)), timeout=30)
        processes = [r.process.popen for r in cluster.runtime.runs.values() if r.process]
    finally:
        cluster.stop()
    assert len(processes) == 1 and processes[0].poll() is not None


def test_a_pod_without_an_automounted_token_is_refused_by_the_api_and_exits_3(
    sim: Any, api: client.ApiClient
) -> None:
    sim.add_node("a", images=[PRESENT])
    body = job_body("no-token", ["check", "--image", PRESENT])
    body["spec"]["template"]["spec"]["automountServiceAccountToken"] = False
    job = run_job(sim, api, body)
    assert condition(job, "Failed").reason == "BackoffLimitExceeded"
    [pod] = job_pods(api, "no-token")
    assert pod.status.container_statuses[0].state.terminated.exit_code == 3
    assert "unauthorised (401)" in log_of(api, pod)


def test_what_the_process_writes_to_the_termination_message_path_becomes_the_message(
    sim: Any, api: client.ApiClient
) -> None:
    sim.add_node("a", images=[PRESENT])
    body = job_body(
        "message",
        ["check", "--image", PRESENT, "--report", "/status/message"],
        container={
            "terminationMessagePath": "/status/message",
            "volumeMounts": [{"name": "status", "mountPath": "/status"}],
        },
        volumes=[{"name": "status", "emptyDir": {}}],
    )
    run_job(sim, api, body)
    [pod] = job_pods(api, "message")
    report = json.loads(pod.status.container_statuses[0].state.terminated.message)
    assert report["result"] == "success"
    assert [i["reference"] for i in report["images"]] == [PRESENT]

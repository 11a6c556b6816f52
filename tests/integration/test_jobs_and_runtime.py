"""Jobs whose pod runs the real image-awaiter CLI inside the simulated cluster, driven and read
with the real kubernetes client: the Helm hook's shape without Helm. The Job controller and pod
runtime live in simcluster/apiserver/jobs.py and runtime.py."""

from __future__ import annotations

import itertools
import json
import os
import signal
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
MANIFEST = {  # a user's DaemonSet spec, as the chart's ConfigMap carries one
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
    ]  # and none from the awaiter itself: `check` is read-only, so it records no Events


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
    pulled = f"{SLOW.rsplit(':', 1)[0]}:2.1"

    def listed_on_every_node(s: Any) -> bool:  # node status trails the pods' (as a kubelet's)
        names = [{n for i in node["status"].get("images") or [] for n in i["names"]}
                 for node in s.store.items("nodes")]  # fmt: skip
        return all(pulled in listed for listed in names)

    assert sim.wait_for(listed_on_every_node, timeout=10)


def test_active_deadline_sends_sigterm_so_the_awaiter_cleans_up_and_the_job_fails(
    sim: Any, api: client.ApiClient
) -> None:
    sim.registry.add(SLOW, pull_seconds=100_000)
    sim.add_node("a")
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    batch.create_namespaced_job("default", job_body("slow", ["await", "--image", SLOW]))
    assert sim.wait_for(lambda s: bool(our_daemonsets(s)), timeout=30)
    stream = watch.Watch().stream(
        core.list_namespaced_pod, "default", label_selector="job-name=slow", timeout_seconds=60
    )
    first = next(stream)  # the running pod, watched before the deadline can strike
    # The deadline is set once the awaiter is busy (it is mutable on a Job), so that a slow
    # start on a loaded machine cannot outlast it.
    batch.patch_namespaced_job("slow", "default", {"spec": {"activeDeadlineSeconds": 1}})
    exit_codes = []
    for event in itertools.chain([first], stream):
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
    client.CoreV1Api(api).create_namespaced_config_map(
        "default",
        {"metadata": {"name": "spec"}, "data": {"daemonset.yaml": yaml.safe_dump(MANIFEST)}},
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
    from simcluster import SimCluster

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
    # The CLI writes its final line to the termination log (IMAGE_AWAITER_TERMINATION_LOG, which
    # the runtime points at the container's terminationMessagePath), last of all its writes.
    body = job_body(
        "message",
        ["check", "--image", PRESENT],
        container={
            "terminationMessagePath": "/status/message",
            "volumeMounts": [{"name": "status", "mountPath": "/status"}],
        },
        volumes=[{"name": "status", "emptyDir": {}}],
    )
    run_job(sim, api, body)
    [pod] = job_pods(api, "message")
    # The awaiter writes its final one-line message to the file the runtime names for the
    # container's terminationMessagePath (IMAGE_AWAITER_TERMINATION_LOG).
    message = pod.status.container_statuses[0].state.terminated.message
    assert message.strip() == "image-awaiter: the 1 target node has the 1 image"


def test_deleting_the_jobs_pod_sends_sigterm_so_the_awaiter_removes_its_daemonset_first(
    sim: Any, api: client.ApiClient
) -> None:
    sim.registry.add(SLOW, pull_seconds=100_000)
    sim.add_node("a")
    client.BatchV1Api(api).create_namespaced_job(
        "default", job_body("interrupted", ["await", "--image", SLOW])
    )
    assert sim.wait_for(lambda s: bool(our_daemonsets(s)), timeout=30)
    [pod] = job_pods(api, "interrupted")
    terminating = client.CoreV1Api(api).delete_namespaced_pod(pod.metadata.name, "default")
    assert terminating.metadata.deletion_timestamp is not None  # graceful, as a real API
    job = run_job_wait(sim, api, "interrupted")
    assert condition(job, "Failed").reason == "BackoffLimitExceeded"
    assert our_daemonsets(sim) == []
    assert "interrupted by SIGTERM" in sim.pod_logs[("default", pod.metadata.name)].decode()


def test_pods_reach_a_tls_api_server_with_its_certificate(tmp_path: Path) -> None:
    from simcluster import SimCluster

    cluster = SimCluster(seed=3, time_scale=0.05)
    cluster.use_self_signed_tls(tmp_path / "tls")
    cluster.start()
    try:
        cluster.add_node("a", images=[PRESENT])
        allow_everything(cluster)
        cluster.create("jobs", job_body("tls", ["check", "--image", PRESENT]), "default")
        assert cluster.wait_for(lambda s: finished(s, "tls") is not None, timeout=60)
        assert finished(cluster, "tls") == "Complete"
    finally:
        cluster.stop()


def test_deleting_with_no_grace_period_removes_the_pod_at_once_and_the_daemonset_follows_it(
    sim: Any, api: client.ApiClient
) -> None:
    """As kube-apiserver: a delete with gracePeriodSeconds=0 removes the pod from the API at
    once; the kubelet then stops its process (SIGTERM, SIGKILL 2 s later), and the DaemonSet
    the pod owned goes with it."""
    sim.registry.add(SLOW, pull_seconds=100_000)
    sim.add_node("a")
    client.BatchV1Api(api).create_namespaced_job(
        "default", job_body("killed", ["await", "--image", SLOW])
    )
    assert sim.wait_for(lambda s: bool(our_daemonsets(s)), timeout=30)
    [pod] = job_pods(api, "killed")
    process = sim.runtime.runs[pod.metadata.uid].process
    core = client.CoreV1Api(api)
    deleted = core.delete_namespaced_pod(pod.metadata.name, "default", grace_period_seconds=0)
    assert deleted.metadata.deletion_grace_period_seconds == 0  # not terminating: gone
    assert sim.store.get("pods", pod.metadata.name, "default") is None
    assert sim.wait_for(lambda s: process.popen.poll() is not None, timeout=10)
    assert process.popen.returncode in (143, -signal.SIGKILL)  # SIGTERM, or SIGKILL after 2 s
    assert sim.wait_for(lambda s: our_daemonsets(s) == [], timeout=10)


def test_following_the_log_shows_progress_while_the_awaiter_runs_and_ends_with_it(
    sim: Any, api: client.ApiClient
) -> None:
    sim.registry.add(SLOW, pull_seconds=40)  # 2 s at the fixture's time scale
    sim.add_node("a")
    client.BatchV1Api(api).create_namespaced_job(
        "default", job_body("followed", ["await", "--image", SLOW])
    )

    def running(s: Any) -> bool:
        pods = [p for p in s.objects("pods", "default") if p["metadata"]["name"][:8] == "followed"]
        return bool(pods) and pods[0]["status"].get("phase") == "Running"

    assert sim.wait_for(running, timeout=30)
    [pod] = job_pods(api, "followed")
    stream = client.CoreV1Api(api).read_namespaced_pod_log(
        pod.metadata.name, "default", follow=True, _preload_content=False
    )
    key = ("default", pod.metadata.name)
    seen = [(chunk, sim.runtime.running(key)) for chunk in stream.stream()]
    text = b"".join(chunk for chunk, _ in seen).decode()
    assert seen[0][1]  # the first output arrived while the process still ran
    assert '"event": "run.succeeded"' in text and '"event": "daemonset.deleted"' in text
    assert text == sim.pod_logs[("default", pod.metadata.name)].decode()


def test_a_finished_job_with_ttl_zero_is_deleted_with_its_pods(
    sim: Any, api: client.ApiClient
) -> None:
    sim.add_node("a", images=[PRESENT])
    body = job_body("short-lived", ["check", "--image", PRESENT])
    body["spec"]["ttlSecondsAfterFinished"] = 0
    client.BatchV1Api(api).create_namespaced_job("default", body)
    assert sim.wait_for(lambda s: bool(s.objects("pods", "default")), timeout=30)
    assert sim.wait_for(
        lambda s: s.objects("jobs", "default") == [] and s.objects("pods", "default") == [],
        timeout=60,
    )
    completed = client.CoreV1Api(api).list_namespaced_event(
        "default", field_selector="involvedObject.name=short-lived,reason=Completed"
    )
    assert len(completed.items) == 1  # it did finish before it went


def test_a_missing_configmap_holds_the_pod_in_container_creating_until_it_exists(
    sim: Any, api: client.ApiClient
) -> None:
    sim.add_node("a", images=[PRESENT])
    body = job_body(
        "early",
        ["check", "--daemonset-spec", "/etc/image-awaiter/daemonset.yaml"],
        container={"volumeMounts": [{"name": "spec", "mountPath": "/etc/image-awaiter"}]},
        volumes=[{"name": "spec", "configMap": {"name": "later"}}],
    )
    client.BatchV1Api(api).create_namespaced_job("default", body)
    core = client.CoreV1Api(api)

    def failed_mount(s: Any) -> bool:
        return any(e["reason"] == "FailedMount" for e in s.objects("events", "default"))

    assert sim.wait_for(failed_mount, timeout=30)
    [pod] = job_pods(api, "early")
    waiting = pod.status.container_statuses[0].state.waiting
    assert (pod.status.phase, waiting.reason) == ("Pending", "ContainerCreating")
    [event] = core.list_namespaced_event("default", field_selector="reason=FailedMount").items
    assert event.message == (
        'MountVolume.SetUp failed for volume "spec" : configmap "later" not found'
    )
    core.create_namespaced_config_map(
        "default",
        {"metadata": {"name": "later"}, "data": {"daemonset.yaml": yaml.safe_dump(MANIFEST)}},
    )
    assert condition(run_job_wait(sim, api, "early"), "Complete").status == "True"


def test_the_jobs_pod_goes_to_a_ready_node_its_selector_allows_or_waits_unschedulable(
    sim: Any, api: client.ApiClient
) -> None:
    sim.add_node("user", images=[PRESENT], labels={"pool": "user"})
    sim.add_node("core", images=[PRESENT], labels={"pool": "core"})
    sim.add_node("core-down", images=[PRESENT], labels={"pool": "core"}, ready=False)
    placed = job_body("placed", ["check", "--image", PRESENT])
    placed["spec"]["template"]["spec"]["nodeSelector"] = {"pool": "core"}
    run_job(sim, api, placed)
    assert [p.spec.node_name for p in job_pods(api, "placed")] == ["core"]
    nowhere = job_body("nowhere", ["check", "--image", PRESENT])
    nowhere["spec"]["template"]["spec"]["nodeSelector"] = {"pool": "gpu"}
    client.BatchV1Api(api).create_namespaced_job("default", nowhere)

    def refused(s: Any) -> bool:
        return any(e["reason"] == "FailedScheduling" for e in s.objects("events", "default"))

    assert sim.wait_for(refused, timeout=30)
    [pod] = job_pods(api, "nowhere")
    [scheduled] = pod.status.conditions
    assert (pod.spec.node_name, scheduled.reason) == (None, "Unschedulable")
    assert scheduled.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: "
        "}, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are "
        "available: 3 Preemption is not helpful for scheduling."
    )


def test_env_from_a_missing_secret_is_a_config_error_until_the_secret_exists(
    sim: Any, api: client.ApiClient
) -> None:
    sim.add_node("a", images=[PRESENT])
    source = {"secretKeyRef": {"name": "images", "key": "image"}}
    body = job_body(
        "from-secret",
        ["check"],
        container={"env": [{"name": "IMAGE_AWAITER_IMAGE", "valueFrom": source}]},
    )
    client.BatchV1Api(api).create_namespaced_job("default", body)

    def config_error(s: Any) -> bool:
        return any(e["message"].startswith("Error: secret") for e in s.objects("events", "default"))

    assert sim.wait_for(config_error, timeout=30)
    [pod] = job_pods(api, "from-secret")
    waiting = pod.status.container_statuses[0].state.waiting
    assert (waiting.reason, waiting.message) == (
        "CreateContainerConfigError",
        'secret "images" not found',
    )
    client.CoreV1Api(api).create_namespaced_secret(
        "default", {"metadata": {"name": "images"}, "stringData": {"image": PRESENT}}
    )
    assert condition(run_job_wait(sim, api, "from-secret"), "Complete").status == "True"
    log = log_of(api, pod)
    started = next(e for e in map(json.loads, log.splitlines()) if e["event"] == "run.started")
    assert started["images"] == [PRESENT]


def test_the_awaiter_image_pulls_even_where_unknown_images_do_not_exist(
    sim: Any, api: client.ApiClient
) -> None:
    sim.registry.unknown_images_exist = False  # as `python -m simcluster serve` runs
    sim.add_node("a", images=[PRESENT])
    job = run_job(sim, api, job_body("strict-registry", ["check", "--image", PRESENT]))
    assert condition(job, "Complete").status == "True"

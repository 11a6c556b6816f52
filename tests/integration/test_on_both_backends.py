"""The awaiter's cluster behaviour end to end, each scenario on both backends (tests/backends.py):
the simulated API server and the real control plane (kube-apiserver's watch cache, the real
DaemonSet controller, scheduler and garbage collector, with simulated kubelets as its nodes and
the fault proxy in front). The real CLI, the real `kubernetes` client; no mocks.

What each scenario holds the awaiter to: await and check end to end, `check` read-only with its
exit codes, the fast path, name matching, targeting (cordons, taints, NotReady nodes), pull
groups, pull failure classes, the 50-image status cap, refused pullers, nodes joining and
leaving, a registry outage waited out, the awaiter as a Job's pod deleted mid-run (SIGTERM,
cleanup, exit 143), and the transient API faults (5xx, 429 with Retry-After, resets, watches cut
mid-stream, 410 Gone)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from simcluster.apiserver.faults import Fault
from simcluster.nodes.kubelet import DEFAULT_AWAITER_IMAGE
from tests.backends import NOT_READY_TAINT, RUN_LABEL, Backend

APP = "quay.io/example/app:1"
MODEL = "quay.io/example/model:2"
AWAITER = f"{DEFAULT_AWAITER_IMAGE}:dev"  # its pods run the real CLI (simcluster/nodes/runtime.py)
NOT_READY = "node not Ready"


def _report_nodes(result: Any) -> dict[str, dict[str, Any]]:
    assert result.report is not None, result.output
    return {n["name"]: n for n in result.report["nodes"]}


def _excluded(backend: Backend, result: Any) -> dict[str, str]:
    """The test's excluded nodes and why, from the report."""
    assert result.report is not None, result.output
    mine = {n["metadata"]["name"] for n in backend.objects("nodes")}
    return {e["name"]: e["reason"] for e in result.report["excluded"] if e["name"] in mine}


def _waiting_reasons(backend: Backend, node: str) -> set[str]:
    """Why the containers of the pods on `node` wait (ErrImagePull, ImagePullBackOff, ...)."""
    return {
        (status.get("state") or {}).get("waiting", {}).get("reason", "")
        for pod in backend.objects("pods")
        if pod["spec"].get("nodeName") == node
        for status in (pod.get("status") or {}).get("initContainerStatuses") or []
    }


def _puller(backend: Backend, name: str, images: list[str], **pod: Any) -> dict[str, Any]:
    labels = {"app": name}
    return backend.pinned(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "initContainers": [
                            {"name": f"pull-{i}", "image": ref, "command": ["/helper/noop"]}
                            for i, ref in enumerate(images)
                        ],
                        "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}],
                        **pod,
                    },
                },
            },
        }
    )


def test_the_fast_path_exits_zero_and_creates_nothing(cluster_backend: Backend) -> None:
    cluster_backend.registry.add(APP)
    cluster_backend.add_node("a", images=[APP])
    cluster_backend.add_node("b", images=[APP])
    result = cluster_backend.run("await", "--image", APP)
    assert result.code == 0, result.output
    assert sorted(_report_nodes(result)) == sorted(
        [cluster_backend.node("a"), cluster_backend.node("b")]
    )
    assert result.report is not None and result.report["daemonset"] is None
    assert cluster_backend.objects("daemonsets") == []


def test_a_missing_image_is_pulled_by_a_daemonset_that_is_deleted_after(
    cluster_backend: Backend,
) -> None:
    cluster_backend.registry.add(MODEL, pull_seconds=10)
    cluster_backend.add_node("a")
    cluster_backend.add_node("b", images=[])
    assert cluster_backend.run("check", "--image", MODEL).code == 1
    result = cluster_backend.run("await", "--image", MODEL, "--interval", "200ms")
    assert result.code == 0, result.output
    nodes = _report_nodes(result)
    for local in ("a", "b"):
        [pull] = nodes[cluster_backend.node(local)]["pulls"]
        assert pull["state"] == "pulled", pull
    assert result.report is not None and result.report["daemonset"]["deleted"] is True
    assert cluster_backend.objects("daemonsets") == []
    assert cluster_backend.run("check", "--image", MODEL).code == 0  # status.images now lists it


def test_nodes_that_already_have_the_images_get_no_puller_pod(cluster_backend: Backend) -> None:
    """Regression: the done nodes were excluded with one `metadata.name NotIn [a, b]` field
    requirement, which the real API server refuses (one value only): exit 2 on real clusters."""
    cluster_backend.registry.add(MODEL, pull_seconds=10)
    cluster_backend.add_node("done-1", images=[MODEL])
    cluster_backend.add_node("done-2", images=[MODEL])
    cluster_backend.add_node("lacking")
    result = cluster_backend.run("await", "--image", MODEL, "--interval", "200ms")
    assert result.code == 0, result.output
    pulled = {
        n["name"]
        for n in result.report["nodes"]
        if any(p["state"] == "pulled" for p in n.get("pulls", []))
    }
    assert pulled == {cluster_backend.node("lacking")}


def test_docker_hub_short_names_match_what_the_nodes_report(cluster_backend: Backend) -> None:
    cluster_backend.registry.add("docker.io/library/busybox:1.36")
    cluster_backend.add_node("a", images=["busybox:1.36"])
    result = cluster_backend.run("check", "--image", "busybox:1.36")
    assert result.code == 0, result.output


def test_cordoned_and_tainted_nodes_are_excluded_and_reported(cluster_backend: Backend) -> None:
    cluster_backend.registry.add(APP)
    cluster_backend.add_node("ready", images=[APP])
    cluster_backend.add_node("cordoned", unschedulable=True)
    cluster_backend.add_node(
        "tainted", taints=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}]
    )
    result = cluster_backend.run("await", "--image", APP)
    assert result.code == 0, result.output
    assert result.report is not None
    mine = {cluster_backend.node(n) for n in ("ready", "cordoned", "tainted")}
    excluded = {e["name"]: e["reason"] for e in result.report["excluded"] if e["name"] in mine}
    assert set(excluded) == {cluster_backend.node("cordoned"), cluster_backend.node("tainted")}
    assert "gpu" in excluded[cluster_backend.node("tainted")]


def test_two_pull_groups_each_pull_their_images_where_their_pods_land(
    cluster_backend: Backend, tmp_path: Path
) -> None:
    cluster_backend.registry.add(APP)
    cluster_backend.registry.add(MODEL)
    cluster_backend.add_node("cpu", labels={"pool": "cpu"})
    cluster_backend.add_node("gpu", labels={"pool": "gpu"})
    specs = [
        _puller(cluster_backend, "web", [APP], nodeSelector={"pool": "cpu"}),
        _puller(cluster_backend, "models", [MODEL], nodeSelector={"pool": "gpu"}),
    ]
    path = tmp_path / "groups.yaml"
    path.write_text("\n---\n".join(json.dumps(s) for s in specs))
    result = cluster_backend.run("await", "--daemonset-spec", str(path), "--interval", "200ms")
    assert result.code == 0, result.output
    nodes = _report_nodes(result)
    cpu = {p["image"] for p in nodes[cluster_backend.node("cpu")]["pulls"]}
    gpu = {p["image"] for p in nodes[cluster_backend.node("gpu")]["pulls"]}
    assert APP in cpu and MODEL not in cpu, cpu
    assert MODEL in gpu and APP not in gpu, gpu
    assert cluster_backend.objects("daemonsets") == []


def test_a_tag_that_does_not_exist_fails_at_once_with_exit_4_and_the_runtimes_words(
    cluster_backend: Backend,
) -> None:
    cluster_backend.registry.add(APP)
    cluster_backend.add_node("a")
    cluster_backend.fail_pull(APP, kind="tag-not-found")
    started = time.monotonic()
    result = cluster_backend.run("await", "--image", APP, "--timeout", "2m")
    assert result.code == 4, result.output
    assert time.monotonic() - started < 30
    assert cluster_backend.node("a") in result.last_line and "not found" in result.last_line
    assert cluster_backend.objects("daemonsets") == []


def test_a_timeout_names_the_nodes_still_pulling(cluster_backend: Backend) -> None:
    cluster_backend.registry.add(MODEL, pull_seconds=600)  # 30 s at the time scale
    cluster_backend.add_node("slow")
    result = cluster_backend.run("await", "--image", MODEL, "--timeout", "3s")
    assert result.code == 1, result.output
    assert cluster_backend.node("slow") in result.last_line
    assert cluster_backend.objects("daemonsets") == []


def test_a_node_that_joins_during_the_wait_is_awaited(cluster_backend: Backend) -> None:
    cluster_backend.registry.add(MODEL, pull_seconds=60)
    cluster_backend.add_node("first")
    running = cluster_backend.start("await", "--image", MODEL, "--interval", "200ms")
    cluster_backend.wait_until(
        lambda: cluster_backend.objects("daemonsets"), timeout=30, what="the puller DaemonSet"
    )
    cluster_backend.add_node("second")
    result = running.finish(timeout=40)
    assert result.code == 0, result.output
    assert set(_report_nodes(result)) == {
        cluster_backend.node("first"),
        cluster_backend.node("second"),
    }


def test_a_node_that_leaves_during_the_wait_is_dropped_and_the_run_succeeds(
    cluster_backend: Backend,
) -> None:
    cluster_backend.registry.add(MODEL, pull_seconds=10)
    cluster_backend.add_node("stays")
    cluster_backend.add_node("leaves")
    leaves = cluster_backend.node("leaves")
    cluster_backend.fail_pull(MODEL, kind="rate-limited", nodes=["leaves"])  # never done there
    running = cluster_backend.start(
        "await", "--image", MODEL, "--interval", "200ms", "--timeout", "90s",
        "--pull-failure-grace", "10m",
    )  # fmt: skip
    cluster_backend.wait_until(
        lambda: _waiting_reasons(cluster_backend, leaves) & {"ErrImagePull", "ImagePullBackOff"},
        timeout=30,
        what="the failing pull on the node that leaves",
    )
    cluster_backend.remove_node("leaves")
    result = running.finish(timeout=60)
    assert result.code == 0, result.output
    assert set(_report_nodes(result)) == {cluster_backend.node("stays")}
    assert cluster_backend.objects("daemonsets") == []


def test_a_node_reporting_not_ready_is_excluded_and_awaited_again_once_ready(
    cluster_backend: Backend,
) -> None:
    cluster_backend.registry.add(APP, pull_seconds=10)
    cluster_backend.add_node("ready", images=[APP])
    down = cluster_backend.add_node("down", ready=False)
    checked = cluster_backend.run("check", "--image", APP)
    assert checked.code == 0, checked.output
    assert _excluded(cluster_backend, checked) == {down: NOT_READY}
    assert set(_report_nodes(checked)) == {cluster_backend.node("ready")}
    awaited = cluster_backend.run("await", "--image", APP)
    assert awaited.code == 0, awaited.output
    assert awaited.report is not None and awaited.report["daemonset"] is None  # nothing to pull
    assert _excluded(cluster_backend, awaited) == {down: NOT_READY}

    cluster_backend.set_node_ready("down", True)

    def schedulable() -> bool:  # Ready, and (real) the lifecycle controller's taint lifted
        [node] = [n for n in cluster_backend.objects("nodes") if n["metadata"]["name"] == down]
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]
        )
        taints = {t["key"] for t in node["spec"].get("taints") or []}
        return ready and NOT_READY_TAINT not in taints

    cluster_backend.wait_until(schedulable, timeout=60, what=f"{down} Ready and untainted")
    assert cluster_backend.run("check", "--image", APP).code == 1  # a target lacking APP now
    result = cluster_backend.run("await", "--image", APP, "--interval", "200ms")
    assert result.code == 0, result.output
    [pull] = _report_nodes(result)[down]["pulls"]
    assert pull["state"] == "pulled", pull
    assert _excluded(cluster_backend, result) == {}


def test_a_registry_outage_during_the_pull_is_waited_out_and_the_run_succeeds(
    cluster_backend: Backend,
) -> None:
    cluster_backend.registry.add(MODEL, pull_seconds=10)
    node = cluster_backend.add_node("a")
    cluster_backend.registry_outage("quay.io", kind="server-error")  # 503 until ended
    running = cluster_backend.start(
        "await", "--image", MODEL, "--interval", "200ms", "--timeout", "90s"
    )
    seen = running.wait_for_line(
        lambda line: '"progress"' in line and "retrying" in line
    )  # the awaiter has seen the failing pull ("retrying IMAGE on NODE: ErrImagePull: ...")
    assert node in seen and "503" in seen, seen
    cluster_backend.end_outage()
    result = running.finish(timeout=60)
    assert result.code == 0, result.output
    [pull] = _report_nodes(result)[node]["pulls"]
    assert pull["state"] == "pulled", pull
    assert cluster_backend.objects("daemonsets") == []


def test_check_is_read_only_and_exits_1_naming_the_node_missing_an_image(
    cluster_backend: Backend,
) -> None:
    cluster_backend.registry.add(APP)
    cluster_backend.registry.add(MODEL)
    cluster_backend.add_node("both", images=[APP, MODEL])
    lacking = cluster_backend.add_node("app-only", images=[APP])
    present = cluster_backend.run("check", "--image", APP)
    assert present.code == 0, present.output
    assert {n["status"] for n in _report_nodes(present).values()} == {"done"}
    missing = cluster_backend.run("check", "--image", APP, "--image", MODEL)
    assert missing.code == 1, missing.output
    assert lacking in missing.last_line, missing.last_line
    statuses = {name: n["status"] for name, n in _report_nodes(missing).items()}
    assert statuses == {cluster_backend.node("both"): "done", lacking: "missing"}, statuses
    assert missing.report is not None and missing.report["daemonset"] is None
    assert cluster_backend.objects("daemonsets") == []
    assert cluster_backend.objects("pods") == []


def test_an_image_hidden_by_the_fifty_image_status_cap_completes_via_the_puller_pod(
    cluster_backend: Backend,
) -> None:
    big = [f"registry.example.com/big/image-{i}:1" for i in range(50)]
    for ref in big:
        cluster_backend.registry.add(ref, size_bytes=5 * 1024**3, pull_seconds=0.01)
    small = "registry.example.com/small:1"
    cluster_backend.registry.add(small, size_bytes=1024, pull_seconds=0.2)
    full = cluster_backend.add_node("full", images=big)
    result = cluster_backend.run(
        "await", "--image", small, "--interval", "200ms", "--timeout", "60s"
    )
    assert result.code == 0, result.output  # on the puller pod's word: the status never says
    [pull] = _report_nodes(result)[full]["pulls"]
    assert pull["state"] == "pulled", pull
    [node] = cluster_backend.objects("nodes")
    names = [n for image in node["status"]["images"] for n in image["names"]]
    assert len(node["status"]["images"]) == 50
    assert not any("small" in n for n in names), "the cap should hide the small image"


def _awaiter_job(backend: Backend, name: str, args: list[str]) -> dict[str, Any]:
    """A Job shaped like the chart's hook: the awaiter image, downward-API env, on the test's
    nodes, as the namespace's `default` ServiceAccount."""
    env = [
        {"name": variable, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.{field}"}}}
        for variable, field in (("POD_NAME", "name"), ("POD_UID", "uid"),
                                ("POD_NAMESPACE", "namespace"))
    ]  # fmt: skip
    container = {"name": "awaiter", "image": AWAITER, "env": env,
                 "args": [*args, "--log-format", "json", "--interval", "200ms"]}  # fmt: skip
    template = {"spec": {"restartPolicy": "Never", "serviceAccountName": "default",
                         "nodeSelector": {RUN_LABEL: backend.run_id},
                         "containers": [container]}}  # fmt: skip
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": template}}  # fmt: skip


def test_the_awaiter_in_a_jobs_pod_deleted_mid_run_deletes_its_daemonset_and_exits_143(
    cluster_backend: Backend,
) -> None:
    """Graceful deletion of the hook's pod: its kubelet sends SIGTERM, the awaiter deletes its
    DaemonSet itself (not left to the garbage collector) and exits 143."""
    cluster_backend.registry.add(MODEL, pull_seconds=100_000)  # never done while it runs
    cluster_backend.add_node("a")
    cluster_backend.allow_everything("default")
    args = ["await", "--image", MODEL, *cluster_backend.selector_args(("--image",))]
    cluster_backend.create("jobs", _awaiter_job(cluster_backend, "interrupted", args))
    cluster_backend.wait_until(
        lambda: cluster_backend.objects("daemonsets"), timeout=60, what="the awaiter's DaemonSet"
    )
    [pod] = [
        p for p in cluster_backend.objects("pods")
        if (p["metadata"].get("labels") or {}).get("job-name") == "interrupted"
    ]  # fmt: skip
    meta = pod["metadata"]
    process = cluster_backend.kubelets.runtime.runs[meta["uid"]].process
    assert process is not None
    popen = process.popen
    terminating = cluster_backend.delete_pod(meta["name"])
    assert terminating["metadata"].get("deletionTimestamp"), terminating["metadata"]  # graceful
    cluster_backend.wait_until(  # its kubelet saw the process end, wrote its status, deleted it
        lambda: all(p["metadata"]["uid"] != meta["uid"] for p in cluster_backend.objects("pods")),
        timeout=30,
        what="the pod finished and deleted",
    )
    assert popen.poll() is not None
    log = cluster_backend.kubelets.host.log((cluster_backend.namespace, meta["name"])).decode()
    assert popen.returncode == 143, log
    assert '"daemonset.deleted"' in log and "interrupted by SIGTERM" in log, log
    cluster_backend.wait_until(
        lambda: cluster_backend.objects("daemonsets") == [], timeout=30, what="no DaemonSet"
    )


def test_a_puller_naming_a_missing_service_account_fails_in_seconds(
    cluster_backend: Backend, tmp_path: Path
) -> None:
    cluster_backend.add_node("a")
    spec = _puller(cluster_backend, "refused", [APP], serviceAccountName="deleted-by-helm")
    path = tmp_path / "refused.json"
    path.write_text(json.dumps(spec))
    started = time.monotonic()
    result = cluster_backend.run("await", "--daemonset-spec", str(path), "--timeout", "2m")
    assert result.code == 3, result.output
    assert time.monotonic() - started < 30
    assert 'serviceaccount "deleted-by-helm" not found' in result.last_line


# ---------------------------------------------------------------- transient API faults


def test_5xx_429_and_resets_on_the_node_list_are_retried(cluster_backend: Backend) -> None:
    cluster_backend.registry.add(APP)
    cluster_backend.add_node("a", images=[APP])
    nodes = r"^/api/v1/nodes$"
    cluster_backend.faults.add(Fault(method="GET", path=nodes, status=503, times=2))
    cluster_backend.faults.add(Fault(method="GET", path=nodes, status=429, retry_after=1, times=1))
    cluster_backend.faults.add(Fault(method="GET", path=nodes, reset=True, times=1))
    started = time.monotonic()
    result = cluster_backend.run("check", "--image", APP)
    assert result.code == 0, result.output
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured
    assert cluster_backend.faults.injected == 4


def test_watches_cut_mid_stream_or_answered_410_gone_resume_and_the_run_succeeds(
    cluster_backend: Backend,
) -> None:
    cluster_backend.registry.add(MODEL, pull_seconds=20)
    cluster_backend.add_node("a")
    cluster_backend.add_node("b")
    cluster_backend.faults.add(Fault(path=r"/pods$", watch=True, cut_after_events=1, times=2))
    cluster_backend.faults.add(Fault(path=r"/nodes$", watch=True, cut_after_events=0, status=410))
    result = cluster_backend.run("await", "--image", MODEL, "--interval", "200ms")
    assert result.code == 0, result.output
    assert cluster_backend.faults.injected >= 2, cluster_backend.faults.log
    assert {n["status"] for n in _report_nodes(result).values()} == {"done"}

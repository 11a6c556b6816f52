"""The awaiter's cluster behaviour end to end, each scenario on both backends (tests/backends.py):
the simulated API server and the real control plane (kube-apiserver's watch cache, the real
DaemonSet controller, scheduler and garbage collector, with simulated kubelets as its nodes and
the fault proxy in front). The real CLI, the real `kubernetes` client; no mocks.

What each scenario holds the awaiter to: await and check end to end, the fast path, name
matching, targeting, pull groups, pull failure classes, refused pullers, nodes joining, and the
transient API faults (5xx, 429 with Retry-After, resets, watches cut mid-stream, 410 Gone)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from simcluster.apiserver.faults import Fault
from tests.backends import Backend
from tests.conftest import ROOT, cli_command, cli_env

APP = "quay.io/example/app:1"
MODEL = "quay.io/example/model:2"


def _report_nodes(result: Any) -> dict[str, dict[str, Any]]:
    assert result.report is not None, result.output
    return {n["name"]: n for n in result.report["nodes"]}


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
    report = cluster_backend.tmp_path / "joined.json"
    args = ["await", "--image", MODEL, "--interval", "200ms", *cluster_backend.selector_args(
        ("--image",)), "--kubeconfig", str(cluster_backend.kubeconfig), "--report", str(report),
        "--log-format", "json"]  # fmt: skip
    running = subprocess.Popen(
        cli_command(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cli_env(), cwd=ROOT,
    )  # fmt: skip
    try:
        cluster_backend.wait_until(
            lambda: cluster_backend.objects("daemonsets"), timeout=30, what="the puller DaemonSet"
        )
        cluster_backend.add_node("second")
        _, stderr = running.communicate(timeout=40)
    finally:
        running.kill()
    assert running.returncode == 0, stderr
    names = {n["name"] for n in json.loads(report.read_text())["nodes"]}
    assert names == {cluster_backend.node("first"), cluster_backend.node("second")}


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

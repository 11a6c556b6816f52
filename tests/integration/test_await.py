"""`image-awaiter await` end to end: the real CLI and the real kubernetes client against the
simulated cluster, one SPEC behaviour per test."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import spawn_await
from tests.integration.helpers import (
    assert_clean_failure,
    excluded,
    node_report,
    our_daemonsets,
    writes,
)

BUSYBOX = "busybox:1.36"
NOTEBOOK = "quay.io/jupyter/base-notebook:2025-01-01"


def test_fast_path_exits_zero_and_creates_nothing_when_every_node_has_the_image(
    sim: Any, run_cli: Any
) -> None:
    sim.add_node("a", images=(NOTEBOOK,))
    sim.add_node("b", images=(NOTEBOOK,), runtime="docker")
    result = run_cli("await", "--image", NOTEBOOK)
    assert result.code == 0, result.output
    assert writes(sim) == []
    assert result.report["result"] == "success"
    assert {n["status"] for n in result.report["nodes"]} == {"done"}


def test_docker_hub_short_names_match_both_runtime_name_styles(sim: Any, run_cli: Any) -> None:
    sim.add_node(
        "containerd-node", images=("docker.io/library/busybox:1.36",), runtime="containerd"
    )
    sim.add_node("docker-node", images=("busybox:1.36",), runtime="docker")
    result = run_cli(
        "await",
        "--image",
        "docker.io/library/busybox:1.36",
        "--timeout",
        "1s",
        "--interval",
        "200ms",
    )
    assert result.code == 0, result.output
    assert writes(sim) == []


def test_missing_image_is_pulled_by_a_transient_daemonset_that_is_deleted_after(
    sim: Any, run_cli: Any
) -> None:
    for name in ("a", "b", "c"):
        sim.add_node(name)
    result = run_cli("await", "--image", NOTEBOOK, "--interval", "200ms")
    assert result.code == 0, result.output
    assert our_daemonsets(sim) == []
    posts = [r for r in sim.requests if r.method == "POST"]
    assert len(posts) == 1
    assert result.report["daemonset"]["deleted"] is True
    assert all(n["status"] == "done" for n in result.report["nodes"])
    for name in ("a", "b", "c"):
        assert "doneAfterSeconds" in node_report(result, name)


def test_image_hidden_by_the_fifty_image_status_cap_completes_via_the_puller_pod(
    sim: Any, run_cli: Any
) -> None:
    big = [f"registry.example.com/big/image-{i}:1" for i in range(50)]
    for ref in big:
        sim.registry.add(ref, size_bytes=5 * 1024**3, pull_seconds=0.01)
    sim.registry.add("registry.example.com/small:1", size_bytes=1024, pull_seconds=0.2)
    sim.add_node("full", images=tuple(big))
    result = run_cli(
        "await",
        "--image",
        "registry.example.com/small:1",
        "--interval",
        "200ms",
        "--timeout",
        "60s",
    )
    assert result.code == 0, result.output
    node = sim.objects("nodes")[0]
    names = [n for image in node["status"]["images"] for n in image["names"]]
    assert not any("small" in n for n in names), "the cap should hide the small image"


def test_digest_references_are_matched_by_repository_and_digest(sim: Any, run_cli: Any) -> None:
    digest = "sha256:" + "ab" * 32
    sim.registry.add("quay.io/org/app:1", digest=digest)
    sim.add_node("a", images=("quay.io/org/app:1",))
    result = run_cli("await", "--image", f"quay.io/org/app@{digest}", "--timeout", "2s")
    assert result.code == 0, result.output
    assert writes(sim) == []
    tagged = run_cli("await", "--image", f"quay.io/org/app:1@{digest}", "--timeout", "2s")
    assert tagged.code == 0, tagged.output


def test_cordoned_tainted_notready_and_windows_nodes_are_not_awaited_and_are_reported(
    sim: Any, run_cli: Any
) -> None:
    sim.add_node("ok", images=(BUSYBOX,))
    sim.add_node("cordoned", unschedulable=True)
    sim.add_node("tainted", taints=({"key": "dedicated", "value": "core", "effect": "NoSchedule"},))
    sim.add_node("evicting", taints=({"key": "gpu", "effect": "NoExecute"},))
    sim.add_node("notready", ready=False)
    sim.add_node("windows", os="windows")
    result = run_cli("await", "--image", BUSYBOX, "--timeout", "5s")
    assert result.code == 0, result.output
    reasons = excluded(result)
    assert set(reasons) == {"cordoned", "tainted", "evicting", "notready", "windows"}
    assert "cordoned" in reasons["cordoned"]
    assert "dedicated=core:NoSchedule" in reasons["tainted"]
    assert "gpu:NoExecute" in reasons["evicting"]
    assert "Ready" in reasons["notready"]
    assert "kubernetes.io/os=linux" in reasons["windows"]
    assert writes(sim) == []


def test_include_cordoned_awaits_cordoned_nodes_too(sim: Any, run_cli: Any) -> None:
    sim.add_node("cordoned", unschedulable=True)
    result = run_cli("await", "--image", BUSYBOX, "--include-cordoned", "--interval", "200ms")
    assert result.code == 0, result.output
    assert [n["name"] for n in result.report["nodes"]] == ["cordoned"]
    assert len([r for r in sim.requests if r.method == "POST"]) == 1


def test_tolerated_taints_and_affinity_from_the_spec_decide_the_targets(
    sim: Any, run_cli: Any, tmp_path: Any
) -> None:
    sim.add_node(
        "gpu-1",
        labels={"pool": "gpu", "cores": "64"},
        taints=({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},),
    )
    sim.add_node("cpu-1", labels={"pool": "cpu", "cores": "8"}, images=())
    sim.add_node("named", labels={"pool": "other"})
    spec = _spec(
        [NOTEBOOK],
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}],
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "cores", "operator": "Gt", "values": ["16"]}
                            ]
                        },
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": ["named"]}
                            ]
                        },
                    ]
                }
            }
        },
    )
    path = tmp_path / "ds.yaml"
    path.write_text(json.dumps(spec))
    result = run_cli("await", "--daemonset-spec", str(path), "--interval", "200ms")
    assert result.code == 0, result.output
    assert sorted(n["name"] for n in result.report["nodes"]) == ["gpu-1", "named"]
    assert "affinity" in excluded(result)["cpu-1"]


def test_images_from_init_containers_containers_and_image_volumes_are_all_awaited(
    sim: Any, run_cli: Any, tmp_path: Any
) -> None:
    sim.add_node("a")
    spec = _spec(
        ["quay.io/a/init:1"], containers=["quay.io/a/main:1"], volumes=["quay.io/a/volume:1"]
    )
    (tmp_path / "ds.yaml").write_text(json.dumps(spec))
    result = run_cli("await", "--daemonset-spec", str(tmp_path / "ds.yaml"), "--interval", "200ms")
    assert result.code == 0, result.output
    awaited = {i["reference"] for i in result.report["images"]}
    assert awaited == {"quay.io/a/init:1", "quay.io/a/main:1", "quay.io/a/volume:1"}
    wanted = {"quay.io/a/init:1", "quay.io/a/main:1", "quay.io/a/volume:1"}

    def listed(s: Any) -> bool:  # node status trails the pod's, as a kubelet's does
        node = s.objects("nodes")[0]
        return wanted <= {n for image in node["status"]["images"] for n in image["names"]}

    assert sim.wait_for(listed)


def test_an_image_given_with_a_spec_that_never_pulls_it_is_warned_about(
    sim: Any, run_cli: Any, tmp_path: Any
) -> None:
    sim.add_node("a")
    (tmp_path / "ds.yaml").write_text(json.dumps(_spec(["quay.io/a/init:1"])))
    result = run_cli(
        "await",
        "--daemonset-spec",
        str(tmp_path / "ds.yaml"),
        "--image",
        "quay.io/a/elsewhere:1",
        "--timeout",
        "2s",
    )
    assert result.code == 1, result.output
    warnings = [json.loads(line) for line in result.stderr.splitlines() if "not_in_spec" in line]
    assert [w["image"] for w in warnings] == ["quay.io/a/elsewhere:1"]
    assert [i["reference"] for i in result.report["images"]] == ["quay.io/a/elsewhere:1"]


def test_generated_puller_needs_no_shell_is_restricted_and_has_limits(
    sim: Any, run_cli: Any
) -> None:
    sim.registry.add("gcr.io/distroless/static:nonroot", has_shell=False, pull_seconds=0.1)
    sim.add_node("a")
    result = run_cli(
        "await",
        "--image",
        "gcr.io/distroless/static:nonroot",
        "--keep-daemonset",
        "--interval",
        "200ms",
    )
    assert result.code == 0, result.output
    [daemonset] = our_daemonsets(sim)
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in pod["initContainers"] + pod["containers"]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["limits"] and container["resources"]["requests"]
        assert not {"/bin/sh", "sh", "sleep", "echo"} & set(container.get("command", []))
    pods = sim.objects("pods", "default")
    assert pods and all(p["status"]["phase"] == "Running" for p in pods)


def test_keep_daemonset_leaves_it_in_place(sim: Any, run_cli: Any) -> None:
    sim.add_node("a")
    result = run_cli("await", "--image", BUSYBOX, "--keep-daemonset", "--interval", "200ms")
    assert result.code == 0, result.output
    assert len(our_daemonsets(sim)) == 1
    assert result.report["daemonset"]["deleted"] is False


def test_timeout_fails_with_exit_1_and_a_report_naming_the_missing_nodes(
    sim: Any, run_cli: Any
) -> None:
    sim.registry.add("quay.io/huge/model:1", size_bytes=40 * 1024**3, pull_seconds=600)
    sim.add_node("slow")
    sim.add_node("fast", images=("quay.io/huge/model:1",))
    result = run_cli(
        "await", "--image", "quay.io/huge/model:1", "--timeout", "2s", "--interval", "200ms"
    )
    assert result.code == 1, result.output
    assert_clean_failure(result)
    assert "timed out" in result.last_line and "slow" in result.last_line
    assert node_report(result, "slow")["status"] == "pulling"
    assert node_report(result, "slow")["missing"] == ["quay.io/huge/model:1"]
    assert node_report(result, "fast")["status"] == "done"
    assert our_daemonsets(sim) == []


def test_timeout_with_on_timeout_succeed_exits_zero_with_a_warning(sim: Any, run_cli: Any) -> None:
    sim.registry.add("quay.io/huge/model:1", pull_seconds=600)
    sim.add_node("slow")
    result = run_cli(
        "await",
        "--image",
        "quay.io/huge/model:1",
        "--timeout",
        "1s",
        "--on-timeout",
        "succeed",
        "--interval",
        "200ms",
    )
    assert result.code == 0, result.output
    assert "run.timeout_ignored" in result.stderr
    assert result.report["result"] == "timeout"
    assert our_daemonsets(sim) == []


def test_invalid_image_name_fails_at_once_with_exit_4_naming_node_image_and_reason(
    sim: Any, run_cli: Any
) -> None:
    sim.add_node("a")
    sim.fail_pull(
        "quay.io/org/broken:1",
        reason="InvalidImageName",
        message='Failed to apply default image tag "quay.io/org/broken:1"',
    )
    result = run_cli(
        "await", "--image", "quay.io/org/broken:1", "--timeout", "60s", "--interval", "200ms"
    )
    assert result.code == 4, result.output
    assert_clean_failure(result)
    assert "quay.io/org/broken:1" in result.last_line and "InvalidImageName" in result.last_line
    assert " a:" in result.last_line or "node a" in result.last_line
    [failure] = node_report(result, "a")["failures"]
    assert failure["reason"] == "InvalidImageName"
    assert our_daemonsets(sim) == []


def test_persistent_err_image_pull_fails_after_the_grace_period(sim: Any, run_cli: Any) -> None:
    sim.add_node("a")
    sim.fail_pull(
        "quay.io/org/private:1",
        reason="ErrImagePull",
        message="dial tcp 10.0.0.7:443: i/o timeout",  # transient: the grace applies
    )
    result = run_cli(
        "await",
        "--image",
        "quay.io/org/private:1",
        "--pull-failure-grace",
        "1s",
        "--timeout",
        "60s",
        "--interval",
        "200ms",
    )
    assert result.code == 4, result.output
    failure = node_report(result, "a")["failures"][0]
    assert failure["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert "i/o timeout" in failure["message"]
    assert failure["errorClass"] == "transient"


def test_a_pull_that_fails_then_succeeds_within_the_grace_period_succeeds(
    sim: Any, run_cli: Any
) -> None:
    sim.add_node("a")
    sim.fail_pull("quay.io/org/flaky:1", reason="ErrImagePull", message="i/o timeout", times=1)
    result = run_cli(
        "await",
        "--image",
        "quay.io/org/flaky:1",
        "--pull-failure-grace",
        "60s",
        "--timeout",
        "60s",
        "--interval",
        "200ms",
    )
    assert result.code == 0, result.output


def test_an_unschedulable_puller_is_reported_not_waited_on_silently(sim: Any, run_cli: Any) -> None:
    sim.add_node("full", max_pods=0)
    result = run_cli("await", "--image", BUSYBOX, "--timeout", "2s", "--interval", "200ms")
    assert result.code == 1, result.output
    node = node_report(result, "full")
    assert node["status"] == "unschedulable"
    assert "Too many pods" in node["detail"]


def test_nodes_that_join_during_the_wait_are_awaited(sim: Any, tmp_path: Any) -> None:
    sim.registry.add("quay.io/org/slow:1", pull_seconds=20)  # x0.05 time scale: 1 s per pull
    sim.add_node("first")
    kubeconfig = sim.write_kubeconfig(tmp_path / "kc")
    proc = spawn_await(kubeconfig, "quay.io/org/slow:1", "--report", "-")
    assert sim.wait_for(lambda s: len(our_daemonsets(s)) == 1, timeout=20)
    sim.add_node("joiner")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert sorted(n["name"] for n in report["nodes"]) == ["first", "joiner"]


def test_nodes_that_leave_during_the_wait_are_dropped(sim: Any, tmp_path: Any) -> None:
    sim.registry.add("quay.io/org/slow:1", pull_seconds=20)
    sim.add_node("stays")
    sim.add_node("leaves")
    sim.set_node_ready("leaves", True)
    kubeconfig = sim.write_kubeconfig(tmp_path / "kc")
    sim.fail_pull("quay.io/org/slow:1", reason="ErrImagePull", message="stuck", nodes=["leaves"])
    proc = spawn_await(
        kubeconfig, "quay.io/org/slow:1", "--pull-failure-grace", "10m", "--report", "-"
    )
    assert sim.wait_for(lambda s: len(our_daemonsets(s)) == 1, timeout=20)
    sim.remove_node("leaves")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert [n["name"] for n in json.loads(out)["nodes"]] == ["stays"]


def _spec(
    init: list[str],
    *,
    containers: list[str] | None = None,
    volumes: list[str] | None = None,
    **pod: Any,
) -> dict[str, Any]:
    labels = {"app": "puller"}
    pod_spec: dict[str, Any] = {
        "initContainers": [
            {"name": f"init-{i}", "image": ref, "command": ["/helper/noop"]}
            for i, ref in enumerate(init)
        ],
        "containers": [
            {"name": f"main-{i}", "image": ref}
            for i, ref in enumerate(containers or ["registry.k8s.io/pause:3.10"])
        ],
        **pod,
    }
    if volumes:
        pod_spec["volumes"] = [
            {"name": f"v{i}", "image": {"reference": ref}} for i, ref in enumerate(volumes)
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "puller"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def test_a_recreated_daemonset_still_reaches_nodes_done_only_on_a_puller_pods_word(
    sim: Any, tmp_path: Any
) -> None:
    """Regression (chaos seed 2033): a node whose image is past the 50-image status cap is done
    only while its puller pod says so. When someone deleted the DaemonSet, the recreated one
    skipped that node by name, its old pod went with the old DaemonSet, and the run waited on
    it until the timeout. Now only nodes whose own status lists every image are skipped."""
    big = [f"registry.example.com/big/image-{i}:1" for i in range(50)]
    for ref in big:
        sim.registry.add(ref, size_bytes=5 * 1024**3, pull_seconds=0.01)
    small = "registry.example.com/small:1"
    sim.registry.add(small, size_bytes=1024, pull_seconds=0.2)
    sim.add_node("full", images=tuple(big))  # the small image never shows in its status
    sim.add_node("stuck")
    sim.fail_pull(small, kind="rate-limited", nodes=["stuck"])  # keeps the run waiting
    kubeconfig = sim.write_kubeconfig(tmp_path / "kc")
    proc = spawn_await(kubeconfig, small, "--pull-failure-grace", "10m", "--timeout", "60s")
    assert proc.stderr is not None
    for line in proc.stderr:  # the awaiter has judged "full" done (on its pod's word)
        if '"node.done"' in line and '"full"' in line:
            break
    first = our_daemonsets(sim)
    assert len(first) == 1
    sim.delete("daemonsets", first[0]["metadata"]["name"], "default")
    assert sim.wait_for(
        lambda s: (
            [d["metadata"]["uid"] for d in our_daemonsets(s)]
            not in ([], [first[0]["metadata"]["uid"]])
        ),
        timeout=20,
    )
    recreated = json.dumps(our_daemonsets(sim)[0]["spec"]["template"]["spec"].get("affinity"))
    assert '"full"' not in recreated, recreated
    sim.pull_failures.clear()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err

"""The DaemonSet the chart renders into its ConfigMap, run by the real CLI against the
simulated cluster: it pulls every configured image, including shell-less ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simcluster.apiserver.kinds import SERVED
from tests.chart.conftest import Render, one

BY_KIND = {k.kind: k.resource for k in SERVED}
IMAGE = "quay.io/jupyter/base-notebook:2025-06-02"


def test_the_charts_daemonset_pulls_every_image_with_no_shell(
    sim: Any, run_cli: Any, render: Render, tmp_path: Path
) -> None:
    images = ["gcr.io/distroless/static:nonroot", "quay.io/jupyter/base-notebook:2025-06-02"]
    sim.registry.add(images[0], has_shell=False, pull_seconds=2)
    sim.registry.add(images[1], pull_seconds=4)
    for name in ("user-a", "user-b"):
        sim.add_node(name)
    sim.add_node("core", taints=({"key": "dedicated", "value": "core", "effect": "NoSchedule"},))
    configmap = one(render(sets=(f"images[0]={images[0]}", f"images[1]={images[1]}")), "ConfigMap")
    spec = tmp_path / "daemonset.yaml"
    spec.write_text(configmap["data"]["daemonset.yaml"])
    result = run_cli(
        "await", "--daemonset-spec", str(spec), "--interval", "200ms", "--keep-daemonset"
    )
    assert result.code == 0, result.output
    assert sorted(n["name"] for n in result.report["nodes"]) == ["user-a", "user-b"]
    assert "dedicated=core:NoSchedule" in result.report["excluded"][0]["reason"]
    pods = sim.objects("pods", "default")
    assert pods
    for pod in pods:
        statuses = pod["status"]["initContainerStatuses"]
        assert all(s["state"].get("terminated", {}).get("exitCode") == 0 for s in statuses), (
            statuses
        )

    def listed_on_user_nodes(s: Any) -> bool:  # node status trails the pods', as a kubelet's
        return all(
            set(images) <= {n for image in node["status"]["images"] for n in image["names"]}
            for node in s.objects("nodes")
            if node["metadata"]["name"].startswith("user")
        )

    assert sim.wait_for(listed_on_user_nodes)


def test_the_charts_pull_groups_pull_gpu_images_only_on_the_gpu_pool_and_arm_tools_on_arm(
    sim: Any, run_cli: Any, render: Render, tmp_path: Path
) -> None:
    """The README's JupyterHub recipe (chart/ci/groups-values.yaml): the default image
    everywhere, the CUDA profile images on the GPU pool, an arm64-only image on the arm pool."""
    cuda = "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-20"
    arm_tools = "ghcr.io/example-org/arm-tools:1.2.0"
    default = "quay.io/jupyterhub/k8s-singleuser-sample:4.1.0"
    sim.registry.add(cuda, platforms=("linux/amd64",))
    sim.registry.add(arm_tools, platforms=("linux/arm64",))
    cpu = sim.add_node_pool("cpu", 1)
    gpu = sim.add_node_pool(
        "gpu",
        2,
        labels={"nvidia.com/gpu.present": "true"},
        taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
    )
    arm = sim.add_node_pool("arm", 1, arch="arm64")
    configmap = one(render("groups-values.yaml"), "ConfigMap")
    spec = tmp_path / "daemonset.yaml"
    spec.write_text(configmap["data"]["daemonset.yaml"])
    result = run_cli("await", "--daemonset-spec", str(spec), "--interval", "200ms")
    assert result.code == 0, result.output

    def pulled(image: str) -> set[str]:
        return {r.node for r in sim.pull_history(image=image) if r.outcome != "failed"}

    assert pulled(cuda) == set(gpu)
    assert pulled(arm_tools) == set(arm)
    assert pulled(default) == set(cpu + gpu + arm)  # the puller tolerates the GPU taint
    assert len(result.report["groups"]) == 3
    assert not [d for d in sim.objects("daemonsets", "default")]


def run_hook(sim: Any, render: Render) -> str:
    """The rendered chart created as Helm would create it (without Helm), every hook resource
    before the Job; returns the ServiceAccount user its pod acts as once the Job finished."""
    sim.registry.add(IMAGE, pull_seconds=20)
    sim.add_namespace("jhub")
    for name in ("user-a", "user-b"):
        sim.add_node(name)
    objects = render(sets=(f"images[0]={IMAGE}",))
    for obj in objects:  # what the hook needs exists first (its hook weights say so)
        if obj["kind"] != "Job":
            sim.create(BY_KIND[obj["kind"]], obj, namespace="jhub")
    job = sim.create("jobs", one(objects, "Job"), namespace="jhub")

    def finished(s: Any) -> bool:
        status = (s.store.get("jobs", job["metadata"]["name"], "jhub") or {}).get("status") or {}
        return any(c["type"] in ("Complete", "Failed") for c in status.get("conditions") or [])

    assert sim.wait_for(finished, timeout=90)
    return f"system:serviceaccount:jhub:{job['spec']['template']['spec']['serviceAccountName']}"


def test_the_charts_hook_job_runs_the_real_cli_under_its_rbac_and_completes(
    sim: Any, render: Render
) -> None:
    """The Job's pod runs the CLI with the chart's args, env, mounted spec and ServiceAccount."""
    user = run_hook(sim, render)
    [job] = sim.objects("jobs", "jhub")
    [pod] = sim.objects("pods", "jhub")
    log = sim.pod_logs[("jhub", pod["metadata"]["name"])].decode()
    assert [c["type"] for c in job["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert "run.succeeded" in log
    assert sim.objects("daemonsets", "jhub") == []
    for node in sim.objects("nodes"):
        assert any(IMAGE in i["names"] for i in node["status"]["images"]), node["metadata"]
    verbs = {(e.verb, e.resource) for e in sim.audit.by(user) if e.code < 400}
    # Nodes are read as one streaming list (a watch with sendInitialEvents), see README.
    assert {("create", "daemonsets"), ("delete", "daemonsets"), ("watch", "nodes")} <= verbs


def test_the_charts_hook_job_makes_no_request_its_rbac_refuses(sim: Any, render: Render) -> None:
    user = run_hook(sim, render)
    refused = [(e.verb, e.resource, e.code) for e in sim.audit.by(user) if e.code >= 400]
    assert refused == []

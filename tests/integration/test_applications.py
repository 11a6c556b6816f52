"""Images derived from the applications' own configuration, end to end: the real CLI reads real
`helm template` renderings (tests/fixtures/apps/: zero-to-jupyterhub 4.4.0 and 0.9.1, che's
kubernetes-image-puller 1.1.2; each file's header names the chart, its commit and the values)
and plans, against the simulated cluster, each image on exactly the nodes its pods can land on:
a CPU user pool, a tainted GPU pool, an arm64 user pool and untainted core nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from image_awaiter.spec.pullers import GROUP_LABEL
from tests.integration.helpers import jupyterhub_pools, planned_nodes, writes

APPS = Path(__file__).parent.parent / "fixtures" / "apps"
WORKSPACE = {"key": "che.eclipse.org/workspaces", "value": "true", "effect": "NoSchedule"}

SCIPY = "quay.io/jupyter/scipy-notebook:2025-06-02"
CUDA = "quay.io/jupyter/pytorch-notebook:cuda12-2025-06-02"
ARM_TOOLS = "ghcr.io/example-org/arm-tools:1.2.0"
R = "quay.io/jupyter/r-notebook:2025-06-02"
JULIA = "quay.io/jupyter/julia-notebook:2025-06-02"
NETWORK_TOOLS = "quay.io/jupyterhub/k8s-network-tools:4.4.0"
INIT = "docker.io/alpine/git:v2.49.0"
SIDECAR = "ghcr.io/example-org/usage-exporter:0.3.1"
DASK = "ghcr.io/dask/dask:2025.5.1"
HUB = "quay.io/jupyterhub/k8s-hub:4.4.0"
PAUSE = "registry.k8s.io/pause:3.10.1"
HOOK_AWAITER = "quay.io/jupyterhub/k8s-image-awaiter:4.4.0"


@pytest.fixture
def pools(sim: Any) -> dict[str, set[str]]:
    return jupyterhub_pools(sim)


def test_every_z2jh_profile_image_is_planned_on_exactly_the_nodes_its_pods_can_land_on(
    sim: Any, pools: dict[str, set[str]], run_cli: Any
) -> None:
    result = run_cli("await", "--from-manifests", str(APPS / "z2jh-4.4.0.yaml"), "--dry-run")
    assert result.code == 1, result.output  # nothing is on the nodes yet
    assert writes(sim) == []
    report = result.report
    assert report is not None
    user_nodes = pools["core"] | pools["cpu"] | pools["arm"]  # `prefer` does not limit
    everywhere_user_pods_go = user_nodes | pools["gpu"]
    assert planned_nodes(report) == {
        SCIPY: user_nodes,
        R: user_nodes,
        JULIA: user_nodes,
        DASK: user_nodes,
        CUDA: pools["gpu"],
        ARM_TOOLS: pools["arm"],
        NETWORK_TOOLS: everywhere_user_pods_go,
        INIT: everywhere_user_pods_go,
        SIDECAR: everywhere_user_pods_go,
        HUB: pools["core"],  # core pods tolerate only the core taint
        "quay.io/jupyterhub/configurable-http-proxy:5.2.0": pools["core"],
        "registry.k8s.io/kube-scheduler:v1.30.14": pools["core"],
        PAUSE: user_nodes,  # the user placeholders
    }
    groups = {g["name"]: g for g in report["groups"]}
    assert {"cpu-small-default", "gpu", "arm", "datascience", "datascience-r"} <= set(groups)
    assert groups["datascience-julia"]["workloads"] == [
        'Secret/hub: profile "Data science" with image=julia'
    ]
    assert [i["reference"] for i in report["images"]].count(HOOK_AWAITER) == 0
    skipped = {(s["kind"], s["name"], s.get("key", "")): s for s in report["skipped"]}
    assert set(skipped) == {
        ("DaemonSet", "continuous-image-puller", ""),
        ("DaemonSet", "hook-image-puller", ""),
        ("Job", "hook-image-awaiter", ""),
        ("Secret", "hub", "values.yaml: hub.extraConfig.dask-gateway"),
        (
            "Secret",
            "hub",
            "values.yaml: singleuser.profileList[datascience]"
            ".profile_options.image.unlisted_choice",
        ),
    }
    assert skipped[("Job", "hook-image-awaiter", "")]["images"] == [HOOK_AWAITER]
    assert skipped[("Secret", "hub", "values.yaml: hub.extraConfig.dask-gateway")]["images"] == [
        "ghcr.io/dask/dask-gateway:2025.4.0"
    ]
    assert (
        "a Helm hook (pre-install,pre-upgrade)"
        in skipped[("Job", "hook-image-awaiter", "")]["reason"]
    )
    assert '"event": "manifests.skipped"' in result.stderr


def test_the_pullers_planned_for_z2jh_copy_no_hook_annotation_or_service_account(
    sim: Any, pools: dict[str, set[str]], run_cli: Any
) -> None:
    result = run_cli(
        "await", "--from-manifests", str(APPS / "z2jh-4.4.0.yaml"), "--dry-run", "-o", "yaml"
    )
    assert result.code == 1, result.output
    daemonsets = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert daemonsets and all(d["kind"] == "DaemonSet" for d in daemonsets)
    assert "helm.sh/hook" not in result.stdout
    assert all("serviceAccountName" not in d["spec"]["template"]["spec"] for d in daemonsets)
    pulled = {
        c["image"]
        for d in daemonsets
        for c in d["spec"]["template"]["spec"].get("initContainers", [])
    }
    assert HOOK_AWAITER not in pulled and CUDA in pulled
    [gpu] = [d for d in daemonsets if d["metadata"]["labels"][GROUP_LABEL] == "gpu"]
    gpu_spec = gpu["spec"]["template"]["spec"]
    assert gpu_spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu_spec[
        "tolerations"
    ]


def test_an_old_z2jh_hub_configmap_gives_its_profiles_named_by_kubespawners_slug(
    sim: Any, pools: dict[str, set[str]], run_cli: Any
) -> None:
    result = run_cli("await", "--from-manifests", str(APPS / "z2jh-0.9.1.yaml"), "--dry-run")
    assert result.code == 1, result.output
    report = result.report
    assert report is not None
    groups = {g["name"]: g for g in report["groups"]}
    assert groups["gpu-tensorflow"]["workloads"] == [
        'ConfigMap/hub-config: profile "GPU: TensorFlow"'
    ]
    planned = planned_nodes(report)
    assert planned["jupyter/tensorflow-notebook:2021-03-01"] == pools["gpu"]
    assert (
        planned["jupyter/scipy-notebook:2021-03-01"] == pools["core"] | pools["cpu"] | pools["arm"]
    )
    assert {s["name"] for s in report["skipped"]} == {
        "continuous-image-puller",
        "hook-image-puller",
        "hook-image-awaiter",
    }


def test_ches_puller_images_go_only_to_the_amd64_workspace_nodes_it_selects(
    sim: Any, run_cli: Any
) -> None:
    workspace = {"che.eclipse.org/workspaces": "true"}
    amd = set(sim.add_node_pool("ws", 2, labels=workspace, taints=[WORKSPACE]))
    sim.add_node_pool("wsarm", 1, labels=workspace, taints=[WORKSPACE], arch="arm64")
    other = set(sim.add_node_pool("other", 2))
    result = run_cli("await", "--from-manifests", str(APPS / "kip-1.1.2.yaml"), "--dry-run")
    assert result.code == 1, result.output
    assert result.report is not None
    assert planned_nodes(result.report) == {
        "quay.io/che-incubator/che-code:7.100.0": amd,
        "quay.io/devfile/universal-developer-image:ubi9-2025.06": amd,
        "quay.io/devfile/base-developer-image:ubi9-latest": amd,
        "quay.io/eclipse/kubernetes-image-puller:next": other,  # the controller Deployment
    }
    assert result.report["skipped"] == []
    assert writes(sim) == []


def test_ches_images_are_really_pulled_on_their_nodes_by_await(sim: Any, run_cli: Any) -> None:
    workspace = {"che.eclipse.org/workspaces": "true"}
    amd = set(sim.add_node_pool("ws", 2, labels=workspace, taints=[WORKSPACE]))
    sim.add_node_pool("other", 1)
    result = run_cli(
        "await", "--from-manifests", str(APPS / "kip-1.1.2.yaml"), "--interval", "200ms"
    )
    assert result.code == 0, result.output
    pulled = {
        r.node
        for r in sim.pull_history(image="quay.io/che-incubator/che-code:7.100.0")
        if r.outcome in ("pulled", "present")
    }
    assert pulled == amd
    assert result.report is not None
    assert result.report["message"] == "all 3 target nodes have all 4 images"


def test_await_pulls_each_z2jh_profile_image_only_on_its_profiles_nodes(
    sim: Any, pools: dict[str, set[str]], run_cli: Any
) -> None:
    sim.registry.add(CUDA, platforms=("linux/amd64",))  # as CUDA images are published
    sim.registry.add(ARM_TOOLS, platforms=("linux/arm64",))
    result = run_cli(
        "await", "--from-manifests", str(APPS / "z2jh-4.4.0.yaml"), "--interval", "200ms"
    )
    assert result.code == 0, result.output

    def pulled_on(image: str) -> set[str]:
        history = sim.pull_history(image=image)
        return {r.node for r in history if r.outcome in ("pulled", "present")}

    assert pulled_on(CUDA) == pools["gpu"]
    assert pulled_on(ARM_TOOLS) == pools["arm"]
    assert pulled_on(SCIPY) == pools["core"] | pools["cpu"] | pools["arm"]
    assert pulled_on(HOOK_AWAITER) == set()
    assert list(sim.objects("daemonsets", "default")) == []

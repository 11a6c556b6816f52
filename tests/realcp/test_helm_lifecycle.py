"""On the real control plane, with the real helm 3 and helm 4: the chart as a dependency of a
normal application chart (tests/fixtures/charts/shop: a Deployment, a Service, a ConfigMap)
installed, upgraded with a new image, failed on a missing tag, recovered and uninstalled.

The hook Job's pod runs the real CLI as a process of the HTTP kubelet simulator, with its
projected ServiceAccount token, so the chart's RBAC, hook weights and delete policy, the Job
controller, the scheduler and the garbage collector are all the real ones. The tests of this
module are the chapters of one release's story per helm major, run in the order written."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from simcluster.controlplane.endpoints import Endpoint
from simcluster.nodes.apiclient import Api
from simcluster.nodes.kubelet import Kubelets
from simcluster.nodes.world import NodeWorld
from tests.realcp.charts import CHART, TOOLS

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "tests" / "fixtures" / "charts" / "shop"
RUN_LABEL = "image-awaiter.test/run"
BASE = "quay.io/jupyter/base-notebook:2025-06-02"
SCIPY = "quay.io/jupyter/scipy-notebook:2025-06-02"
MISSING = "quay.io/jupyter/no-such-notebook:2099-01-01"
RELEASE = "shop"
# `make helm`: helm 4 as .tools/bin/helm, helm 3.17 as .tools/bin/helm3; (binary, version).
HELMS = {"helm3": ("helm3", "v3."), "helm4": ("helm", "v4.")}


@dataclass
class Story:
    """One release's world: its namespace, nodes, helm and chart."""

    control_plane: Endpoint
    helm_binary: Path
    namespace: str
    run: str
    chart: Path
    home: Path
    world: NodeWorld

    def helm(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "KUBECONFIG": str(self.home / "kubeconfig"),
            "HELM_CACHE_HOME": str(self.home / "helm-cache"),
            "HELM_CONFIG_HOME": str(self.home / "helm-config"),
            "HELM_DATA_HOME": str(self.home / "helm-data"),
        }
        return subprocess.run(
            [str(self.helm_binary), *args, "--namespace", self.namespace],
            capture_output=True, text=True, env=env, cwd=self.home, timeout=timeout,
            check=False,
        )  # fmt: skip

    def values(self, *images: str) -> list[str]:
        """Values pinning the application, the hook and its pullers to this story's nodes."""
        pin = {RUN_LABEL: self.run}
        values = {
            "nodeSelector": pin,
            "prePuller": {
                "images": list(images),
                "awaiter": {"nodeSelector": pin, "timeout": "90s"},
                "puller": {"nodeSelector": {"kubernetes.io/os": "linux", **pin}},
            },
        }
        path = self.home / f"values-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(values))
        return ["-f", str(path)]

    def status(self) -> str:
        shown = self.helm("status", RELEASE, "-o", "json")
        assert shown.returncode == 0, shown.stderr
        return str(json.loads(shown.stdout)["info"]["status"])

    def get(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.control_plane.admin.get(path.format(ns=self.namespace))[
            "items"
        ]
        return items

    def node_images(self) -> dict[str, set[str]]:
        nodes = self.get(f"/api/v1/nodes?labelSelector={RUN_LABEL}%3D{self.run}")
        return {
            n["metadata"]["name"]: {
                name for i in n["status"].get("images") or [] for name in i["names"]
            }
            for n in nodes
        }

    def hook_pods(self) -> list[dict[str, Any]]:
        return self.get(
            "/api/v1/namespaces/{ns}/pods?labelSelector=app.kubernetes.io%2Fcomponent%3Dhook"
        )


def _build(chart_dir: Path, helm_binary: Path, home: Path) -> Path:
    chart = chart_dir / "shop"
    shutil.copytree(SHOP, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["dependencies"][0]["repository"] = f"file://{CHART}"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "HELM_CACHE_HOME": str(home / "c"),
           "HELM_CONFIG_HOME": str(home / "g"), "HELM_DATA_HOME": str(home / "d")}  # fmt: skip
    built = subprocess.run(
        [str(helm_binary), "dependency", "build", str(chart)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    return chart


@pytest.fixture(scope="module", params=sorted(HELMS))
def story(
    request: pytest.FixtureRequest,
    control_plane: Endpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Story]:
    binary, major = HELMS[request.param]
    helm_binary = TOOLS / binary
    assert helm_binary.exists(), f"{helm_binary} missing: run `make helm`"
    version = subprocess.run([str(helm_binary), "version", "--short"], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    assert version.startswith(major), version
    home = tmp_path_factory.mktemp(request.param)
    run = f"{request.param}-{uuid.uuid4().hex[:6]}"
    namespace = f"lifecycle-{run}"
    admin = control_plane.admin
    admin.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    admin.wait_for(f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
    control_plane.write_kubeconfig(home / "kubeconfig", namespace=namespace)
    world = NodeWorld(time_scale=0.05)
    world.registry.add(BASE, pull_seconds=20)
    world.registry.add(SCIPY, pull_seconds=40)
    world.fail_pull(MISSING, kind="tag-not-found")
    kubelets = Kubelets(Api.from_kubeconfig(control_plane.kubeconfig), world=world)
    kubelets.start()
    for index in range(2):
        kubelets.add_node(f"{run}-{index}", labels={RUN_LABEL: run})
    made = Story(control_plane, helm_binary, namespace, run, _build(home, helm_binary, home),
                 home, world)  # fmt: skip
    try:
        yield made
    finally:
        made.helm("uninstall", RELEASE)
        admin.request("DELETE", f"/api/v1/namespaces/{namespace}")
        deadline = time.monotonic() + 30  # the kubelets finish the pods' graceful deletion
        while admin.exists(f"/api/v1/namespaces/{namespace}") and time.monotonic() < deadline:
            time.sleep(0.2)
        kubelets.stop()
        kubelets.remove_nodes()


def _written(control_plane: Endpoint, namespace: str, resource: str) -> list[str]:
    """When objects of `resource` were written in the namespace (the audit log's stamps):
    helm 3 creates them, helm 4 applies them server-side (a PATCH that creates)."""
    stamps = []
    for line in control_plane.audit_log.read_text().splitlines():
        entry = json.loads(line)
        ref = entry.get("objectRef") or {}
        if (
            entry["verb"] in ("create", "patch")
            and (ref.get("resource"), ref.get("namespace")) == (resource, namespace)
            and not ref.get("subresource")
            and entry["responseStatus"]["code"] in (200, 201)
            and entry["user"]["username"] != "system:serviceaccount:kube-system:job-controller"
        ):
            stamps.append(entry["requestReceivedTimestamp"])
    return stamps


def test_install_runs_the_hook_before_the_application_and_pulls_every_image(
    story: Story,
) -> None:
    done = story.helm("install", RELEASE, str(story.chart), *story.values(BASE))
    assert done.returncode == 0, done.stderr
    assert story.status() == "deployed"
    assert all(BASE in names for names in story.node_images().values()), story.node_images()
    jobs = _written(story.control_plane, story.namespace, "jobs")
    deployments = _written(story.control_plane, story.namespace, "deployments")
    assert jobs and deployments and max(jobs) < min(deployments), (jobs, deployments)
    assert story.get("/apis/apps/v1/namespaces/{ns}/deployments")
    assert story.get("/api/v1/namespaces/{ns}/services")
    assert story.get("/apis/batch/v1/namespaces/{ns}/jobs") == []  # hook-succeeded
    assert story.get("/apis/apps/v1/namespaces/{ns}/daemonsets") == []


def test_an_upgrade_adding_an_image_pulls_it_onto_every_node_before_helm_returns(
    story: Story,
) -> None:
    done = story.helm("upgrade", RELEASE, str(story.chart), *story.values(BASE, SCIPY))
    assert done.returncode == 0, done.stderr
    assert story.status() == "deployed"
    assert all(SCIPY in names for names in story.node_images().values()), story.node_images()


def test_an_upgrade_with_a_missing_tag_fails_in_the_hook_and_says_why(story: Story) -> None:
    started = time.monotonic()
    done = story.helm("upgrade", RELEASE, str(story.chart), *story.values(BASE, MISSING))
    assert done.returncode != 0, done.stdout
    assert time.monotonic() - started < 60, "a missing tag fails at once, not at a timeout"
    assert story.status() == "failed"
    [pod] = story.hook_pods()
    [status] = pod["status"]["containerStatuses"]
    terminated = status["state"]["terminated"]
    assert terminated["exitCode"] == 4, terminated
    assert MISSING in terminated["message"] and "not found" in terminated["message"]


def test_the_next_upgrade_with_good_images_recovers_the_release(story: Story) -> None:
    done = story.helm("upgrade", RELEASE, str(story.chart), *story.values(BASE, SCIPY))
    assert done.returncode == 0, done.stderr
    assert story.status() == "deployed"
    assert story.get("/apis/batch/v1/namespaces/{ns}/jobs") == []


def test_uninstall_leaves_nothing_of_the_chart_or_the_application_behind(story: Story) -> None:
    done = story.helm("uninstall", RELEASE)
    assert done.returncode == 0, done.stderr
    instance = f"labelSelector=app.kubernetes.io%2Finstance%3D{RELEASE}"
    for path in (
        "/apis/apps/v1/namespaces/{ns}/deployments",
        "/api/v1/namespaces/{ns}/services",
        "/api/v1/namespaces/{ns}/configmaps",
        "/apis/batch/v1/namespaces/{ns}/jobs",
        "/apis/apps/v1/namespaces/{ns}/daemonsets",
        "/api/v1/namespaces/{ns}/serviceaccounts",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    ):
        assert story.get(f"{path}?{instance}") == [], path
    cluster_roles = story.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles?{instance}")
    assert [r for r in cluster_roles if story.namespace in r["metadata"]["name"]] == []

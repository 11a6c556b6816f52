"""On the real control plane, with the real helm 3 and helm 4: the chart as a dependency of a
normal application chart (tests/fixtures/charts/shop: a Deployment, a Service, a ConfigMap)
installed, upgraded with a new image, failed on a missing tag, recovered and uninstalled.

The hook Job's pod runs the real CLI as a process of the HTTP kubelet simulator, with its
projected ServiceAccount token, so the chart's RBAC, hook weights and delete policy, the Job
controller, the scheduler and the garbage collector are all the real ones. The tests of this
module are the chapters of one release's story per helm major, run in the order written."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from simcluster.controlplane.endpoints import Endpoint
from tests.realcp.charts import kubectl
from tests.realcp.releases import (
    BASE,
    HELMS,
    MISSING,
    RELEASE,
    SCIPY,
    Story,
    release_world,
    written,
)


@pytest.fixture(scope="module", params=sorted(HELMS))
def story(
    request: pytest.FixtureRequest,
    control_plane: Endpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Story]:
    home = tmp_path_factory.mktemp(request.param)
    with release_world(control_plane, helm=request.param, home=home) as made:
        yield made


def test_install_runs_the_hook_before_the_application_and_pulls_every_image(
    story: Story,
) -> None:
    done = story.helm("install", RELEASE, str(story.chart), *story.values(BASE))
    assert done.returncode == 0, done.stderr
    assert story.status() == "deployed"
    assert all(BASE in names for names in story.node_images().values()), story.node_images()
    jobs = written(story.control_plane, story.namespace, "jobs")
    deployments = written(story.control_plane, story.namespace, "deployments")
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
    # what an operator does next: the hook pod's log, which kube-apiserver asks its kubelet for
    log = kubectl(story.control_plane, "logs", pod["metadata"]["name"], "-n", story.namespace)
    [last] = log.splitlines()[-1:]
    assert MISSING in last and "not found" in last, log


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

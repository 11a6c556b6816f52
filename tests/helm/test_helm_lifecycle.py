"""One release's life with the REAL helm: install, upgrade unchanged, upgrade adding an image,
upgrade with a missing image, recovery, uninstall. Run for the chart on its own and as a
dependency of an application chart (tests/fixtures/charts/hub, alias `prePuller`, with a
53-character release name, helm's longest).

The tests of this module are the chapters of one story and run in the order written (pytest
keeps it, also for a -k subset): each starts from the release the previous one left; the
failed upgrade is a fixture, so the tests that read it or recover from it also run alone.
Every test asserts on the audit log (who did what, in which order) and on the cluster's final
state."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simcluster import SimCluster
from simcluster.apiserver.audit import Entry
from tests.helm.conftest import (
    BASE,
    CHART,
    NAMESPACE,
    SCIPY,
    Cluster,
    app_chart,
    new_cluster,
)

# Not in the registry: the simulated kubelet fails its pull on one node with containerd's own
# words for a missing tag, e.g. sympozium-ai/sympozium#5 and cloudnative-pg/cloudnative-pg#2265:
# `rpc error: code = NotFound desc = failed to pull and unpack image "X": failed to resolve
# reference "X": X: not found`.
MISSING = "quay.io/jupyter/no-such-notebook:2099-01-01"
MISSING_MESSAGE = (
    f'rpc error: code = NotFound desc = failed to pull and unpack image "{MISSING}": '
    f'failed to resolve reference "{MISSING}": {MISSING}: not found'
)
BROKEN_NODE = "user-1"
# Short enough to keep the suite fast, long enough for a python process to start under load.
SHORT_TIMEOUT = 60
HOOK_KINDS = (
    "serviceaccounts",
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
    "configmaps",
)
LONGEST_RELEASE = "hub-with-a-name-as-long-as-helm-allows-for-a-release2"
assert len(LONGEST_RELEASE) == 53, "helm refuses release names over 53 characters"


@dataclass
class Release:
    cluster: Cluster
    chart: Path
    name: str
    prefix: str  # where the image-awaiter values live: "" standalone, "prePuller." as dependency
    before: set[tuple[str, str, str, str]] = field(default_factory=set)
    install_mark: int = 0
    install_end: int = 0

    def upgrade(self, *values: str, timeout: str = "3m") -> tuple[int, float, str]:
        """`helm upgrade` with `--set` values under the prefix: (exit code, seconds, output)."""
        args = ["upgrade", self.name, str(self.chart), "--timeout", timeout]
        for value in values:
            args += ["--set", f"{self.prefix}{value}"] if "=" in value else [value]
        started = time.monotonic()
        done = self.cluster.helm(*args)
        return done.returncode, time.monotonic() - started, done.stdout + done.stderr


@pytest.fixture(scope="module", params=["standalone", "dependency"])
def release(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    home = tmp_path_factory.mktemp(request.param)
    cluster = new_cluster(home)
    if request.param == "standalone":
        made = Release(cluster, CHART, "hub", "")
        install = ["--set", f"images={{{BASE}}}"]
    else:
        made = Release(cluster, app_chart(home), LONGEST_RELEASE, "prePuller.")
        install = []  # the application chart's values name BASE
    made.before = cluster.store_keys()
    made.install_mark = cluster.mark()
    done = cluster.helm("install", made.name, str(made.chart), "--timeout", "3m", *install)
    assert done.returncode == 0, done.stdout + done.stderr
    made.install_end = cluster.mark()
    try:
        yield made
    finally:
        cluster.sim.stop()


def service_account_users(entries: list[Entry]) -> set[str]:
    return {e.user for e in entries if e.user.startswith("system:serviceaccount:")}


def first(entries: list[Entry], verb: str, resource: str, code: int) -> int:
    """Index of the first entry that created/changed this resource with this code."""
    verbs = {"create", "patch"} if verb == "write" else {verb}
    return next(
        i
        for i, e in enumerate(entries)
        if e.verb in verbs and e.resource == resource and e.code == code
    )


def daemonset_writes(entries: list[Entry]) -> list[tuple[str, int]]:
    writes = {"create", "update", "patch", "delete", "deletecollection"}
    return [(e.verb, e.code) for e in entries if e.resource == "daemonsets" and e.verb in writes]


def says_why(text: str) -> bool:
    """Names the image, the node and the kubelet's reason (ErrImagePull, or ImagePullBackOff
    once the kubelet backs off: which one the awaiter saw last depends on timing)."""
    reasons = ("ErrImagePull", "ImagePullBackOff")
    return MISSING in text and BROKEN_NODE in text and any(r in text for r in reasons)


def assert_no_hook_leftovers(release: Release) -> None:
    """No DaemonSet, Job or pod is left in the namespace. Pods of a deleted Job or DaemonSet go
    with the garbage collector, after their owner (as for real), so this awaits the store."""

    def nothing_left(sim: SimCluster) -> bool:
        return not any(sim.objects(kind, NAMESPACE) for kind in ("daemonsets", "jobs", "pods"))

    sim = release.cluster.sim
    if not sim.wait_for(nothing_left, timeout=10):
        left = {k: sim.objects(k, NAMESPACE) for k in ("daemonsets", "jobs", "pods")}
        raise AssertionError({k: [o["metadata"]["name"] for o in v] for k, v in left.items()})


# ---------------------------------------------------------------------------- the chapters


def test_first_install_creates_the_hooks_rbac_and_spec_before_its_job_and_pulls_every_image(
    release: Release,
) -> None:
    entries = release.cluster.audit_since(release.install_mark)[
        : release.install_end - release.install_mark
    ]
    job_created = first(entries, "write", "jobs", 201)
    for resource in HOOK_KINDS:
        assert first(entries, "write", resource, 201) < job_created, resource
    [user] = service_account_users(entries)
    acted = [i for i, e in enumerate(entries) if e.user == user]
    assert acted and min(acted) > job_created
    # The awaiter created its puller DaemonSet, and deleted it before helm deleted the Job.
    assert daemonset_writes([entries[i] for i in acted]) == [("create", 201), ("delete", 200)]
    job = entries[job_created].name
    # Valid whatever the alias or release name: lowercase, within the 57 a Job's pods allow.
    assert job == job.lower() and len(job) <= 57, job
    job_deleted = next(
        i
        for i, e in enumerate(entries)
        if e.verb == "delete" and e.resource == "jobs" and e.name == job and e.code == 200
    )
    assert job_deleted > max(acted)  # hook-succeeded, once the awaiter was done
    assert release.cluster.status(release.name)["info"]["status"] == "deployed"
    assert all(BASE in names for names in release.cluster.node_images().values())
    assert_no_hook_leftovers(release)


def test_the_awaiters_service_account_makes_no_request_its_rbac_refuses(release: Release) -> None:
    entries = release.cluster.audit_since(release.install_mark)
    [user] = service_account_users(entries)
    refused = [(e.verb, e.resource, e.namespace, e.code) for e in entries if e.user == user]
    assert [r for r in refused if r[3] >= 400] == []


def test_an_upgrade_with_the_same_images_takes_the_fast_path_and_creates_no_daemonset(
    release: Release,
) -> None:
    mark = release.cluster.mark()
    code, _, output = release.upgrade("--reuse-values")
    assert code == 0, output
    entries = release.cluster.audit_since(mark)
    [user] = service_account_users(entries)  # the hook ran ...
    assert [e for e in entries if e.user == user and e.resource == "nodes"]
    assert daemonset_writes(entries) == []  # ... and found nothing to pull
    status = release.cluster.status(release.name)
    assert (status["info"]["status"], status["version"]) == ("deployed", 2)
    assert_no_hook_leftovers(release)


def test_an_upgrade_adding_an_image_pulls_it_onto_every_node_before_helm_returns(
    release: Release,
) -> None:
    mark = release.cluster.mark()
    code, _, output = release.upgrade(f"images={{{BASE},{SCIPY}}}")
    images_when_helm_returned = release.cluster.node_images()
    assert code == 0, output
    assert len(images_when_helm_returned) == 2
    for node, names in images_when_helm_returned.items():
        assert {BASE, SCIPY} <= names, node
    assert daemonset_writes(release.cluster.audit_since(mark)) == [
        ("create", 201),
        ("delete", 200),
    ]
    assert release.cluster.status(release.name)["info"]["status"] == "deployed"
    assert_no_hook_leftovers(release)


@dataclass
class Failed:
    code: int
    seconds: float
    output: str
    mark: int


@pytest.fixture(scope="module")
def failed_upgrade(release: Release) -> Failed:
    """The release after `helm upgrade` with an image that cannot be pulled on one node (done
    once, for the tests that read the failure and for the recovery)."""
    release.cluster.sim.fail_pull(MISSING, message=MISSING_MESSAGE, nodes=[BROKEN_NODE])
    mark = release.cluster.mark()
    code, seconds, output = release.upgrade(
        f"images={{{BASE},{MISSING}}}",
        f"awaiter.timeout={SHORT_TIMEOUT}s",
        "awaiter.pullFailureGrace=1s",
    )
    return Failed(code, seconds, output, mark)


def test_an_upgrade_with_a_missing_image_fails_within_the_awaiters_timeout_and_says_why(
    release: Release, failed_upgrade: Failed
) -> None:
    code, seconds, output = failed_upgrade.code, failed_upgrade.seconds, failed_upgrade.output
    assert code != 0 and seconds < SHORT_TIMEOUT, (code, seconds, output)
    assert "pre-upgrade hooks failed" in output, output
    assert release.cluster.status(release.name)["info"]["status"] == "failed"
    sim = release.cluster.sim
    [pod] = release.cluster.hook_pods()  # kept: no hook-succeeded, and no hook-failed policy
    [state] = [s["state"]["terminated"] for s in pod["status"]["containerStatuses"]]
    assert state["exitCode"] == 4  # a permanent image pull failure
    assert says_why(state["message"]), state["message"]
    assert sim.objects("daemonsets", NAMESPACE) == []
    writes = daemonset_writes(release.cluster.audit_since(failed_upgrade.mark))
    assert writes == [("create", 201), ("delete", 200)]


def test_kubectl_shows_why_the_hook_failed_in_describe_logs_and_events_of_its_pod(
    release: Release, failed_upgrade: Failed
) -> None:
    cluster = release.cluster
    [pod] = cluster.hook_pods()
    name = pod["metadata"]["name"]
    described = cluster.kubectl("describe", "pod", name)
    assert described.returncode == 0, described.stderr
    assert "Terminated" in described.stdout and says_why(described.stdout), described.stdout
    mark = cluster.mark()
    logs = cluster.kubectl("logs", name, "--tail=5")
    assert logs.returncode == 0 and MISSING in logs.stdout, logs.stdout + logs.stderr
    [read] = [e for e in cluster.audit_since(mark) if e.resource == "pods/log"]
    assert (read.verb, read.name, read.code) == ("get", name, 200)
    events = cluster.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}")
    assert events.returncode == 0, events.stderr
    for reason in ("Scheduled", "Started"):
        assert reason in events.stdout, events.stdout


def test_the_next_upgrade_with_good_images_recovers_the_failed_release(
    release: Release, failed_upgrade: Failed
) -> None:
    cluster = release.cluster
    [failed_job] = cluster.sim.objects("jobs", NAMESPACE)
    old_uid = failed_job["metadata"]["uid"]
    mark = cluster.mark()
    code, _, output = release.upgrade(f"images={{{BASE},{SCIPY}}}")
    assert code == 0, output
    entries = cluster.audit_since(mark)
    job = failed_job["metadata"]["name"]
    deleted = first([e for e in entries if e.name == job], "delete", "jobs", 200)
    created = first([e for e in entries if e.name == job], "write", "jobs", 201)
    assert deleted < created  # before-hook-creation removed the failed Job first
    assert old_uid not in {j["metadata"]["uid"] for j in cluster.sim.objects("jobs")}
    status = cluster.status(release.name)
    assert status["info"]["status"] == "deployed"
    assert_no_hook_leftovers(release)


def test_uninstall_leaves_nothing_of_the_chart_behind(release: Release) -> None:
    cluster = release.cluster
    mark = cluster.mark()
    done = cluster.helm("uninstall", release.name, "--timeout", "1m")
    assert done.returncode == 0, done.stderr
    assert cluster.store_keys() == release.before
    deletes = {e.resource for e in cluster.audit_since(mark) if e.verb == "delete"}
    assert "secrets" in deletes  # helm's release records, and nothing was left to delete by us

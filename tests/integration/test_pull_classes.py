"""Issue 12 end to end: classified pull failures end a run at once or get their grace, platform
mismatches exclude nodes, the report's per-node pull facts match what the simulated kubelets
did, and the awaiter records Events on its own pod. The real CLI against the simulated cluster,
whose kubelets say what real ones say (simcluster/nodes/messages.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import cli_command, cli_env
from tests.integration.helpers import excluded, node_report, our_daemonsets

APP = "quay.io/org/app:1"
# How soon after the kubelet's first failure a permanent error must end the run: the kubelet's
# status update, the watch, one evaluation and the DaemonSet's deletion, on a loaded machine.
FAST_EXIT = 5.0


@dataclass
class Ended:
    code: int
    at: float  # monotonic, when the process was seen gone
    stderr: str
    report: dict[str, Any]

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.stderr.splitlines():
            if line.startswith("{") and f'"event": "{name}"' in line:
                found.append(json.loads(line))
        return found


def start_await(
    kubeconfig: Path,
    tmp_path: Path,
    *images: str,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[str], Path]:
    report = tmp_path / f"report-{os.urandom(3).hex()}.json"
    args = ["await", "--kubeconfig", str(kubeconfig), "--log-format", "json"]
    args += ["--interval", "200ms", "--timeout", "60s", "--report", str(report)]
    for image in images:
        args += ["--image", image]
    proc = subprocess.Popen(
        cli_command([*args, *extra]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(env),
    )
    return proc, report


def finish(proc: subprocess.Popen[str], report: Path) -> Ended:
    _, stderr = proc.communicate(timeout=120)
    at = time.monotonic()
    return Ended(proc.returncode, at, stderr, json.loads(report.read_text()))


def await_image(
    kubeconfig: Path,
    tmp_path: Path,
    *images: str,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Ended:
    return finish(*start_await(kubeconfig, tmp_path, *images, extra=extra, env=env))


def first_failure(sim: Any, image: str) -> float:
    failed = [r.at for r in sim.pull_history(image=image) if r.outcome == "failed"]
    assert failed, "the kubelet never failed the pull"
    return min(failed)


def test_a_missing_tag_exits_4_within_seconds_of_the_kubelets_first_failure(
    sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    sim.add_node("a")
    sim.registry.add(APP, missing=True)
    ended = await_image(kubeconfig, tmp_path, APP)  # the default 90 s grace stays in force
    assert ended.code == 4, ended.stderr
    took = ended.at - first_failure(sim, APP)
    print(f"missing tag: exit {took:.2f}s after the kubelet's first failure")
    assert took < FAST_EXIT
    line = ended.last_line
    assert APP in line and "node a" in line and "permanent not-found" in line, line
    assert "fix the tag" in line and "not found" in line, line
    [failure] = node_report(ended, "a")["failures"]
    assert (failure["errorClass"], failure["errorKind"]) == ("permanent", "not-found")
    assert our_daemonsets(sim) == []


def test_access_denied_exits_4_at_once_advising_a_pull_secret(
    sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    sim.add_node("a", runtime="cri-o")
    sim.registry.add(APP, denied=True)
    ended = await_image(kubeconfig, tmp_path, APP)
    assert ended.code == 4, ended.stderr
    took = ended.at - first_failure(sim, APP)
    print(f"access denied: exit {took:.2f}s after the kubelet's first failure")
    assert took < FAST_EXIT
    assert "imagePullSecret" in ended.last_line, ended.last_line
    [failure] = node_report(ended, "a")["failures"]
    assert failure["errorClass"] == "permanent"
    assert failure["errorKind"] in ("unauthorized", "not-found")  # Docker Hub's "may require"


def test_a_bad_reference_at_the_registry_exits_4_at_once(
    sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    sim.add_node("a")
    sim.fail_pull(APP, kind="invalid-reference")
    proc, report = start_await(kubeconfig, tmp_path, APP)
    # The kubelet refuses the reference before any pull (no pull history): time it from the
    # moment a puller pod's status says InvalidImageName.
    assert sim.wait_for(lambda sim: "InvalidImageName" in json.dumps(sim.objects("pods")), 60)
    refused_at = time.monotonic()
    ended = finish(proc, report)
    assert ended.code == 4, ended.stderr
    took = ended.at - refused_at
    print(f"bad reference: exit {took:.2f}s after the kubelet's first failure")
    assert took < FAST_EXIT
    [failure] = node_report(ended, "a")["failures"]
    assert failure["errorKind"] == "invalid-reference", failure


def test_no_fail_fast_gives_a_missing_tag_the_grace_period(
    sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    sim.add_node("a")
    sim.registry.add(APP, missing=True)
    ended = await_image(
        kubeconfig, tmp_path, APP, extra=("--no-fail-fast", "--pull-failure-grace", "3s")
    )
    assert ended.code == 4, ended.stderr
    assert ended.at - first_failure(sim, APP) >= 3.0


def test_a_registry_outage_gets_its_grace_and_the_run_succeeds_when_it_heals(
    sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    sim.add_node("a")
    sim.add_node("b")
    sim.registry.add(APP)
    sim.registry_outage("quay.io", kind="server-error")
    proc, report = start_await(kubeconfig, tmp_path, APP)

    def both_failed(sim: Any) -> bool:
        nodes = {r.node for r in sim.pull_history(image=APP) if r.outcome == "failed"}
        return nodes == {"a", "b"}

    assert sim.wait_for(both_failed, timeout=60)
    failed_at = time.monotonic()
    assert sim.wait_for(lambda _: proc.poll() is not None, timeout=3) is False  # still waiting
    sim.end_outage()
    ended = finish(proc, report)
    assert ended.code == 0, ended.stderr
    assert ended.at - failed_at > 3.0  # the run really waited through the outage
    failed = [r for r in sim.pull_history(image=APP) if r.outcome == "failed"]
    assert all(r.kind == "server-error" for r in failed), failed
    for node in ("a", "b"):
        [pull] = node_report(ended, node)["pulls"]
        assert pull["state"] == "pulled", pull


def test_an_arm64_node_is_excluded_for_an_amd64_only_image_and_the_run_succeeds(
    sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    sim.add_node("x86")
    sim.add_node("arm", arch="arm64")
    sim.registry.add(APP, platforms=("linux/amd64",))
    ended = await_image(kubeconfig, tmp_path, APP)
    assert ended.code == 0, ended.stderr
    assert excluded(ended) == {"arm": "image has no linux/arm64 variant"}
    [platform] = ended.report["platformExcluded"]
    assert (platform["node"], platform["image"]) == ("arm", APP)
    assert "no match for platform" in platform["message"]  # containerd's own words
    assert ended.report["summary"]["excluded"] == 1
    logged = ended.events("node.platform_excluded")
    assert [e["node"] for e in logged] == ["arm"]  # logged once


def test_on_platform_mismatch_fail_makes_the_mismatch_a_pull_failure(
    sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    sim.add_node("arm", arch="arm64")
    sim.registry.add(APP, platforms=("linux/amd64",))
    ended = await_image(kubeconfig, tmp_path, APP, extra=("--on-platform-mismatch", "fail"))
    assert ended.code == 4, ended.stderr
    [failure] = node_report(ended, "arm")["failures"]
    assert failure["errorKind"] == "no-platform-variant"


def test_the_reports_pull_facts_match_what_the_kubelets_did(
    sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    big, small = "quay.io/org/big:1", "quay.io/org/small:2"
    sim.registry.add(big, size_bytes=734_003_200, pull_seconds=40.0)
    sim.registry.add(small, size_bytes=5_242_880, pull_seconds=10.0)
    sim.add_node("fast")
    sim.add_node("queued", serialize_pulls=True)
    sim.add_node("has-small", images=[small])
    ended = await_image(kubeconfig, tmp_path, big, small)
    assert ended.code == 0, ended.stderr
    for node in ("fast", "queued", "has-small"):
        facts = {f["image"]: f for f in node_report(ended, node)["pulls"]}
        for record in sim.pull_history(node=node):
            if record.image not in (big, small):
                continue
            fact = facts[record.image]
            if record.outcome == "present":
                assert fact["state"] == "present"
                continue
            assert record.outcome == "pulled"
            assert fact["state"] == "pulled"
            assert fact["sizeBytes"] == record.size_bytes
            assert abs(fact["pullSeconds"] - record.seconds) < 0.01
            waited = fact["pullSecondsIncludingWaiting"]
            assert abs(waited - record.seconds_including_waiting) < 0.01
    assert node_report(ended, "has-small")["pulls"][-1]["state"] == "present"
    pulls = {p["image"]: p for p in ended.report["pulls"]["images"]}
    assert pulls[big]["pulledOn"] == 3 and pulls[big]["totalBytes"] == 3 * 734_003_200
    assert pulls[small]["pulledOn"] == 2 and pulls[small]["alreadyPresentOn"] == ["has-small"]
    slowest = max(
        (r for r in sim.pull_history(image=big) if r.outcome == "pulled"),
        key=lambda r: r.seconds or 0.0,
    )
    assert pulls[big]["slowestPull"]["node"] == slowest.node
    took: dict[str, float] = {}
    for r in sim.pull_history():
        if r.outcome == "pulled" and r.image in (big, small):
            waited = r.seconds_including_waiting or 0.0
            took[r.node] = max(took.get(r.node, 0.0), waited)
    assert ended.report["pulls"]["slowestNode"]["node"] == max(took, key=took.__getitem__)


def test_the_awaiter_records_events_on_its_own_pod(
    sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    sim.add_node("a")
    sim.registry.add(APP)
    owner = sim.create(
        "pods",
        {"metadata": {"name": "hook-abc"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        namespace="default",
    )
    env = {"POD_NAME": "hook-abc", "POD_UID": owner["metadata"]["uid"], "POD_NAMESPACE": "default"}
    ended = await_image(kubeconfig, tmp_path, APP, env=env)
    assert ended.code == 0, ended.stderr
    ours = [
        e for e in sim.objects("events", "default") if e["involvedObject"]["name"] == "hook-abc"
    ]
    assert [e["reason"] for e in ours] == ["ImagesPulling", "ImagesReady"]
    assert all(e["involvedObject"]["uid"] == owner["metadata"]["uid"] for e in ours)
    assert APP in ours[0]["message"] and "on 1 of 1 target node " in ours[0]["message"]


def test_a_failed_pull_is_an_image_pull_failed_event_on_the_awaiters_pod(
    sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    sim.add_node("a")
    sim.registry.add(APP, missing=True)
    owner = sim.create(
        "pods",
        {"metadata": {"name": "hook-abc"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        namespace="default",
    )
    env = {"POD_NAME": "hook-abc", "POD_UID": owner["metadata"]["uid"], "POD_NAMESPACE": "default"}
    ended = await_image(kubeconfig, tmp_path, APP, env=env)
    assert ended.code == 4, ended.stderr
    [failed] = [
        e
        for e in sim.objects("events", "default")
        if e["involvedObject"]["name"] == "hook-abc" and e["reason"] == "ImagePullFailed"
    ]
    assert failed["type"] == "Warning" and failed["message"].startswith("not-found: ")


def test_without_leave_to_read_events_the_run_succeeds_with_a_warning(
    sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    sim.add_node("a")
    sim.registry.add(APP)
    sim.forbid("list", "events", "default")
    sim.forbid("watch", "events", "default")  # a streaming list is a watch
    ended = await_image(kubeconfig, tmp_path, APP)
    assert ended.code == 0, ended.stderr
    [warning] = ended.events("watch.unavailable")
    assert warning["resource"] == "events"
    assert "forbidden" in warning["error"].lower(), warning
    [pull] = node_report(ended, "a")["pulls"]
    assert (pull["state"], pull["source"]) == ("pulled", "container-status")


def test_a_node_whose_status_lists_every_image_is_named_present_in_the_report(
    sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    """It gets no puller pod (the DaemonSet skips it by name), so no kubelet event: the report
    said nothing about its images (issue 19)."""
    sim.registry.add(APP, pull_seconds=1.0)
    sim.add_node("has-it", images=[APP])
    sim.add_node("lacks-it")
    ended = await_image(kubeconfig, tmp_path, APP)
    assert ended.code == 0, ended.stderr
    assert [r.node for r in sim.pull_history(image=APP)] == ["lacks-it"], "no pod on has-it"
    assert node_report(ended, "has-it")["pulls"] == [
        {"image": APP, "state": "present", "source": "node-status"}
    ]
    [summary] = ended.report["pulls"]["images"]
    assert summary["alreadyPresentOn"] == ["has-it"] and summary["pulledOn"] == 1


def test_a_helper_image_that_cannot_be_pulled_is_named_as_the_pullers_not_the_users(
    sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    """Issue 19: the default helper image was not published, and the final line read as if
    the user's image had failed."""
    from image_awaiter.spec.pullers import DEFAULT_HELPER_IMAGE

    sim.add_node("a")
    sim.fail_pull(DEFAULT_HELPER_IMAGE, kind="repository-not-found")
    ended = await_image(kubeconfig, tmp_path, APP)
    assert ended.code == 4, ended.stderr
    last = ended.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"image-awaiter: the puller's helper image {DEFAULT_HELPER_IMAGE} (not one of your "
        "images) cannot be pulled on node a"
    )
    assert "--helper-image" in last and "--pull-method imageVolumes" in last
    assert "Kubernetes 1.35+, containerd 2 or CRI-O 1.30+" in last

"""Bad input, API failures, transient faults, signals and concurrency: every way a run can end
gives the documented exit code, one clear line, no traceback, and nothing left behind."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from simcluster import Fault
from tests.conftest import TOKEN, spawn_await, spawn_cli
from tests.integration.helpers import assert_clean_failure, our_daemonsets, writes

BUSYBOX = "busybox:1.36"
GOOD_SPEC = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "p"},
    "spec": {
        "selector": {"matchLabels": {"app": "p"}},
        "template": {
            "metadata": {"labels": {"app": "p"}},
            "spec": {"containers": [{"name": "c", "image": BUSYBOX}]},
        },
    },
}


def _with(path: str, value: Any) -> dict[str, Any]:
    spec = json.loads(json.dumps(GOOD_SPEC))
    target = spec
    *parents, last = path.split(".")
    for part in parents:
        target = target[part]
    target[last] = value
    return spec


BAD_INPUTS = [
    ("missing file", ["--daemonset-spec", "/nonexistent/ds.yaml"], None, 2, "not found"),
    ("invalid yaml", ["--daemonset-spec", "{spec}"], "kind: [DaemonSet\n", 2, "not valid YAML"),
    (
        "wrong kind",
        ["--daemonset-spec", "{spec}"],
        json.dumps(_with("kind", "Deployment")),
        2,
        "expected kind DaemonSet",
    ),
    (
        "no containers",
        ["--daemonset-spec", "{spec}"],
        json.dumps(_with("spec.template.spec.containers", [])),
        2,
        "at least one container",
    ),
    (
        "selector not matching labels",
        ["--daemonset-spec", "{spec}"],
        json.dumps(_with("spec.selector", {"matchLabels": {"app": "other"}})),
        2,
        "does not match",
    ),
    ("bad image reference", ["--image", "Not A Ref"], None, 2, "invalid image reference"),
    (
        "bad image in spec",
        ["--daemonset-spec", "{spec}"],
        json.dumps(_with("spec.template.spec.containers", [{"name": "c", "image": "UP/Bad:x:y"}])),
        2,
        "invalid image reference",
    ),
    ("bad duration", ["--image", BUSYBOX, "--timeout", "ten minutes"], None, 2, "invalid duration"),
    ("bad interval", ["--image", BUSYBOX, "--interval", "0"], None, 2, "--interval"),
    ("no images", [], None, 2, "no images"),
    ("unknown namespace", ["--image", BUSYBOX, "-n", "nope"], None, 3, "not found"),
    ("bad toleration", ["--image", BUSYBOX, "--toleration", "a:Sometimes"], None, 2, "toleration"),
    ("unknown option", ["--image", BUSYBOX, "--frobnicate"], None, 2, "frobnicate"),
    # --from-manifests (issue 11)
    ("manifests: missing path", ["--from-manifests", "/nonexistent/app/"], None, 2, "not found"),
    (
        "manifests: directory without manifests",
        ["--from-manifests", "{empty}"],
        None,
        2,
        "no *.yaml, *.yml, *.json files under",
    ),
    (
        "manifests: invalid yaml",
        ["--from-manifests", "{spec}"],
        "kind: [Deployment\n",
        2,
        "document 1: not valid YAML at line 2",
    ),
    (
        "manifests: no pod templates",
        ["--from-manifests", "{spec}"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n",
        2,
        "no pod templates found",
    ),
    (
        "manifests: workload without a pod template",
        ["--from-manifests", "{spec}"],
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {}\n",
        2,
        'Deployment "web"): no spec.template',
    ),
    (
        "manifests: --image not in them",
        ["--from-manifests", "{spec}", "--image", "nginx:1.27"],
        yaml.safe_dump(
            {"apiVersion": "v1", "kind": "Pod", **_with("kind", "x")["spec"]["template"]}
        ),
        2,
        "--image nginx:1.27: not in any manifest; found busybox:1.36",
    ),
    (
        "manifests and specs together",
        ["--from-manifests", "{spec}", "--daemonset-spec", "{spec}"],
        None,
        2,
        "cannot be combined",
    ),
    (
        "two daemonsets with one name",
        ["--daemonset-spec", "{spec}"],
        json.dumps(GOOD_SPEC) + "\n---\n" + json.dumps(GOOD_SPEC),
        2,
        "two pull groups share the DaemonSet name 'p'",
    ),
    ("output without dry run", ["--image", BUSYBOX, "-o", "yaml"], None, 2, "add --dry-run"),
]


@pytest.mark.parametrize(
    ("case", "args", "spec", "code", "words"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_input_exits_with_one_clear_line_and_writes_nothing(
    sim: Any,
    run_cli: Any,
    tmp_path: Path,
    case: str,
    args: list[str],
    spec: str | None,
    code: int,
    words: str,
) -> None:
    sim.add_node("a")
    if spec is not None:
        (tmp_path / "spec.yaml").write_text(spec)
    (tmp_path / "empty").mkdir()
    args = [
        a.replace("{spec}", str(tmp_path / "spec.yaml")).replace("{empty}", str(tmp_path / "empty"))
        for a in args
    ]
    result = run_cli("await", *args)
    assert result.code == code, result.output
    assert_clean_failure(result)
    assert words in result.last_line
    assert writes(sim) == []


def test_a_bare_404_for_the_namespace_is_not_taken_for_a_missing_namespace(
    sim: Any, run_cli: Any
) -> None:
    """Only the API's NotFound Status naming the namespace proves it is absent; a bare 404 (a
    proxy, an API that does not serve namespaces) leaves it to the create to tell."""
    sim.add_node("a")
    sim.faults.add(Fault(method="GET", path=r"^/api/v1/namespaces/default$", status=404))
    result = run_cli("await", "--image", BUSYBOX, "--interval", "200ms")
    assert result.code == 0, result.output
    assert sim.faults.injected == 1


def test_a_missing_namespace_found_only_by_the_create_is_exit_3(sim: Any, run_cli: Any) -> None:
    sim.add_node("a")
    sim.forbid("get", "namespaces")
    result = run_cli("await", "--image", BUSYBOX, "-n", "nope")
    assert result.code == 3, result.output
    assert "namespace 'nope' not found" in result.last_line
    assert our_daemonsets(sim) == []


def test_spec_from_stdin_is_read(sim: Any, run_cli: Any) -> None:
    sim.add_node("a", images=(BUSYBOX,))
    result = run_cli("await", "--daemonset-spec", "-", stdin=json.dumps(GOOD_SPEC))
    assert result.code == 0, result.output


def test_forbidden_create_exits_3_naming_verb_resource_and_namespace(
    sim: Any, run_cli: Any
) -> None:
    sim.add_node("a")
    sim.forbid("create", "daemonsets", "default")
    result = run_cli("await", "--image", BUSYBOX)
    assert result.code == 3, result.output
    assert_clean_failure(result)
    assert "forbidden" in result.last_line
    assert "'create'" in result.last_line and "daemonsets.apps" in result.last_line
    assert "'default'" in result.last_line
    assert our_daemonsets(sim) == []


def test_forbidden_node_list_exits_3_with_the_cluster_scope_hint(sim: Any, run_cli: Any) -> None:
    sim.add_node("a")
    sim.watch_list = False  # nodes are read in pages: the list verb (a streaming list is watch)
    sim.forbid("list", "nodes")
    result = run_cli("check", "--image", BUSYBOX)
    assert result.code == 3, result.output
    assert "'list'" in result.last_line and "'nodes'" in result.last_line
    assert "cluster-wide" in result.last_line


def test_unauthorised_token_exits_3(sim: Any, run_cli: Any) -> None:
    sim.add_node("a")
    sim.tokens.clear()
    sim.tokens.add("another-token")
    result = run_cli("await", "--image", BUSYBOX)
    assert result.code == 3, result.output
    assert "unauthorised" in result.last_line


def test_unreachable_api_server_exits_3_promptly(tmp_path: Path, run_cli: Any, sim: Any) -> None:
    sim.stop()
    result = run_cli("check", "--image", BUSYBOX, "--timeout", "5s", timeout=60)
    assert result.code in (1, 3), result.output
    assert_clean_failure(result)


def test_transient_5xx_429_and_resets_are_retried_to_success(sim: Any, run_cli: Any) -> None:
    from simcluster import Fault

    sim.add_node("a")
    sim.add_node("b")
    sim.faults.add(Fault(path=r"/api/v1/nodes", status=503, times=2))
    sim.faults.add(Fault(path=r"/api/v1/nodes", status=429, retry_after=0.2, times=1))
    sim.faults.add(Fault(method="POST", path=r"daemonsets", status=500, times=1))
    sim.faults.add(Fault(path=r"/pods", reset=True, times=2))
    sim.faults.add(Fault(method="DELETE", path=r"daemonsets", status=502, times=1))
    result = run_cli("await", "--image", BUSYBOX, "--interval", "200ms")
    assert result.code == 0, result.output
    assert sim.faults.injected >= 5
    assert our_daemonsets(sim) == []


def test_an_api_server_that_is_not_up_yet_is_waited_for(sim: Any, kubeconfig: Path) -> None:
    """z2jh #1793: a sidecar proxy was not ready, the first request failed, the awaiter exited.
    Refused connections are retried like any transient fault, within the retry budget."""
    sim.add_node("a", images=(BUSYBOX,))
    sim.take_offline()
    proc = spawn_cli(
        "check", "--image", BUSYBOX, "--kubeconfig", str(kubeconfig), "--log-format", "json"
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # the first refused connection has been retried
        if '"api.retry"' in line:
            assert "Connection refused" in line, line
            break
    sim.bring_online()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert '"run.succeeded"' in err


def test_token_never_appears_in_verbose_output(sim: Any, run_cli: Any) -> None:
    sim.add_node("a")
    result = run_cli("await", "--image", BUSYBOX, "-v", "-v", "--interval", "200ms")
    assert result.code == 0, result.output
    assert TOKEN not in result.output
    assert TOKEN not in json.dumps(result.report)


def test_check_is_read_only_and_exits_1_when_images_are_missing(sim: Any, run_cli: Any) -> None:
    sim.add_node("has", images=(BUSYBOX,))
    sim.add_node("lacks")
    result = run_cli("check", "--image", BUSYBOX)
    assert result.code == 1, result.output
    assert writes(sim) == []
    assert "lacks" in result.last_line
    statuses = {n["name"]: n["status"] for n in result.report["nodes"]}
    assert statuses == {"has": "done", "lacks": "missing"}


def test_check_exits_0_when_every_node_has_every_image(sim: Any, run_cli: Any) -> None:
    sim.add_node("has", images=(BUSYBOX,))
    result = run_cli("check", "--image", BUSYBOX)
    assert result.code == 0, result.output
    assert writes(sim) == []


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_wait_cleans_up_and_exits_with_its_code(
    sim: Any, kubeconfig: Path, signum: int, code: int
) -> None:
    sim.registry.add("quay.io/org/slow:1", pull_seconds=6000)
    sim.add_node("a")
    proc = spawn_await(kubeconfig, "quay.io/org/slow:1", interval=None)
    assert sim.wait_for(lambda s: len(s.objects("pods", "default")) == 1, timeout=30)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert our_daemonsets(sim) == []


def test_owner_reference_points_at_the_awaiter_pod_from_the_downward_api(
    sim: Any, run_cli: Any
) -> None:
    sim.add_node("a")
    owner = sim.create(
        "pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "hook-job-abc"},
            "spec": {"containers": [{"name": "c", "image": "x:1"}]},
        },
        namespace="default",
    )
    env = {
        "POD_NAME": "hook-job-abc",
        "POD_UID": owner["metadata"]["uid"],
        "POD_NAMESPACE": "default",
    }
    result = run_cli(
        "await", "--image", BUSYBOX, "--keep-daemonset", "--interval", "200ms", env=env
    )
    assert result.code == 0, result.output
    [daemonset] = our_daemonsets(sim)
    [reference] = daemonset["metadata"]["ownerReferences"]
    assert reference["uid"] == owner["metadata"]["uid"]
    assert reference["kind"] == "Pod"


def test_a_foreign_daemonset_is_never_touched(sim: Any, run_cli: Any) -> None:
    sim.add_node("a")
    foreign = sim.create(
        "daemonsets",
        json.loads(json.dumps({**GOOD_SPEC, "metadata": {"name": "image-awaiter-puller"}})),
        namespace="default",
    )
    result = run_cli("await", "--image", BUSYBOX, "--interval", "200ms")
    assert result.code == 0, result.output
    [still] = [
        d
        for d in sim.objects("daemonsets", "default")
        if d["metadata"]["name"] == "image-awaiter-puller"
    ]
    assert still["metadata"]["uid"] == foreign["metadata"]["uid"]
    assert still["spec"] == foreign["spec"]
    assert still["metadata"].get("labels") == foreign["metadata"].get("labels")
    touched = [r for r in writes(sim) if r.path.endswith("/image-awaiter-puller")]
    assert touched == []


def test_two_concurrent_awaiters_with_the_same_spec_do_not_disturb_each_other(
    sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    sim.registry.add("quay.io/org/slow:1", pull_seconds=20)
    for name in ("a", "b"):
        sim.add_node(name)
    procs = [
        spawn_await(kubeconfig, "quay.io/org/slow:1", "--report", str(tmp_path / f"r{i}.json"))
        for i in range(2)
    ]
    codes = [p.wait(timeout=90) for p in procs]
    assert codes == [0, 0], [p.stderr.read() for p in procs if p.stderr]
    assert len([r for r in sim.requests if r.method == "POST"]) == 2
    assert our_daemonsets(sim) == []
    reports = [json.loads((tmp_path / f"r{i}.json").read_text()) for i in range(2)]
    assert reports[0]["daemonset"]["name"] != reports[1]["daemonset"]["name"]


def test_a_daemonset_deleted_by_someone_else_is_recreated(sim: Any, kubeconfig: Path) -> None:
    sim.registry.add("quay.io/org/slow:1", pull_seconds=40)
    sim.add_node("a")
    proc = spawn_await(kubeconfig, "quay.io/org/slow:1")
    assert sim.wait_for(lambda s: len(our_daemonsets(s)) == 1, timeout=30)
    sim.delete("daemonsets", our_daemonsets(sim)[0]["metadata"]["name"], namespace="default")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "daemonset.vanished" in err
    assert our_daemonsets(sim) == []


def test_a_lagging_daemonset_watch_is_not_mistaken_for_a_deletion(
    sim: Any, kubeconfig: Path
) -> None:
    """Regression (chaos seed 2039): after recreating a DaemonSet someone deleted, the watch had
    not yet delivered the new object, so every tick took the empty cache for another deletion and
    the run ended in exit 3, "keeps being deleted by someone else"."""
    sim.registry.add("quay.io/org/slow:1", pull_seconds=60)  # x0.05: 3 s per pull
    sim.add_node("a")
    # Every DaemonSet watch starts 2 s late and is cut after one event: the cache lags.
    sim.faults.add(
        Fault(path="/daemonsets", watch=True, status=0, delay=2.0, cut_after_events=1, times=None)
    )
    proc = spawn_await(kubeconfig, "quay.io/org/slow:1")
    assert sim.wait_for(lambda s: len(our_daemonsets(s)) == 1, timeout=30)
    sim.delete("daemonsets", our_daemonsets(sim)[0]["metadata"]["name"], namespace="default")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert err.count('"daemonset.vanished"') == 1, err[-2000:]
    assert err.count('"daemonset.created"') == 2
    assert our_daemonsets(sim) == []


def test_sigterm_during_cleanup_still_deletes_the_daemonset_and_exits_143(
    sim: Any, kubeconfig: Path
) -> None:
    """Regression: SIGTERM arriving while the DaemonSet was being deleted used to hit the
    default handler, killing the process mid-cleanup and leaking the DaemonSet."""
    sim.add_node("a")
    # The DELETE is held long enough that SIGTERM lands inside it even on a loaded machine.
    sim.faults.add(Fault(method="DELETE", path="daemonsets", status=0, delay=6.0, times=1))
    proc = spawn_await(kubeconfig, BUSYBOX)
    assert sim.wait_for(lambda s: any(r.method == "DELETE" for r in s.requests), timeout=30)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert our_daemonsets(sim) == []


def test_sigterm_while_the_awaiter_records_an_event_on_its_own_pod_still_ends_the_run(
    sim: Any, kubeconfig: Path
) -> None:
    """Regression (the activeDeadline Job test's exit 137): SIGTERM landing inside the POST of
    the ImagesPulling Event on the awaiter's own pod was dropped with that Event, and the run
    went on until the kubelet's SIGKILL."""
    sim.registry.add("quay.io/org/slow:1", pull_seconds=6000)
    sim.add_node("a")
    pod = sim.create(
        "pods",
        {"metadata": {"name": "hook"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}},
        namespace="default",
    )
    # The Event's POST is held long enough that SIGTERM lands inside it even on a loaded machine.
    sim.faults.add(Fault(method="POST", path="/events", status=0, delay=6.0, times=1))
    env = {"POD_NAME": "hook", "POD_UID": pod["metadata"]["uid"], "POD_NAMESPACE": "default"}
    proc = spawn_await(kubeconfig, "quay.io/org/slow:1", env=env)
    try:
        assert sim.wait_for(
            lambda s: any(r.method == "POST" and r.path.endswith("/events") for r in s.requests),
            timeout=30,
        )
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=25)  # the kubelet's SIGKILL comes after 30 s
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err
    assert our_daemonsets(sim) == []


def test_a_signal_before_anything_was_created_exits_130_without_a_traceback(
    sim: Any, kubeconfig: Path
) -> None:
    sim.add_node("a")
    sim.faults.add(Fault(path="/api/v1/nodes", status=0, delay=2.0, times=1))
    proc = spawn_await(kubeconfig, BUSYBOX, interval=None)
    assert proc.stderr is not None
    assert "run.started" in proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert writes(sim) == []

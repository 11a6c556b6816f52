"""`image-awaiter gate` end to end: the real CLI and the real kubernetes client against the
simulated cluster, nodes joining with the gate taint while the gate runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, cli_command, cli_env, spawn_cli
from tests.integration.helpers import writes

GATE_KEY = "image-awaiter.io/images-pending"
GATE_TAINT = {"key": GATE_KEY, "effect": "NoSchedule"}
FOREIGN = {"key": "example.com/maintenance", "value": "yes", "effect": "NoSchedule"}
CONDITION = "image-awaiter.io/ImagesReady"
APP = "registry.example.com/app:1"


class Gate(subprocess.Popen[str]):
    """The gate's process; its logs go to a file (a burst of nodes would fill a pipe nobody
    reads and block it)."""

    log_path: Path

    @property
    def logs(self) -> str:
        return self.log_path.read_text()


@contextmanager
def gate(kubeconfig: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Gate]:
    """`image-awaiter gate` running in the background; stopped with SIGTERM at the end."""
    log_path = kubeconfig.parent / f"gate-{os.urandom(3).hex()}.log"
    command = cli_command(
        [
            "gate",
            "--image",
            APP,
            "--kubeconfig",
            str(kubeconfig),
            "--log-format",
            "json",
            "--interval",
            "500ms",
            "--lease-duration",
            "2s",
            "--lease-renew-deadline",
            "1500ms",
            "--lease-retry-period",
            "300ms",
            *args,
        ]
    )
    with log_path.open("w") as log:
        proc = Gate(
            command, stdout=log, stderr=subprocess.STDOUT, text=True, env=cli_env(env), cwd=ROOT
        )
    proc.log_path = log_path
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def stop(proc: Gate) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    return proc.returncode, proc.logs


def node(sim: Any, name: str) -> dict[str, Any]:
    return next(n for n in sim.objects("nodes") if n["metadata"]["name"] == name)


def taints(sim: Any, name: str) -> list[dict[str, Any]]:
    return list(node(sim, name)["spec"].get("taints") or [])


def gated(sim: Any, name: str) -> bool:
    return any(t["key"] == GATE_KEY for t in taints(sim, name))


def condition(sim: Any, name: str) -> dict[str, Any] | None:
    conditions = node(sim, name)["status"].get("conditions") or []
    return next((c for c in conditions if c["type"] == CONDITION), None)


def node_events(sim: Any, name: str) -> list[tuple[str, str, str]]:
    return [
        (e["reason"], e["type"], e["message"])
        for e in sim.objects("events", "default")
        if e["involvedObject"]["kind"] == "Node" and e["involvedObject"]["name"] == name
    ]


def node_writes(sim: Any, name: str) -> list[Any]:
    return [r for r in writes(sim) if r.path.startswith(f"/api/v1/nodes/{name}")]


def lease_holder(sim: Any) -> str:
    leases = sim.objects("leases", "default")
    return str(leases[0]["spec"].get("holderIdentity") or "") if leases else ""


def test_a_node_joining_tainted_is_held_until_its_image_arrives_then_released(
    sim: Any, kubeconfig: Path
) -> None:
    sim.registry.add(APP, pull_seconds=40)  # 2 s at the fixture's time scale
    with gate(kubeconfig) as proc:
        assert sim.wait_for(lambda s: lease_holder(s) != "", timeout=20)
        sim.add_node("joiner", taints=[GATE_TAINT])
        assert sim.wait_for(
            lambda s: (condition(s, "joiner") or {}).get("status") == "False", timeout=20
        ), proc.logs
        assert gated(sim, "joiner")
        assert condition(sim, "joiner")["reason"] == "ImagesPending"
        assert sim.wait_for(lambda s: not gated(s, "joiner"), timeout=30)
        released = condition(sim, "joiner")
        assert (released["status"], released["reason"]) == ("True", "ImagesPresent")
        assert sim.wait_for(lambda s: len(node_events(s, "joiner")) >= 2, timeout=10)
        reasons = [reason for reason, _, _ in node_events(sim, "joiner")]
        assert reasons == ["ImagesPending", "ImagesReady"]
        code, err = stop(proc)
    assert code == 0, err
    daemonsets = sim.objects("daemonsets", "default")
    assert [d["metadata"]["labels"]["image-awaiter.io/role"] for d in daemonsets] == ["gate"]


def test_a_node_without_the_taint_is_never_written(sim: Any, kubeconfig: Path) -> None:
    sim.add_node("plain")
    with gate(kubeconfig):
        sim.add_node("joiner", taints=[GATE_TAINT])
        assert sim.wait_for(lambda s: not gated(s, "joiner"), timeout=30)
        sim.add_node("later")
        time.sleep(1.0)  # a few evaluations with both untainted nodes there
    assert node_writes(sim, "plain") == []
    assert node_writes(sim, "later") == []
    joiner = node_writes(sim, "joiner")
    assert {r.method for r in joiner} == {"PATCH"}
    assert [r.path for r in joiner].count("/api/v1/nodes/joiner") == 1  # the one untaint


def test_a_foreign_taint_added_while_the_node_is_held_survives_the_release(
    sim: Any, kubeconfig: Path
) -> None:
    sim.registry.add(APP, pull_seconds=60)
    with gate(kubeconfig):
        sim.add_node("joiner", taints=[GATE_TAINT])
        assert sim.wait_for(lambda s: condition(s, "joiner") is not None, timeout=20)
        sim.set_taints("joiner", [GATE_TAINT, FOREIGN])
        assert sim.wait_for(lambda s: not gated(s, "joiner"), timeout=30)
    assert taints(sim, "joiner") == [FOREIGN]


def test_an_untaint_against_a_stale_read_rereads_and_keeps_the_foreign_taint(
    sim: Any, kubeconfig: Path
) -> None:
    """The conditional patch itself: the taints read lack one someone added since; the API
    refuses the patch (422), the writer re-reads and removes only the gate taint."""
    from image_awaiter.cluster.nodegating import NodeWriter
    from image_awaiter.core.gating import GateTaint
    from image_awaiter.kube.client import Kube
    from image_awaiter.kube.connecting import connect

    sim.add_node("n", taints=[GATE_TAINT, FOREIGN])
    connection = connect(
        kubeconfig=str(kubeconfig), context=None, namespace=None, in_cluster_namespace=None
    )
    writer = NodeWriter(
        kube=Kube(connection.client),
        gate=GateTaint.parse(f"{GATE_KEY}:NoSchedule"),
        condition_type=CONDITION,
    )
    stale = json.dumps([GATE_TAINT]).encode()
    assert writer.untaint("n", stale) is True
    assert taints(sim, "n") == [FOREIGN]
    assert writer.requests == {"untaint": 2, "reread": 1}


def test_a_permanent_pull_error_is_told_at_once_and_released_at_max_wait(
    sim: Any, kubeconfig: Path
) -> None:
    sim.fail_pull(APP, kind="tag-not-found")
    with gate(kubeconfig, "--max-wait", "6s"):
        sim.add_node("joiner", taints=[GATE_TAINT])
        assert sim.wait_for(
            lambda s: any(r == "ImagesPullFailed" for r, _, _ in node_events(s, "joiner")),
            timeout=20,
        )
        assert gated(sim, "joiner")
        assert sim.wait_for(lambda s: not gated(s, "joiner"), timeout=30)
        assert sim.wait_for(
            lambda s: any(r == "ImagesMaxWaitExceeded" for r, _, _ in node_events(s, "joiner")),
            timeout=10,
        )
    events = {reason: (kind, message) for reason, kind, message in node_events(sim, "joiner")}
    kind, message = events["ImagesPullFailed"]
    assert kind == "Warning"
    assert APP in message and "not found" in message.lower()
    kind, message = events["ImagesMaxWaitExceeded"]
    assert kind == "Warning" and APP in message
    assert condition(sim, "joiner")["reason"] == "MaxWaitExceeded"


def test_on_max_wait_keep_holds_the_node_with_a_warning(sim: Any, kubeconfig: Path) -> None:
    sim.fail_pull(APP, kind="tag-not-found")
    with gate(kubeconfig, "--max-wait", "3s", "--on-max-wait", "keep"):
        sim.add_node("joiner", taints=[GATE_TAINT])
        assert sim.wait_for(
            lambda s: any(r == "ImagesMaxWaitExceeded" for r, _, _ in node_events(s, "joiner")),
            timeout=30,
        )
        time.sleep(1.0)
        assert gated(sim, "joiner")
    assert (condition(sim, "joiner") or {}).get("status") == "False"


def test_with_enforce_condition_the_gate_writes_only_the_node_status(
    sim: Any, kubeconfig: Path
) -> None:
    with gate(kubeconfig, "--enforce", "condition"):
        sim.add_node("joiner", taints=[GATE_TAINT])
        assert sim.wait_for(
            lambda s: (condition(s, "joiner") or {}).get("status") == "True", timeout=30
        )
        time.sleep(1.0)
    assert gated(sim, "joiner")  # the Node Readiness Controller's to remove
    assert {r.path for r in node_writes(sim, "joiner")} == {"/api/v1/nodes/joiner/status"}


def test_dry_run_reports_what_it_would_release_and_writes_nothing(
    sim: Any, kubeconfig: Path
) -> None:
    sim.add_node("joiner", taints=[GATE_TAINT], images=(APP,))
    with gate(kubeconfig, "--dry-run") as proc:
        time.sleep(3.0)
        code, err = stop(proc)
    assert code == 0, err
    assert '"gate.would_release"' in err and '"joiner"' in err
    assert writes(sim) == []
    assert gated(sim, "joiner")


def test_the_second_replica_takes_over_when_the_leader_is_killed(
    sim: Any, kubeconfig: Path
) -> None:
    sim.registry.add(APP, pull_seconds=20)
    with (
        gate(kubeconfig, env={"POD_NAME": "gate-a"}) as a,
        gate(kubeconfig, env={"POD_NAME": "gate-b"}) as b,
    ):
        assert sim.wait_for(lambda s: lease_holder(s) in ("gate-a", "gate-b"), timeout=20)
        leader, other = (a, "gate-b") if lease_holder(sim) == "gate-a" else (b, "gate-a")
        sim.add_node("first", taints=[GATE_TAINT])
        assert sim.wait_for(lambda s: not gated(s, "first"), timeout=30)
        leader.kill()  # no chance to give the lease up
        killed_at = time.monotonic()
        for index in range(5):
            sim.add_node(f"burst-{index}", taints=[GATE_TAINT])
        assert sim.wait_for(lambda s: lease_holder(s) == other, timeout=20)
        took_over = time.monotonic() - killed_at
        assert sim.wait_for(lambda s: not any(gated(s, f"burst-{i}") for i in range(5)), timeout=30)
    assert took_over < 2.0 + 1.0  # the lease's duration and one retry period, with slack
    assert sim.objects("leases", "default")[0]["spec"]["leaseTransitions"] >= 1


def test_five_hundred_nodes_joining_in_one_burst_are_all_released(
    sim: Any, kubeconfig: Path
) -> None:
    names = [f"burst-{index:03d}" for index in range(500)]

    def none_gated(s: Any) -> bool:
        # wait_for holds the store's lock: read the live objects, do not copy 500 nodes
        live = s.store.peek("nodes")
        return not any(
            t.get("key") == GATE_KEY
            for name in names
            for t in live[("", name)]["spec"].get("taints") or []
        )

    with gate(kubeconfig):
        assert sim.wait_for(lambda s: lease_holder(s) != "", timeout=20)
        for name in names:
            sim.add_node(name, taints=[GATE_TAINT])
        added = time.monotonic()
        assert sim.wait_for(none_gated, timeout=120)
        after_last = time.monotonic() - added
    assert all((condition(sim, name) or {}).get("status") == "True" for name in names)
    print(f"500 nodes: the last released {after_last:.1f} s after the last joined")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_and_probes_are_served(sim: Any, kubeconfig: Path) -> None:
    port = free_port()
    with gate(kubeconfig, "--metrics-addr", f"127.0.0.1:{port}"):
        sim.add_node("joiner", taints=[GATE_TAINT])
        assert sim.wait_for(lambda s: not gated(s, "joiner"), timeout=30)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        text = ""
        while 'nodes_released_total{reason="ImagesPresent"} 1' not in text:
            assert time.monotonic() < deadline, text
            text = urllib.request.urlopen(f"{base}/metrics").read().decode()
            time.sleep(0.1)
        assert urllib.request.urlopen(f"{base}/healthz").status == 200
        assert urllib.request.urlopen(f"{base}/readyz").status == 200
    assert "image_awaiter_gate_release_seconds_count 1" in text
    assert f'image_awaiter_gate_image_pulls_total{{image="{APP}"}} 1' in text
    assert "image_awaiter_gate_leader 1" in text


@pytest.mark.parametrize(
    "args",
    [
        ("--taint", "no-effect"),
        ("--enforce", "neither"),
        ("--max-wait", "soon"),
        ("--lease-duration", "1s", "--lease-renew-deadline", "2s"),
        ("--metrics-addr", "localhost"),
    ],
)
def test_bad_gate_options_are_one_line_exit_2_and_nothing_created(
    sim: Any, kubeconfig: Path, args: tuple[str, ...]
) -> None:
    proc = spawn_cli("gate", "--image", APP, "--kubeconfig", str(kubeconfig), *args)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert err.strip().splitlines()[-1].startswith("image-awaiter: "), err
    assert "Traceback" not in err
    assert writes(sim) == []


def test_await_never_sweeps_the_gates_daemonsets(sim: Any, kubeconfig: Path, run_cli: Any) -> None:
    sim.add_node("a", taints=[GATE_TAINT])
    with gate(kubeconfig):
        assert sim.wait_for(lambda s: len(s.objects("daemonsets", "default")) == 1, timeout=20)
    (gate_daemonset,) = sim.objects("daemonsets", "default")
    sim.add_node("b")
    result = run_cli("await", "--image", "registry.example.com/other:2", "--interval", "200ms")
    assert result.code == 0, result.output
    names = [d["metadata"]["name"] for d in sim.objects("daemonsets", "default")]
    assert names == [gate_daemonset["metadata"]["name"]]


def test_the_sweep_never_takes_a_gate_daemonset_even_one_that_looks_stale(
    sim: Any, run_cli: Any
) -> None:
    """Labelled as a run's leftover would be (a run id, created two days ago, no owner) but
    with the gate's role: `await`'s sweep must not even list it."""
    labels = {"app": "leftover"}
    sim.create(
        "daemonsets",
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {
                "name": "image-awaiter-puller-gate",
                "labels": {
                    "app.kubernetes.io/managed-by": "image-awaiter",
                    "image-awaiter.io/run-id": "0badc0de",
                    "image-awaiter.io/role": "gate",
                },
                "annotations": {"image-awaiter.io/created-at": "2020-01-01T00:00:00Z"},
            },
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]
                    },
                },
            },
        },
        "default",
    )
    sim.add_node("a")
    result = run_cli("await", "--image", "registry.example.com/other:2", "--interval", "200ms")
    assert result.code == 0, result.output
    assert "daemonset.swept" not in result.output
    names = [d["metadata"]["name"] for d in sim.objects("daemonsets", "default")]
    assert names == ["image-awaiter-puller-gate"]


def test_a_server_without_strategic_merge_gets_the_condition_as_a_json_patch(
    sim: Any, kubeconfig: Path
) -> None:
    from simcluster.apiserver.faults import Fault

    sim.faults.add(Fault(method="PATCH", path=r"/nodes/[^/]+/status$", status=415, times=1))
    with gate(kubeconfig) as proc:
        sim.add_node("joiner", taints=[GATE_TAINT])
        assert sim.wait_for(
            lambda s: (condition(s, "joiner") or {}).get("status") == "True", timeout=30
        ), proc.logs
        assert sim.wait_for(lambda s: not gated(s, "joiner"), timeout=30)
    types = [c["type"] for c in node(sim, "joiner")["status"]["conditions"]]
    assert types.count(CONDITION) == 1
    assert "Ready" in types
    assert '"gate.no_strategic_merge"' in proc.logs


def test_without_a_lease_api_one_replica_still_releases_nodes(sim: Any, kubeconfig: Path) -> None:
    from simcluster.apiserver.faults import Fault

    sim.faults.add(Fault(path=r"/leases", status=404, times=None))
    with gate(kubeconfig) as proc:
        sim.add_node("joiner", taints=[GATE_TAINT])
        assert sim.wait_for(lambda s: not gated(s, "joiner"), timeout=30), proc.logs
    assert '"lease.unserved"' in proc.logs


def test_the_gates_daemonset_is_updated_in_place_when_the_images_change(
    sim: Any, kubeconfig: Path
) -> None:
    def daemonset(s: Any) -> dict[str, Any] | None:
        found = s.objects("daemonsets", "default")
        return found[0] if found else None

    def images(d: dict[str, Any]) -> set[str]:
        spec = d["spec"]["template"]["spec"]
        return {c["image"] for c in [*spec.get("initContainers", []), *spec["containers"]]}

    with gate(kubeconfig):
        assert sim.wait_for(lambda s: daemonset(s) is not None, timeout=20)
    first = daemonset(sim)
    assert first is not None and APP in images(first)
    other = "registry.example.com/other:2"
    with gate(kubeconfig, "--image", other):
        assert sim.wait_for(lambda s: other in images(daemonset(s) or first), timeout=20)
    second = daemonset(sim)
    assert second is not None
    assert second["metadata"]["uid"] == first["metadata"]["uid"]  # the same object, updated
    assert len(sim.objects("daemonsets", "default")) == 1

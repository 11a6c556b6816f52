"""`image-awaiter gate` against the real control plane (kube-apiserver, controllers, the real
scheduler). The nodes are objects this test writes as a kubelet would (registration with the
gate taint, `status.images` when the images land); no kubelet runs, so the puller pods stay
Pending and a node is done by its own status."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcluster.apiclient import MERGE_PATCH, Api
from simcluster.controlplane.endpoints import Endpoint
from tests.conftest import ROOT, cli_command, cli_env
from tests.realcp.nodes import ready_node

GATE_KEY = "image-awaiter.io/images-pending"
GATE = {"key": GATE_KEY, "effect": "NoSchedule"}
FOREIGN = {"key": "example.com/maintenance", "value": "yes", "effect": "NoSchedule"}
IMAGE = "registry.example.com/gate-test/app:1"
CONDITION = "image-awaiter.io/ImagesReady"


@dataclass
class Running:
    log: Path
    proc: subprocess.Popen[bytes]


@contextmanager
def gate(
    control_plane: Endpoint, namespace: str, tmp_path: Path, *extra: str, name: str = "gate"
) -> Iterator[Running]:
    kubeconfig = control_plane.write_kubeconfig(
        tmp_path / f"{name}.kubeconfig", namespace=namespace
    )
    log = tmp_path / f"{name}.log"
    args = ["gate", "--image", IMAGE, "--kubeconfig", str(kubeconfig), "--log-format", "json"]
    args += ["--interval", "500ms", "--lease-namespace", namespace]
    args += [
        "--lease-duration",
        "3s",
        "--lease-renew-deadline",
        "2s",
        "--lease-retry-period",
        "500ms",
        *extra,
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(
            cli_command(args),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=cli_env({"POD_NAME": name}),
            cwd=ROOT,
        )
    try:
        yield Running(log, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
        else:
            assert proc.returncode == -signal.SIGKILL, log.read_text()[-2000:]


@contextmanager
def gated_nodes(admin: Api, names: list[str]) -> Iterator[list[str]]:
    """Nodes registered with the gate taint whose images are already there (no Lease: they
    stay Ready for the node lifecycle controller's 40 s grace, longer than these tests)."""
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}
    capacity = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    try:
        for name in names:
            admin.create(
                "/api/v1/nodes",
                {
                    "metadata": {"name": name, "labels": {"kubernetes.io/os": "linux"}},
                    "spec": {"taints": [GATE]},
                },
            )
            admin.call(
                "PATCH",
                f"/api/v1/nodes/{name}/status",
                {
                    "status": {
                        "capacity": capacity,
                        "allocatable": capacity,
                        "conditions": [ready],
                        "images": [{"names": [IMAGE], "sizeBytes": 1_000_000}],
                    }
                },
                content_type=MERGE_PATCH,
            )
        yield names
    finally:
        for name in names:
            admin.request("DELETE", f"/api/v1/nodes/{name}")


def lease_holder(admin: Api, namespace: str) -> str:
    status, lease = admin.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/image-awaiter-gate"
    )
    return str(lease.get("spec", {}).get("holderIdentity") or "") if status == 200 else ""


def wait(condition: Callable[[], bool], *, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, (
            f"{what}: not within {timeout:g}s\n{log.read_text()[-3000:]}"
        )
        time.sleep(0.1)


def node(admin: Api, name: str) -> dict[str, Any]:
    return admin.get(f"/api/v1/nodes/{name}")


def taints(admin: Api, name: str) -> list[dict[str, Any]]:
    return list(node(admin, name)["spec"].get("taints") or [])


def condition(admin: Api, name: str) -> dict[str, Any]:
    conditions = node(admin, name)["status"].get("conditions") or []
    return next((c for c in conditions if c["type"] == CONDITION), {})


def images_land(admin: Api, name: str) -> None:
    """What the kubelet reports once it has pulled the image."""
    admin.call(
        "PATCH",
        f"/api/v1/nodes/{name}/status",
        {"status": {"images": [{"names": [IMAGE], "sizeBytes": 1_000_000}]}},
        content_type=MERGE_PATCH,
    )


def user_pod(admin: Api, namespace: str, node_name: str) -> None:
    admin.create(
        f"/api/v1/namespaces/{namespace}/pods",
        {
            "metadata": {"name": "user"},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": node_name},
                "containers": [{"name": "notebook", "image": IMAGE}],
            },
        },
    )


def writes_by_the_gate(control_plane: Endpoint, node_name: str) -> list[str]:
    entries = [json.loads(line) for line in control_plane.audit_log.read_text().splitlines()]
    return [
        e["verb"]
        for e in entries
        if e.get("userAgent") == "image-awaiter"
        and e["objectRef"].get("resource") == "nodes"
        and e["objectRef"].get("name") == node_name
        and e["verb"] not in ("get", "list", "watch")
    ]


def test_a_user_pod_stays_pending_on_a_held_node_until_its_images_land_then_is_bound(
    control_plane: Endpoint, namespace: str, tmp_path: Path
) -> None:
    admin = control_plane.admin
    held, plain = f"{namespace}-held", f"{namespace}-plain"
    with (
        ready_node(admin, held, taints=[GATE]),
        ready_node(admin, plain),
        gate(control_plane, namespace, tmp_path) as running,
    ):
        log = running.log
        wait(
            lambda: condition(admin, held).get("status") == "False",
            timeout=60,
            what="the held node's condition False",
            log=log,
        )
        assert condition(admin, held)["reason"] == "ImagesPending"
        user_pod(admin, namespace, held)
        pod_path = f"/api/v1/namespaces/{namespace}/pods/user"
        admin.wait_for(
            pod_path,
            lambda p: any(
                c["type"] == "PodScheduled" and c["status"] == "False"
                for c in p.get("status", {}).get("conditions") or []
            ),
            timeout=30,
            what="the scheduler refusing the user pod (the gate taint)",
        )
        time.sleep(2.0)  # held: nothing changes while the image is missing
        assert not admin.get(pod_path)["spec"].get("nodeName")
        assert GATE_KEY in [t["key"] for t in taints(admin, held)]
        images_land(admin, held)
        bound = admin.wait_for(
            pod_path, lambda p: bool(p["spec"].get("nodeName")), timeout=60, what="binding"
        )
        assert bound["spec"]["nodeName"] == held
        assert GATE_KEY not in [t["key"] for t in taints(admin, held)]
        assert (condition(admin, held)["status"], condition(admin, held)["reason"]) == (
            "True",
            "ImagesPresent",
        )
    assert writes_by_the_gate(control_plane, plain) == []
    assert set(writes_by_the_gate(control_plane, held)) == {"patch"}


def test_a_foreign_taint_survives_the_release_on_the_real_api(
    control_plane: Endpoint, namespace: str, tmp_path: Path
) -> None:
    admin = control_plane.admin
    name = f"{namespace}-foreign"
    with ready_node(admin, name, taints=[GATE, FOREIGN]):
        images_land(admin, name)
        with gate(control_plane, namespace, tmp_path) as running:
            log = running.log
            wait(
                lambda: GATE_KEY not in [t["key"] for t in taints(admin, name)],
                timeout=60,
                what="the release",
                log=log,
            )
        assert [
            {k: t[k] for k in ("key", "value", "effect")}
            for t in taints(admin, name)
            if t["key"] == FOREIGN["key"]
        ] == [FOREIGN]


def test_a_stale_taints_read_is_refused_by_the_real_api_and_retried(
    control_plane: Endpoint, namespace: str, tmp_path: Path
) -> None:
    from image_awaiter.cluster.nodegating import NodeWriter
    from image_awaiter.core.gating import GateTaint
    from image_awaiter.kube.client import Kube
    from image_awaiter.kube.connecting import connect

    admin = control_plane.admin
    name = f"{namespace}-stale"
    with ready_node(admin, name, taints=[GATE, FOREIGN]):
        kubeconfig = control_plane.write_kubeconfig(tmp_path / "kc", namespace=namespace)
        connection = connect(
            kubeconfig=str(kubeconfig), context=None, namespace=None, in_cluster_namespace=None
        )
        writer = NodeWriter(
            kube=Kube(connection.client),
            gate=GateTaint.parse(f"{GATE_KEY}:NoSchedule"),
            condition_type=CONDITION,
        )
        assert writer.untaint(name, json.dumps([GATE]).encode()) is True
        assert writer.requests["reread"] >= 1  # the first patch was refused
        assert writer.requests["untaint"] == writer.requests["reread"] + 1
        keys = [t["key"] for t in taints(admin, name)]
        # the node lifecycle controller may have added its own taint meanwhile: kept too
        assert GATE_KEY not in keys and FOREIGN["key"] in keys


def test_the_other_replica_finishes_a_burst_when_the_leader_is_killed(
    control_plane: Endpoint, namespace: str, tmp_path: Path
) -> None:
    admin = control_plane.admin
    with (
        gate(control_plane, namespace, tmp_path, name="gate-a") as a,
        gate(control_plane, namespace, tmp_path, name="gate-b") as b,
    ):
        replicas = {"gate-a": a, "gate-b": b}
        wait(lambda: lease_holder(admin, namespace) != "", timeout=30, what="a leader", log=a.log)
        leader = lease_holder(admin, namespace)
        other = "gate-b" if leader == "gate-a" else "gate-a"
        names = [f"{namespace}-burst-{i:02d}" for i in range(40)]
        with gated_nodes(admin, names):
            replicas[leader].proc.kill()  # no chance to give the lease up
            wait(
                lambda: lease_holder(admin, namespace) == other,
                timeout=15,
                what="the other replica taking the lease",
                log=replicas[other].log,
            )
            wait(
                lambda: all(GATE_KEY not in [t["key"] for t in taints(admin, n)] for n in names),
                timeout=60,
                what="every node of the burst released",
                log=replicas[other].log,
            )
            assert replicas[leader].proc.poll() is not None  # released by the survivor alone
            assert lease_holder(admin, namespace) == other


def test_a_node_whose_images_never_come_is_released_at_max_wait_with_a_warning_event(
    control_plane: Endpoint, namespace: str, tmp_path: Path
) -> None:
    admin = control_plane.admin
    name = f"{namespace}-late"
    with (
        ready_node(admin, name, taints=[GATE]),
        gate(control_plane, namespace, tmp_path, "--max-wait", "8s") as running,
    ):
        wait(
            lambda: GATE_KEY not in [t["key"] for t in taints(admin, name)],
            timeout=60,
            what="the release at --max-wait",
            log=running.log,
        )
        assert condition(admin, name)["reason"] == "MaxWaitExceeded"
        events = admin.get(
            "/api/v1/namespaces/default/events"
            f"?fieldSelector=involvedObject.kind%3DNode,involvedObject.name%3D{name}"
        )["items"]
        warnings = [e for e in events if e["reason"] == "ImagesMaxWaitExceeded"]
        assert [e["type"] for e in warnings] == ["Warning"]
        assert IMAGE in warnings[0]["message"]

"""Chaos on the real control plane: seeded random transient faults from the fault proxy (5xx,
429 with Retry-After, resets, stalls, watches cut mid-stream, 410 Gone) and churn (a node
joining, a puller pod deleted, the awaiter's own DaemonSet deleted by someone else), while one
or two awaiters run against kube-apiserver with the HTTP kubelet simulator as its nodes.

Every run must keep the invariants: exit 0 (every fault is transient and the timeout is far),
every target node reported done really has the image (its status.images), nothing of ours
left behind, and the objects image-awaiter did not create untouched.

CHAOS_REAL_RUNS (default 3) seeds from CHAOS_SEED (default 2026); a failure prints its seed:
`CHAOS_SEED=<seed> CHAOS_REAL_RUNS=1 pytest tests/chaos/test_chaos_real.py` replays its faults
(the real servers' timing is not seeded)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from simcluster.apiserver.faults import Fault
from simcluster.controlplane.endpoints import Endpoint
from tests.backends import RUN_LABEL, RealBackend
from tests.conftest import ROOT, cli_command, cli_env

BASE = int(os.environ.get("CHAOS_SEED", "2026"))
RUNS = int(os.environ.get("CHAOS_REAL_RUNS", "3"))


def _faults(rng: random.Random) -> list[Fault]:
    rate = rng.choice([0.05, 0.15, 0.25])
    return [
        *(Fault(status=s, probability=rate / 4, times=None) for s in (500, 502, 503, 504)),
        Fault(status=429, retry_after=rng.choice([0.1, 0.3]), probability=rate / 3, times=None),
        Fault(reset=True, status=0, probability=rate / 4, times=None),
        Fault(status=0, delay=rng.choice([0.05, 0.3]), probability=rate / 3, times=None),
        Fault(watch=True, status=0, cut_after_events=rng.randint(1, 4), probability=0.3,
              times=None),
        Fault(watch=True, status=410, cut_after_events=rng.randint(0, 3), probability=0.1,
              times=None),
    ]  # fmt: skip


def _foreign(backend: RealBackend) -> dict[str, str]:
    """DaemonSets someone else owns, one under the name the awaiter's would have: name -> what
    only a writer of the object (not the controller's status updates) would change."""
    labels = {"app": "someone-else", RUN_LABEL: backend.run_id}
    spec = {
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "nodeSelector": {"image-awaiter.test/nowhere": "true"},
                "containers": [{"name": "c", "image": "nginx:1"}],
            },
        },
    }
    path = f"/apis/apps/v1/namespaces/{backend.namespace}/daemonsets"
    made = {}
    for name in ("image-awaiter-puller", "unrelated"):
        created = backend.control_plane.admin.create(
            path, {"metadata": {"name": name, "labels": labels}, "spec": spec}
        )
        made[name] = _identity(created)
    return made


def _identity(daemonset: dict[str, Any]) -> str:
    meta = daemonset["metadata"]
    return json.dumps([meta["uid"], meta.get("generation"), meta.get("labels"),
                       meta.get("annotations"), meta.get("deletionTimestamp")])  # fmt: skip


def _churn(backend: RealBackend, rng: random.Random) -> list[str]:
    """A few of: a node joins, a puller pod is deleted, our DaemonSet is deleted."""
    admin, ns, done = backend.control_plane.admin, backend.namespace, []
    for step in range(rng.randint(1, 3)):
        time.sleep(rng.uniform(0.2, 1.5))
        action = rng.choice(["add-node", "delete-pod", "delete-daemonset"])
        ours = "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dimage-awaiter"
        if action == "add-node":
            backend.add_node(f"joiner-{step}")
        elif action == "delete-pod":
            pods = admin.get(f"/api/v1/namespaces/{ns}/pods?{ours}")["items"]
            if pods:
                admin.request(
                    "DELETE", f"/api/v1/namespaces/{ns}/pods/{pods[0]['metadata']['name']}"
                )
        else:
            sets = admin.get(f"/apis/apps/v1/namespaces/{ns}/daemonsets?{ours}")["items"]
            if sets:
                name = sets[0]["metadata"]["name"]
                admin.request("DELETE", f"/apis/apps/v1/namespaces/{ns}/daemonsets/{name}")
        done.append(action)
    return done


def _violations(
    backend: RealBackend, runs: list[tuple[int, str, Any]], foreign: dict[str, str]
) -> list[str]:
    found = []
    admin, ns = backend.control_plane.admin, backend.namespace
    for index, (code, stderr, report) in enumerate(runs):
        if code != 0:
            found.append(f"awaiter {index} exited {code}: {stderr.strip().splitlines()[-1:]}")
            continue
        for node in report["nodes"]:
            if node["status"] != "done":
                found.append(f"awaiter {index}: {node['name']} reported {node['status']}")
    images = {
        n["metadata"]["name"]: {
            name for i in n["status"].get("images") or [] for name in i["names"]
        }
        for n in backend.objects("nodes")
    }
    for code, _, report in runs:
        for node in (report or {}).get("nodes", []) if code == 0 else []:
            wanted = report["images"][0]["normalized"]
            if node["name"] in images and wanted not in images[node["name"]]:
                found.append(f"{node['name']} reported done but its status.images lacks {wanted}")
    left = admin.get(
        f"/apis/apps/v1/namespaces/{ns}/daemonsets?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dimage-awaiter"
    )["items"]
    found += [f"left behind: DaemonSet {d['metadata']['name']}" for d in left]
    for name, version in foreign.items():
        status, now = admin.request("GET", f"/apis/apps/v1/namespaces/{ns}/daemonsets/{name}")
        if status != 200 or _identity(now) != version:
            found.append(f"foreign DaemonSet {name} was touched ({status})")
    return found


@pytest.mark.parametrize("seed", range(BASE, BASE + RUNS))
def test_chaos_on_the_real_control_plane_keeps_every_invariant(
    seed: int, control_plane: Endpoint, namespace: str, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    backend = RealBackend(tmp_path, control_plane=control_plane, namespace=namespace)
    try:
        image = f"quay.io/chaos/app-{seed}:1"
        backend.registry.add(image, pull_seconds=rng.uniform(6, 40), has_shell=False)
        for index in range(rng.randint(2, 3)):
            backend.add_node(f"stable-{index}", runtime=rng.choice(["containerd", "docker"]))
        foreign = _foreign(backend)
        for fault in _faults(rng):
            backend.faults.add(fault)
        awaiters = []
        for index in range(rng.choice([1, 1, 2])):
            report = tmp_path / f"report-{index}.json"
            args = ["await", "--image", image, "--timeout", "90s", "--interval", "300ms",
                    *backend.selector_args(("--image",)), "--kubeconfig", str(backend.kubeconfig),
                    "--report", str(report), "--log-format", "json"]  # fmt: skip
            process = subprocess.Popen(
                cli_command(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=cli_env(), cwd=ROOT,
            )  # fmt: skip
            awaiters.append((process, report))
        churn = _churn(backend, rng)
        runs = []
        for process, report in awaiters:
            _, stderr = process.communicate(timeout=150)
            parsed = json.loads(report.read_text()) if report.exists() else None
            runs.append((process.returncode, stderr, parsed))
        backend.faults.clear()
        violations = _violations(backend, runs, foreign)
        print(f"chaos seed {seed}: {len(awaiters)} awaiter(s), churn {churn}, "
              f"{backend.faults.injected} faults injected")  # fmt: skip
        assert violations == [], (
            f"seed {seed} broke invariants (replay: CHAOS_SEED={seed} CHAOS_REAL_RUNS=1 "
            f"pytest tests/chaos/test_chaos_real.py): {violations}"
        )
    finally:
        backend.stop()

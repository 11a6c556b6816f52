"""`image-awaiter gate` measured against the simulated cluster:

  - release latency: nodes join with the gate taint one after another, each pulling its image
    for about 2 s; from the moment its puller pod shows the image pulled (every init container
    done, the moment the kubelet reports it) to the moment the taint is gone, median and max;
  - API requests per joining node: the requests the gate sent while those nodes joined, by
    verb and resource, divided by the nodes (lease renewals and watches counted apart);
  - memory in steady state at 5,000 and 65,000 synthetic nodes (rendered by the simulator,
    untainted, as most nodes of a cluster are): the gate's RSS and peak RSS (VmHWM, reset at
    exec) 30 s after it has listed every node.

Usage: python benchmarks/gate.py [--sizes 5000,65000] [--joins 10] [--settle 30]
Writes benchmarks/results/gate.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simcluster import SimCluster  # noqa: E402

TAINT = {"key": "image-awaiter.io/images-pending", "effect": "NoSchedule"}
IMAGE = "registry.example.com/app:1"
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "POD_"))}


def spawn_gate(kubeconfig: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "image_awaiter", "gate", "--image", IMAGE]
    command += ["--kubeconfig", kubeconfig, "--log-format", "json", *extra]
    with log.open("w") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=ENV, cwd=ROOT)


def wait_log(log: Path, event: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while f'"{event}"' not in log.read_text():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {event} in {log}: {log.read_text()[-500:]}")
        time.sleep(0.1)


def memory_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def pulled_at(sim: SimCluster, node: str) -> float | None:
    for pod in sim.store.peek("pods").values():
        if (pod.get("spec") or {}).get("nodeName") != node:
            continue
        statuses = (pod.get("status") or {}).get("initContainerStatuses") or []
        if statuses and all("terminated" in (s.get("state") or {}) for s in statuses):
            return time.monotonic()
    return None


def gated(sim: SimCluster, node: str) -> bool:
    obj = sim.store.peek("nodes").get(("", node))
    return obj is not None and any(
        t.get("key") == TAINT["key"] for t in obj["spec"].get("taints") or []
    )


def bench_latency(joins: int, workdir: Path) -> dict[str, Any]:
    sim = SimCluster(seed=3, time_scale=0.05)
    sim.registry.add(IMAGE, pull_seconds=40)  # 2 s at this time scale
    sim.start()
    log = workdir / "latency.log"
    gate = spawn_gate(sim.write_kubeconfig(workdir / "kc-latency"), log, "--interval", "2s")
    try:
        wait_log(log, "gate.daemonset_created", 60)
        time.sleep(1.0)
        before = len(sim.requests)
        latencies = []
        for index in range(joins):
            name = f"joiner-{index}"
            sim.add_node(name, taints=[TAINT])
            pulled = released = None
            deadline = time.monotonic() + 60
            while released is None and time.monotonic() < deadline:
                with sim.store.lock:
                    if pulled is None:
                        pulled = pulled_at(sim, name)
                    if pulled is not None and not gated(sim, name):
                        released = time.monotonic()
                time.sleep(0.002)
            assert pulled is not None and released is not None, name
            latencies.append(released - pulled)
        time.sleep(1.0)  # the last node's ImagesReady Event
        requests = sim.requests[before:]
    finally:
        gate.send_signal(signal.SIGTERM)
        gate.wait(30)
        sim.stop()
    kinds = collections.Counter(f"{r.method} {_kind(r.path)}" for r in requests)
    node_writes = [r for r in requests if r.method != "GET" and "/nodes/" in r.path]
    events = [r for r in requests if r.method == "POST" and r.path.endswith("/events")]
    lease = [r for r in requests if "/leases" in r.path]
    return {
        "joins": joins,
        "latency_median_s": round(statistics.median(latencies), 3),
        "latency_max_s": round(max(latencies), 3),
        "latencies_s": [round(x, 3) for x in latencies],
        "node_writes_per_node": round(len(node_writes) / joins, 2),
        "events_per_node": round(len(events) / joins, 2),
        "other_requests": len(requests) - len(node_writes) - len(events) - len(lease),
        "lease_requests": len(lease),
        "by_kind": dict(kinds),
        "load": round(os.getloadavg()[0], 2),
    }


def _kind(path: str) -> str:
    path = path.split("?")[0]
    for part in ("nodes/status", "events", "leases", "daemonsets", "pods"):
        if part in path or (part == "nodes/status" and path.endswith("/status")):
            return part
    return "nodes" if "/nodes" in path else path


def bench_memory(size: int, settle: float, workdir: Path) -> dict[str, Any]:
    sim = SimCluster(seed=5)
    sim.serve_synthetic_nodes(size)
    sim.start()
    log = workdir / f"memory-{size}.log"
    gate = spawn_gate(sim.write_kubeconfig(workdir / f"kc-{size}"), log)
    try:
        started = time.monotonic()
        wait_log(log, "gate.started", 600)
        synced = time.monotonic() - started
        time.sleep(settle)
        memory = memory_kb(gate.pid)
    finally:
        gate.send_signal(signal.SIGTERM)
        gate.wait(60)
        sim.stop()
    return {
        "nodes": size,
        "synced_after_s": round(synced, 1),
        "rss_mb": round(memory["VmRSS"] / 1024, 1),
        "peak_rss_mb": round(memory["VmHWM"] / 1024, 1),
        "load": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="5000,65000")
    parser.add_argument("--joins", type=int, default=10)
    parser.add_argument("--settle", type=float, default=30.0)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.joins:
            results["latency"] = bench_latency(args.joins, workdir)
            print(json.dumps(results["latency"]), flush=True)
        results["memory"] = []
        for size in [int(s) for s in args.sizes.split(",") if s]:
            results["memory"].append(bench_memory(size, args.settle, workdir))
            print(json.dumps(results["memory"][-1]), flush=True)
    out = ROOT / "benchmarks" / "results" / "gate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

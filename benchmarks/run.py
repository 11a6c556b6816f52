"""`make bench`: image-awaiter at scale against the simulated cluster, side by side with the
naive official-client path, in one run.

For each cluster size (1,000 and 5,000 nodes x 50 images, realistic node objects):
  - `check`: wall, CPU and peak RSS of the CLI and of the naive path (typed
    `CoreV1Api().list_node()` then a check), each measured through benchmarks/measure.py;
  - a 60 s `await` in which nothing changes (one node's pull never finishes): bytes received
    from the API and requests made, against one full node list (and against a 2 s relisting
    poll, the design this project replaces);
  - exit latency: from the moment the last node's puller pod shows the image pulled to the
    process exit, median and max over several runs.
Prints a table and writes it as JSON to benchmarks/results/latest.json.

Usage: python benchmarks/run.py [--sizes 1000,5000] [--idle-seconds 60] [--latency-runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.simcluster import SimCluster  # noqa: E402
from tests.simcluster.factory import COMMON_IMAGE  # noqa: E402

MEASURE = ROOT / "benchmarks" / "measure.py"
NAIVE = ROOT / "benchmarks" / "naive_check.py"
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "POD_"))}


def measured(command: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(MEASURE), *command],
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
        cwd=ROOT,
    )
    return dict(json.loads(out.stdout))


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "image_awaiter", *args]


def full_list_bytes(sim: SimCluster) -> int:
    request = urllib.request.Request(
        f"{sim.url}/api/v1/nodes", headers={"Authorization": "Bearer sim-token-s3cr3t"}
    )
    with urllib.request.urlopen(request) as response:
        return len(response.read())


def bench_check(sim: SimCluster, kubeconfig: Path, runs: int) -> dict[str, Any]:
    ours = [
        measured(
            cli(
                "check",
                "--image",
                COMMON_IMAGE,
                "--kubeconfig",
                str(kubeconfig),
                "--log-format",
                "json",
                "-q",
            )
        )
        for _ in range(runs)
    ]
    naive = [
        measured([sys.executable, str(NAIVE), str(kubeconfig), COMMON_IMAGE])
        for _ in range(max(1, runs // 2))
    ]
    assert all(r["exit_code"] == 0 for r in ours + naive), (ours, naive)

    def median(rows: list[dict[str, Any]], key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 3)

    result = {
        f"{who}_{key}": median(rows, key)
        for who, rows in (("ours", ours), ("naive", naive))
        for key in ("wall_s", "cpu_s", "peak_rss_mb")
    }
    result["cpu_ratio"] = round(result["ours_cpu_s"] / result["naive_cpu_s"], 3)
    return result


def bench_idle_await(sim: SimCluster, kubeconfig: Path, seconds: int) -> dict[str, Any]:
    sim.registry.add(COMMON_IMAGE, pull_seconds=10**6)  # this node's pull never finishes
    sim.add_node("idle-node")
    first = len(sim.requests)
    started = time.monotonic()
    result = measured(
        cli(
            "await",
            "--image",
            COMMON_IMAGE,
            "--kubeconfig",
            str(kubeconfig),
            "--timeout",
            f"{seconds}s",
            "--log-format",
            "json",
            "-q",
        )
    )
    elapsed = time.monotonic() - started
    assert result["exit_code"] == 1, result  # timed out waiting on idle-node, as intended
    records = sim.requests[first:]
    received = sum(r.bytes_sent for r in records)
    one_list = full_list_bytes(sim)
    sim.remove_node("idle-node")
    return {
        "seconds": round(elapsed, 1),
        "requests": len(records),
        "bytes_received_mb": round(received / 1e6, 2),
        "one_full_list_mb": round(one_list / 1e6, 2),
        "ratio_to_one_list": round(received / one_list, 3),
        "naive_2s_relist_mb": round(one_list * elapsed / 2 / 1e6, 1),
    }


def bench_exit_latency(sim: SimCluster, kubeconfig: Path, runs: int) -> dict[str, Any]:
    latencies = []
    for run in range(runs):
        sim.registry.add(COMMON_IMAGE, pull_seconds=2.0)
        node = f"late-{run}"
        sim.add_node(node)
        done_at: list[float] = []

        def pulled(s: SimCluster, name: str = node) -> bool:
            return any(
                (p.get("spec") or {}).get("nodeName") == name
                and (p.get("status") or {}).get("initContainerStatuses")
                and all(
                    "terminated" in c.get("state", {}) for c in p["status"]["initContainerStatuses"]
                )
                for p in s.store.peek("pods").values()
            )

        def watch(done_at: list[float] = done_at) -> None:
            if sim.wait_for(pulled, timeout=120):
                done_at.append(time.monotonic())

        watcher = threading.Thread(target=watch)
        watcher.start()
        proc = subprocess.Popen(
            cli(
                "await",
                "--image",
                COMMON_IMAGE,
                "--kubeconfig",
                str(kubeconfig),
                "--log-format",
                "json",
                "-q",
                "--timeout",
                "120s",
            ),
            env=ENV,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        code = proc.wait(timeout=180)
        exited = time.monotonic()
        watcher.join()
        assert code == 0 and done_at, (code, done_at)
        latencies.append(exited - done_at[0])
    return {
        "runs": runs,
        "median_s": round(statistics.median(latencies), 3),
        "max_s": round(max(latencies), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--idle-seconds", type=int, default=60)
    parser.add_argument("--latency-runs", type=int, default=5)
    parser.add_argument("--check-runs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    args = parser.parse_args()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        "sizes": {},
    }
    for size in (int(s) for s in args.sizes.split(",")):
        with SimCluster(seed=0) as sim, tempfile.TemporaryDirectory() as tmp:
            sim.load_synthetic_nodes(size)
            kubeconfig = sim.write_kubeconfig(Path(tmp) / "kubeconfig")
            print(f"[{size} nodes] one full list: {full_list_bytes(sim) / 1e6:.1f} MB", flush=True)
            row = {"check": bench_check(sim, kubeconfig, args.check_runs)}
            print(f"[{size} nodes] check: {row['check']}", flush=True)
            row["idle_await"] = bench_idle_await(sim, kubeconfig, args.idle_seconds)
            print(f"[{size} nodes] idle await: {row['idle_await']}", flush=True)
            row["exit_latency"] = bench_exit_latency(sim, kubeconfig, args.latency_runs)
            print(f"[{size} nodes] exit latency: {row['exit_latency']}", flush=True)
            results["sizes"][str(size)] = row
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results))
    return 0


def table(results: dict[str, Any]) -> str:
    lines = [
        f"Machine: {results['machine']}; {results['date']}",
        "",
        "| nodes | check wall / CPU / peak RSS (ours) | naive typed list_node() | CPU ratio "
        "| idle 60 s await: received (requests) | vs one full list | exit latency "
        "median / max |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, row in results["sizes"].items():
        c, i, e = row["check"], row["idle_await"], row["exit_latency"]
        lines.append(
            f"| {int(size):,} | {c['ours_wall_s']} s / {c['ours_cpu_s']} s / "
            f"{c['ours_peak_rss_mb']} MB | {c['naive_wall_s']} s / {c['naive_cpu_s']} s / "
            f"{c['naive_peak_rss_mb']} MB | {c['cpu_ratio']}x | {i['bytes_received_mb']} MB "
            f"({i['requests']}) | {i['ratio_to_one_list']}x of {i['one_full_list_mb']} MB "
            f"(a 2 s relist: {i['naive_2s_relist_mb']} MB) | {e['median_s']} s / {e['max_s']} s |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

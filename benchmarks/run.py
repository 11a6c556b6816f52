"""`make bench`: image-awaiter at scale against the simulated cluster, side by side with the
naive official-client path, in one run.

The cluster is synthetic and rendered page by page (simcluster/apiserver/listing.py): realistic
nodes with 13 labels, a NoSchedule taint and 50 images of 2-5 names each (~16 KB of JSON per
node), and a completed puller pod on every node for each DaemonSet. For each size:
  - `check`: wall, CPU and peak RSS of the CLI (each through benchmarks/measure.py), the API
    bytes it received and its requests by kind (streaming list, cache list, quorum list page,
    watch); the naive path (typed `CoreV1Api().list_node()`, then a check) where it fits;
  - an idle `await` (one stored node's pull never finishes, so the DaemonSet stays and every
    other node gets a completed puller pod): peak RSS, CPU, bytes received against one full
    node list, requests by kind;
  - exit latency (small sizes): from the moment the last node's puller shows the image pulled
    to the process exit, median and max over several runs.
The machine's load average is recorded with every figure. Prints a table and writes JSON to
benchmarks/results/latest.json.

Usage: python benchmarks/run.py [--sizes 5000,20000,65000] [--idle-seconds 60] [--naive-max 20000]
                                [--only check]
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simcluster import SimCluster  # noqa: E402
from simcluster.apiserver.listing import SyntheticNodes, request_counts  # noqa: E402
from simcluster.nodes.factory import COMMON_IMAGE  # noqa: E402

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


# The synthetic nodes are z2jh user nodes: pullers go there and tolerate their taint.
PLACEMENT = (
    "--image",
    COMMON_IMAGE,
    "--node-selector",
    "hub.jupyter.org/node-purpose=user",
    "--toleration",
    "hub.jupyter.org/dedicated=user:NoSchedule",
)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "image_awaiter", *args]


def load() -> float:
    return round(os.getloadavg()[0], 2)


def traffic(sim: SimCluster, first: int) -> dict[str, Any]:
    records = sim.requests[first:]
    return {
        "received_mb": round(sum(r.bytes_sent for r in records) / 1e6, 2),
        "requests": request_counts(records),
    }


def full_list_bytes(nodes: SyntheticNodes) -> int:
    """The size of one full node list, counted without building it."""
    return sum(len(nodes.render(i)) + 1 for i in range(nodes.count)) + 100


def bench_check(
    sim: SimCluster, kubeconfig: Path, *, runs: int, with_naive: bool
) -> dict[str, Any]:
    command = cli("check", *PLACEMENT, "--kubeconfig", str(kubeconfig), "--log-format", "json")
    ours = []
    for _ in range(runs):
        first, before = len(sim.requests), load()
        ours.append({**measured([*command, "-q"]), **traffic(sim, first), "load": before})
    naive = []
    for _ in range(max(1, runs // 2) if with_naive else 0):
        first, before = len(sim.requests), load()
        row = measured([sys.executable, str(NAIVE), str(kubeconfig), COMMON_IMAGE])
        naive.append({**row, **traffic(sim, first), "load": before})
    assert all(r["exit_code"] == 0 for r in ours + naive), (ours, naive)

    def median(rows: list[dict[str, Any]], key: str) -> float | None:
        return round(statistics.median(r[key] for r in rows), 3) if rows else None

    result: dict[str, Any] = {
        f"{who}_{key}": median(rows, key)
        for who, rows in (("ours", ours), ("naive", naive))
        for key in ("wall_s", "cpu_s", "peak_rss_mb", "received_mb", "load")
    }
    result["ours_requests"] = ours[-1]["requests"]
    result["ours_runs"] = [
        {k: r[k] for k in ("wall_s", "cpu_s", "user_s", "system_s", "peak_rss_mb", "load")}
        for r in ours
    ]
    if naive:
        result["naive_requests"] = naive[-1]["requests"]
        result["cpu_ratio"] = round(result["ours_cpu_s"] / result["naive_cpu_s"], 3)
    return result


def bench_idle_await(
    sim: SimCluster, kubeconfig: Path, *, seconds: int, one_list: int
) -> dict[str, Any]:
    sim.registry.add(COMMON_IMAGE, pull_seconds=10**6)  # this node's pull never finishes
    sim.add_node("idle-node", labels={"hub.jupyter.org/node-purpose": "user"})
    first, before = len(sim.requests), load()
    started = time.monotonic()
    result = measured(
        cli(
            "await",
            *PLACEMENT,
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
    seen = traffic(sim, first)
    sim.remove_node("idle-node")
    received = seen["received_mb"] * 1e6
    return {
        "seconds": round(elapsed, 1),
        "wall_s": result["wall_s"],
        "cpu_s": result["cpu_s"],
        "peak_rss_mb": result["peak_rss_mb"],
        "load": before,
        "requests": seen["requests"],
        "bytes_received_mb": seen["received_mb"],
        "one_full_list_mb": round(one_list / 1e6, 2),
        "ratio_to_one_list": round(received / one_list, 3),
        "naive_2s_relist_mb": round(one_list * elapsed / 2 / 1e6, 1),
    }


def bench_exit_latency(sim: SimCluster, kubeconfig: Path, runs: int) -> dict[str, Any]:
    latencies = []
    for run in range(runs):
        sim.registry.add(COMMON_IMAGE, pull_seconds=2.0)
        node = f"late-{run}"
        sim.add_node(node, labels={"hub.jupyter.org/node-purpose": "user"})
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
                *PLACEMENT,
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
    parser.add_argument("--sizes", default="5000,20000,65000")
    parser.add_argument("--idle-seconds", type=int, default=60)
    parser.add_argument("--latency-runs", type=int, default=3)
    parser.add_argument("--latency-max", type=int, default=5000, help="largest size timed")
    parser.add_argument("--check-runs", type=int, default=3)
    parser.add_argument("--naive-max", type=int, default=20000, help="largest naive size")
    parser.add_argument("--only", choices=["check"], help="measure check alone (no await runs)")
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
            nodes = sim.serve_synthetic_nodes(size)
            kubeconfig = sim.write_kubeconfig(Path(tmp) / "kubeconfig")
            one_list = full_list_bytes(nodes)
            print(f"[{size} nodes] one full list: {one_list / 1e6:.1f} MB", flush=True)
            row: dict[str, Any] = {
                "check": bench_check(
                    sim, kubeconfig, runs=args.check_runs, with_naive=size <= args.naive_max
                )
            }
            print(f"[{size} nodes] check: {row['check']}", flush=True)
            if args.only == "check":
                results["sizes"][str(size)] = row
                save(results, Path(args.out))
                continue
            row["idle_await"] = bench_idle_await(
                sim, kubeconfig, seconds=args.idle_seconds, one_list=one_list
            )
            print(f"[{size} nodes] idle await: {row['idle_await']}", flush=True)
            if size <= args.latency_max and args.latency_runs:
                row["exit_latency"] = bench_exit_latency(sim, kubeconfig, args.latency_runs)
                print(f"[{size} nodes] exit latency: {row['exit_latency']}", flush=True)
            results["sizes"][str(size)] = row
            save(results, Path(args.out))
    print()
    print(table(results))
    return 0


def save(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


def kinds(requests: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(requests.items()))


def table(results: dict[str, Any]) -> str:
    lines = [
        f"Machine: {results['machine']}; {results['date']}",
        "",
        "| nodes | `check` wall / CPU / peak RSS (load) | its requests | naive typed "
        "list_node() wall / CPU / peak RSS | CPU ratio | idle await CPU / peak RSS (load) "
        "| idle await received vs one full list | its requests | exit latency median / max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size, row in results["sizes"].items():
        c, i = row["check"], row.get("idle_await")
        if i is None:
            i = {k: "-" for k in ("cpu_s", "peak_rss_mb", "load", "bytes_received_mb")}
            i.update(ratio_to_one_list="-", one_full_list_mb="-", requests={})
        e = row.get("exit_latency")
        naive = (
            f"{c['naive_wall_s']} s / {c['naive_cpu_s']} s / {c['naive_peak_rss_mb']} MB"
            if c.get("naive_cpu_s") is not None
            else "not run (does not fit)"
        )
        lines.append(
            f"| {int(size):,} | {c['ours_wall_s']} s / {c['ours_cpu_s']} s / "
            f"{c['ours_peak_rss_mb']} MB ({c['ours_load']}) | {kinds(c['ours_requests'])} "
            f"| {naive} | {c.get('cpu_ratio', '-')}x | {i['cpu_s']} s / {i['peak_rss_mb']} MB "
            f"({i['load']}) | {i['bytes_received_mb']} MB = {i['ratio_to_one_list']}x of "
            f"{i['one_full_list_mb']} MB | {kinds(i['requests'])} | "
            + (f"{e['median_s']} s / {e['max_s']} s |" if e else "- |")
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""The HTTP kubelet simulator's cost against the real control plane: for each node count, the
time to register the nodes and see them Ready, the kubelets' CPU while they only renew their
Leases, and a puller DaemonSet (two init-container images) on every node until every pod runs;
the process's peak resident memory; the control plane's processes' memory at the end.

    python benchmarks/kubelets.py --nodes 100 500 [--json benchmarks/results/kubelets.json]

The kubelets run in this process: its CPU time is theirs (the control plane is child
processes, not counted)."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simcluster.apiclient import Api
from simcluster.controlplane import ControlPlane
from simcluster.nodes.kubelet import Kubelets
from simcluster.nodes.world import NodeWorld

IDLE_SECONDS = 30.0
IMAGES = ("quay.io/bench/first:1", "quay.io/bench/second:1", "registry.k8s.io/pause:3.10")


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait(condition: Any, *, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(what)
        time.sleep(0.5)
    return time.monotonic() - started


def measure(count: int) -> dict[str, Any]:
    result: dict[str, Any] = {"nodes": count}
    with ControlPlane() as plane:
        api = Api.from_kubeconfig(plane.kubeconfig)
        world = NodeWorld(unknown_images="missing")
        for image in IMAGES:
            world.registry.add(image, pull_seconds=2.0)
        kubelets = Kubelets(api, world=world)
        names = [f"bench-{index}" for index in range(count)]
        started, spent = time.monotonic(), cpu()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(kubelets.add_node, names))
        kubelets.start()

        def all_ready() -> bool:
            items = api.call("GET", "/api/v1/nodes")["items"]
            return (
                sum(
                    any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in n["status"]["conditions"]
                    )
                    for n in items
                )
                >= count
            )

        wait(all_ready, timeout=600, what="nodes Ready")
        result["register_and_ready_s"] = round(time.monotonic() - started, 2)
        result["register_cpu_s"] = round(cpu() - spent, 2)
        spent = cpu()
        time.sleep(IDLE_SECONDS)
        result["idle_cpu_percent"] = round(100 * (cpu() - spent) / IDLE_SECONDS, 1)
        daemonset = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "puller"},
            "spec": {
                "selector": {"matchLabels": {"app": "puller"}},
                "template": {
                    "metadata": {"labels": {"app": "puller"}},
                    "spec": {
                        "initContainers": [
                            {"name": f"pull-{i}", "image": image}
                            for i, image in enumerate(IMAGES[:2])
                        ],
                        "containers": [{"name": "pause", "image": IMAGES[2]}],
                    },
                },
            },
        }
        started, spent = time.monotonic(), cpu()
        api.call("POST", "/apis/apps/v1/namespaces/default/daemonsets", daemonset)

        def all_running() -> bool:
            status = api.call("GET", "/apis/apps/v1/namespaces/default/daemonsets/puller")
            return int(status.get("status", {}).get("numberReady") or 0) >= count

        wait(all_running, timeout=900, what="puller pods running")
        result["daemonset_all_running_s"] = round(time.monotonic() - started, 2)
        result["daemonset_cpu_s"] = round(cpu() - spent, 2)
        result["kubelets_peak_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        )
        result["kubelets_rss_mb"] = round(rss_mb(), 1)
        result["control_plane_rss_mb"] = {
            name: round(size / 1024**2, 1) for name, size in plane.rss().items()
        }
        result["api_errors"] = len(kubelets.errors)
        kubelets.stop()
        api.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    for count in args.nodes:
        results.append(measure(count))
        print(json.dumps(results[-1]), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

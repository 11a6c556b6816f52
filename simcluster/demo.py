"""`make demo`: the main job end to end against the simulated cluster.

Starts a simulated cluster of a few dozen nodes (one cordoned, one tainted, one NotReady, one
Windows node, mixed containerd and docker runtimes, some nodes already holding an image), with two
multi-GB notebook images whose pulls take seconds instead of minutes, then runs
`image-awaiter await` against it with live progress and exits with its exit code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from simcluster import SimCluster
from tests.conftest import cli_command, cli_env

NOTEBOOK = "quay.io/jupyter/datascience-notebook:2025-06-02"
PYTORCH = "quay.io/jupyter/pytorch-notebook:cuda12-2025-06-02"
GB = 1024**3


def build(sim: SimCluster) -> None:
    sim.registry.add(NOTEBOOK, size_bytes=int(4.6 * GB), pull_seconds=4.0)
    sim.registry.add(PYTORCH, size_bytes=int(9.8 * GB), pull_seconds=7.0)
    for index in range(24):
        runtime = "docker" if index % 4 == 0 else "containerd"
        images = (NOTEBOOK,) if index % 5 == 0 else ()
        sim.add_node(
            f"user-{index:02d}",
            runtime=runtime,
            images=images,
            labels={"hub.jupyter.org/node-purpose": "user"},
        )
    sim.add_node(
        "core-0",
        taints=({"key": "hub.jupyter.org/dedicated", "value": "core", "effect": "NoSchedule"},),
    )
    sim.add_node("user-cordoned", unschedulable=True)
    sim.add_node("user-notready", ready=False)
    sim.add_node("win-0", os="windows")


def main() -> int:
    with SimCluster(seed=7, time_scale=1.0) as sim, tempfile.TemporaryDirectory() as tmp:
        build(sim)
        kubeconfig = sim.write_kubeconfig(Path(tmp) / "kubeconfig")
        print(
            f"simulated cluster at {sim.url}: {len(sim.objects('nodes'))} nodes; "
            f"awaiting {NOTEBOOK} and {PYTORCH}\n",
            flush=True,
        )
        args = [
            "await",
            "--image",
            NOTEBOOK,
            "--image",
            PYTORCH,
            "--kubeconfig",
            str(kubeconfig),
            "--timeout",
            "2m",
            "--log-format",
            "console",
            "--report",
            str(Path(tmp) / "report.json"),
        ]
        code = subprocess.call(cli_command(args), env=cli_env())
        report = json.loads((Path(tmp) / "report.json").read_text())
        leftovers = [d["metadata"]["name"] for d in sim.objects("daemonsets", "default")]
        print(f"\nimage-awaiter exited {code}; DaemonSets left behind: {leftovers or 'none'}")
        print(f"report summary: {json.dumps(report['summary'])}")
        print(f"report pulls (from kubelet events): {json.dumps(report['pulls'])}")
        return code


if __name__ == "__main__":
    sys.exit(main())

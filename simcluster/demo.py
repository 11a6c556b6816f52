"""`make demo`: the main job end to end against the simulated cluster.

Starts a simulated cluster of a few dozen nodes (one cordoned, one tainted, one NotReady, one
Windows node, mixed containerd and docker runtimes, some nodes already holding an image), with two
multi-GB notebook images whose pulls take seconds instead of minutes, then runs
`image-awaiter await` against it and exits with its exit code. Its first screen says, in plain
words, what the cluster is and what is about to happen; on a terminal the awaiter then draws its
live view, elsewhere it logs lines.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from simcluster import SimCluster
from tests.conftest import cli_command, cli_env

NOTEBOOK = "quay.io/jupyter/datascience-notebook:2025-06-02"
PYTORCH = "quay.io/jupyter/pytorch-notebook:cuda12-2025-06-02"
GB = 1024**3
USER_NODES = 24  # user-00 ... user-23; every fifth already holds NOTEBOOK


def build(sim: SimCluster) -> None:
    sim.registry.add(NOTEBOOK, size_bytes=int(4.6 * GB), pull_seconds=4.0)
    sim.registry.add(PYTORCH, size_bytes=int(9.8 * GB), pull_seconds=7.0)
    for index in range(USER_NODES):
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


INTRO = """\
image-awaiter demo: nothing real is touched. A Kubernetes cluster is simulated on this machine.

The cluster: {nodes} nodes. {users} of them run users' notebooks; {have} already hold the smaller
notebook image. Four are not meant for notebooks: a cordoned node, a node that is not Ready, a
system node with a taint, and a Windows node.

The job: two large notebook images must be on every notebook node before users start their
notebooks, or each user waits minutes for the download (here a pull takes seconds):
  {notebook} (4.6 GB)
  {pytorch} (9.8 GB)

What image-awaiter does now, as a Helm hook or CI step would:
  1. works out which nodes count (the four others are left out, with the reason);
  2. starts a temporary DaemonSet that pulls the images on the nodes that lack them;
  3. {how};
  4. deletes the DaemonSet and exits 0 once every node has both images (about 15 s here).
"""
LIVE = "shows, below, how many nodes are done, each image, and the slowest nodes"
LINES = "logs a line for each step and each node that becomes done"


def intro(sim: SimCluster, *, live: bool) -> str:
    return INTRO.format(
        nodes=len(sim.objects("nodes")),
        users=USER_NODES,
        have=len(range(0, USER_NODES, 5)),
        notebook=NOTEBOOK,
        pytorch=PYTORCH,
        how=LIVE if live else LINES,
    )


def outcome(report: dict[str, Any]) -> str:
    """What the run's report says, in a few plain lines."""
    summary = report["summary"]
    lines = [
        f"From its report: {summary['done']} of {summary['targets']} notebook nodes done, "
        f"{summary['excluded']} nodes left out."
    ]
    for image in report["pulls"]["images"]:
        median = image.get("medianPullSeconds")
        took = f" (median {median:.1f} s)" if median is not None else ""
        already = len(image["alreadyPresentOn"])
        lines.append(
            f"  {image['image']}: pulled on {image['pulledOn']} nodes{took}, "
            f"already on {already}, failed on {image['failedOn']}"
        )
    return "\n".join(lines)


def main() -> int:
    # On a terminal the awaiter draws its live view (`--log-format auto`); elsewhere (a pipe,
    # a CI log) it writes log lines.
    live = sys.stderr.isatty()
    with SimCluster(seed=7, time_scale=1.0) as sim, tempfile.TemporaryDirectory() as tmp:
        build(sim)
        kubeconfig = sim.write_kubeconfig(Path(tmp) / "kubeconfig")
        print(intro(sim, live=live), flush=True)
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
            "auto" if live else "console",
            "--report",
            str(Path(tmp) / "report.json"),
        ]
        code = subprocess.call(cli_command(args), env=cli_env())
        report = json.loads((Path(tmp) / "report.json").read_text())
        leftovers = [d["metadata"]["name"] for d in sim.objects("daemonsets", "default")]
        ending = "every notebook node has both images" if code == 0 else "see its last line"
        print(f"\nimage-awaiter exited {code}: {ending}; DaemonSets left: {leftovers or 'none'}")
        print(outcome(report))
        return code


if __name__ == "__main__":
    sys.exit(main())

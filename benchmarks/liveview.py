"""The live view's refresh cost at scale: fold 5,000 node records into a snapshot, draw it once.

One refresh is what the await loop would pay per evaluation with the view on: `build_snapshot`
over every node record, then one frame rendered by rich into a null console, 120 columns,
truecolor (the colour escapes are part of the cost). The records are shaped like a run midway:
three images, about half the nodes done, some pulling, 1% failing, a few hundred excluded.

Also times importing the parts of rich a view uses, which only a terminal run pays, and the
refresh as the await loop really pays it (`progress.LivePicture.observe`): a `NodeRecord` made
from each of the evaluation's verdicts, the snapshot, one frame drawn by `LiveView`.
Prints one JSON line: milliseconds per refresh (median, p95), split into snapshot and render,
with the machine's load average, since a busy machine inflates every figure.

Usage: python benchmarks/liveview.py [--nodes 5000] [--refreshes 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from image_awaiter.core.overview import NodeRecord, build_snapshot
from image_awaiter.core.readiness import Evaluation, NodeStatus, NodeVerdict, PullFailure
from image_awaiter.output.liveview import LiveView, render_once
from image_awaiter.output.progress import LivePicture

IMAGES = (
    "quay.io/jupyter/scipy-notebook:2024-05-01",
    "docker.io/library/busybox:1.36",
    "registry.k8s.io/pause:3.10",
)
# containerd's text for a missing tag, as in kubelet events (cvisionai/tator#439).
FAILURE = (
    'ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image "{0}": '
    'failed to resolve reference "{0}": {0}: not found'
).format("quay.io/jupyter/scipy-notebook:2099-01-01")


def records(count: int, rng: random.Random) -> list[NodeRecord]:
    nodes = []
    for i in range(count):
        failing = rng.random() < 0.01
        done = not failing and rng.random() < 0.5
        present = frozenset(IMAGES) if done else frozenset(IMAGES[1:])
        nodes.append(
            NodeRecord(
                name=f"ip-10-0-{i // 250}-{i % 250}.ec2.internal",
                done=done,
                state=FAILURE if failing else "pulling",
                since=rng.uniform(0, 300),
                failing=failing,
                present=present,
                pulling=frozenset() if done or failing else frozenset(IMAGES[:1]),
                pulled_bytes={IMAGES[0]: 1_523_000_000} if done else {},
            )
        )
    return nodes


def evaluation(count: int, rng: random.Random) -> Evaluation:
    """An evaluation midway through a run, shaped like `records`."""
    verdicts = []
    for i in range(count):
        name = f"ip-10-0-{i // 250}-{i % 250}.ec2.internal"
        roll = rng.random()
        if roll < 0.01:
            failure = PullFailure(name, IMAGES[0], "ErrImagePull", FAILURE, "transient", "", "")
            verdicts.append(
                NodeVerdict(name, NodeStatus.PULLING, IMAGES[:1], (failure,), f"retrying {failure}")
            )
        elif roll < 0.5:
            verdicts.append(NodeVerdict(name, NodeStatus.DONE))
        else:
            verdicts.append(NodeVerdict(name, NodeStatus.PULLING, IMAGES[:1], (), "pulling"))
    excluded = {f"gpu-{i}": "taint nvidia.com/gpu=present:NoSchedule" for i in range(300)}
    return Evaluation(tuple(verdicts), excluded, {})


def wired_refresh_ms(count: int, refreshes: int) -> list[float]:
    judged = evaluation(count, random.Random(12))
    sizes = {v.node: {IMAGES[0]: 1_523_000_000} for v in judged.verdicts if v.missing == ()}
    # Unchanged nodes keep their record between refreshes; changed ones (a node done, a
    # state moved on) cost a new one: 5% of the nodes change between two refreshes here.
    rng = random.Random(7)
    with open(os.devnull, "w") as sink:
        view = LiveView(stream=sink, show_excluded=True)
        view.start()
        picture = LivePicture(view, images=IMAGES, started=0.0)
        took = []
        for k in range(refreshes):
            for i in rng.sample(range(count), count // 20):
                sizes[judged.verdicts[i].node] = {IMAGES[0]: 1_523_000_000 + k}
            started = time.perf_counter()
            picture.observe(judged, now=100.0 + k, pulled_bytes=sizes, final=True)
            took.append((time.perf_counter() - started) * 1000)
        view.stop()
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--refreshes", type=int, default=50)
    args = parser.parse_args()

    started = time.perf_counter()
    from rich.console import Console
    from rich.filesize import decimal  # noqa: F401 - what a view imports, timed as one
    from rich.live import Live  # noqa: F401
    from rich.progress_bar import ProgressBar  # noqa: F401
    from rich.table import Table  # noqa: F401

    import_ms = (time.perf_counter() - started) * 1000

    nodes = records(args.nodes, random.Random(12))
    excluded = {f"gpu-{i}": "taint nvidia.com/gpu=present:NoSchedule" for i in range(300)}
    console = Console(
        file=open(os.devnull, "w"),  # noqa: SIM115 - lives as long as the process
        width=120,
        force_terminal=True,
        color_system="truecolor",
    )
    snapshot_ms, render_ms = [], []
    for _ in range(args.refreshes):
        started = time.perf_counter()
        snapshot = build_snapshot(
            nodes=nodes, images=IMAGES, excluded=excluded, elapsed=95.0, now=300.0
        )
        built = time.perf_counter()
        render_once(snapshot, console=console, eta=80.0, show_excluded=True)
        drawn = time.perf_counter()
        snapshot_ms.append((built - started) * 1000)
        render_ms.append((drawn - built) * 1000)
    total = [a + b for a, b in zip(snapshot_ms, render_ms, strict=True)]
    wired = wired_refresh_ms(args.nodes, args.refreshes)
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                f"CPython {platform.python_version()}",
                "load_average_1m": round(os.getloadavg()[0], 2),
                "nodes": args.nodes,
                "refreshes": args.refreshes,
                "refresh_ms_median": round(statistics.median(total), 2),
                "refresh_ms_p95": round(statistics.quantiles(total, n=20)[-1], 2),
                "snapshot_ms_median": round(statistics.median(snapshot_ms), 2),
                "render_ms_median": round(statistics.median(render_ms), 2),
                "first_render_ms": round(render_ms[0], 2),
                "rich_import_ms": round(import_ms, 1),
                "wired_first_refresh_ms": round(wired[0], 2),
                "wired_refresh_ms_median": round(statistics.median(wired), 2),
                "wired_refresh_ms_p95": round(statistics.quantiles(wired, n=20)[-1], 2),
            }
        )
    )


if __name__ == "__main__":
    main()

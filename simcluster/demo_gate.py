"""`make demo-gate`: the node gate in an autoscaled simulated cluster.

Starts a simulated cluster with a few user nodes that already hold the notebook image, then
`image-awaiter gate` (two replicas electing a leader, JSON logs to a file); an "autoscaler" adds
nodes in waves, each registering with the gate taint, one of them a Windows node (released at
once: no puller for it) and one whose pull fails (held, told at once in an Event, released at
--max-wait). A live table shows every node joining: held (tainted, condition False), then
released (taint gone, condition True), and the gate's own metrics. Ends with the leader's
SIGTERM (exit 0, DaemonSets left in place).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from simcluster import SimCluster
from tests.conftest import cli_command, cli_env

NOTEBOOK = "quay.io/jupyter/datascience-notebook:2025-06-02"
BROKEN = "quay.io/jupyter/does-not-exist:1"
TAINT = {"key": "image-awaiter.io/images-pending", "effect": "NoSchedule"}
CONDITION = "image-awaiter.io/ImagesReady"
GB = 1024**3
WAVES = ((2.0, 3), (6.0, 4), (12.0, 3))  # (seconds after start, nodes added)


def gate(kubeconfig: Path, log: Path, name: str, port: int) -> subprocess.Popen[bytes]:
    args = [
        "gate",
        "--image",
        NOTEBOOK,
        "--kubeconfig",
        str(kubeconfig),
        "--log-format",
        "json",
        "--interval",
        "1s",
        "--max-wait",
        "25s",
        "--metrics-addr",
        f"127.0.0.1:{port}",
    ]
    with log.open("w") as out:
        return subprocess.Popen(
            cli_command(args), stdout=out, stderr=subprocess.STDOUT, env=cli_env({"POD_NAME": name})
        )


def row(node: dict[str, Any], now: float) -> tuple[str, str, str, str]:
    taints = [t["key"] for t in node["spec"].get("taints") or []]
    held = TAINT["key"] in taints
    condition = next(
        (c for c in node["status"].get("conditions") or [] if c["type"] == CONDITION), None
    )
    state = "[yellow]held[/]" if held else "[green]released[/]"
    said = f"{condition['status']} {condition['reason']}" if condition else "-"
    age = node["metadata"].get("creationTimestamp", "")
    return node["metadata"]["name"], state, said, age


def metrics(port: int) -> str:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read()
    except OSError:
        return "(metrics not served yet)"
    keep = ("nodes_pending ", "nodes_released_total{", "leader ", "release_seconds_count")
    lines = [
        line.removeprefix("image_awaiter_gate_")
        for line in text.decode().splitlines()
        if not line.startswith("#") and any(k in line for k in keep)
    ]
    return "  ".join(lines)


def picture(sim: SimCluster, port: int, started: float) -> Table:
    table = Table(title=f"nodes, {time.monotonic() - started:4.1f} s  |  {metrics(port)}")
    for column in ("node", "gate", f"condition {CONDITION}", "created"):
        table.add_column(column)
    for node in sim.objects("nodes"):
        table.add_row(*row(node, time.monotonic()))
    return table


def main() -> int:
    console = Console()
    with SimCluster(seed=11, time_scale=1.0) as sim, tempfile.TemporaryDirectory() as tmp:
        sim.registry.add(NOTEBOOK, size_bytes=int(4.6 * GB), pull_seconds=4.0)
        sim.fail_pull(NOTEBOOK, kind="tag-not-found", nodes=["user-wave2-1"])
        for index in range(3):
            sim.add_node(f"user-{index}", images=(NOTEBOOK,))
        kubeconfig = sim.write_kubeconfig(Path(tmp) / "kubeconfig")
        replicas = [
            gate(kubeconfig, Path(tmp) / f"gate-{i}.log", f"gate-{i}", 18080 + i) for i in range(2)
        ]
        started = time.monotonic()
        waves = list(WAVES)
        with Live(picture(sim, 18080, started), console=console, refresh_per_second=4) as live:
            while time.monotonic() - started < 40:
                elapsed = time.monotonic() - started
                while waves and elapsed >= waves[0][0]:
                    _, count = waves.pop(0)
                    wave = len(WAVES) - len(waves)
                    for index in range(count):
                        os = "windows" if (wave, index) == (3, 2) else "linux"
                        sim.add_node(f"user-wave{wave}-{index}", taints=[TAINT], os=os)
                holder = next(iter(sim.objects("leases", "default")), {}).get("spec", {})
                port = 18080 + (1 if holder.get("holderIdentity") == "gate-1" else 0)
                live.update(picture(sim, port, started))
                time.sleep(0.25)
        events = [
            f"{e['involvedObject']['name']}: {e['type']} {e['reason']}: {e['message'][:90]}"
            for e in sim.objects("events", "default")
            if e["involvedObject"]["kind"] == "Node"
        ]
        console.print("\nEvents on nodes:\n  " + "\n  ".join(events))
        codes = []
        for replica in replicas:
            replica.send_signal(signal.SIGTERM)
            codes.append(replica.wait(30))
        left = [d["metadata"]["name"] for d in sim.objects("daemonsets", "default")]
        console.print(f"\ngate replicas exited {codes} on SIGTERM; DaemonSets left: {left}")
        return 0 if codes == [0, 0] else 1


if __name__ == "__main__":
    sys.exit(main())

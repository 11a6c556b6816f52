"""`python -m simcluster.controlplane up|measure`, from the repository root.

`up`: start the real control plane and keep it until Ctrl-C/SIGTERM; prints the admin
kubeconfig and the endpoint file (`IMAGE_AWAITER_CONTROL_PLANE_ENDPOINT=<it>` makes pytest use
this control plane instead of starting its own). `measure`: start, print the start timings and
each process's resident memory as JSON, stop. Exit 2 naming `make control-plane` without
binaries."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from simcluster.controlplane.binaries import MissingBinaries
from simcluster.controlplane.running import ControlPlane


def _up(control_plane: ControlPlane) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"control plane {control_plane.endpoint().version} at {control_plane.server}")
    print(f"KUBECONFIG={control_plane.kubeconfig}")
    print(f"IMAGE_AWAITER_CONTROL_PLANE_ENDPOINT={control_plane.workdir / 'endpoint.json'}")
    sys.stdout.flush()
    stop.wait()


def _fresh_namespace_seconds(control_plane: ControlPlane) -> float:
    """From creating a namespace to its `default` ServiceAccount and `kube-root-ca.crt`."""
    admin = control_plane.admin
    started = time.monotonic()
    admin.create("/api/v1/namespaces", {"metadata": {"name": "measured"}})
    for what in ("serviceaccounts/default", "configmaps/kube-root-ca.crt"):
        admin.wait_for(f"/api/v1/namespaces/measured/{what}")
    return time.monotonic() - started


def _measure(control_plane: ControlPlane) -> None:
    control_plane.timings["fresh_namespace"] = _fresh_namespace_seconds(control_plane)
    rss = {name: round(size / 2**20) for name, size in control_plane.rss().items()}
    timings = {phase: round(seconds, 2) for phase, seconds in control_plane.timings.items()}
    print(json.dumps({"seconds": timings, "rss_mib": rss, "rss_mib_total": sum(rss.values())}))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simcluster.controlplane")
    parser.add_argument("command", choices=["up", "measure"])
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temp dir)")
    parser.add_argument("--port", type=int, help="the API server's port (default: a free one)")
    args = parser.parse_args(argv)
    try:
        control_plane = ControlPlane(workdir=args.workdir, port=args.port)
    except MissingBinaries as error:
        print(f"control-plane: {error}", file=sys.stderr)
        return 2
    with control_plane:
        (_up if args.command == "up" else _measure)(control_plane)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m simcluster serve --control-plane real`: the real control plane on loopback with
simulated nodes in front of it, as HTTP clients (simcluster.nodes.kubelet)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from simcluster.apiclient import Api
from simcluster.controlplane import ControlPlane, ControlPlaneError, MissingBinaries
from simcluster.nodes.kubelet import REGISTERING_THREADS, Kubelets
from simcluster.nodes.registry import Registry
from simcluster.nodes.world import NodeWorld

READY_TIMEOUT = 120.0


def serve_real(
    args: argparse.Namespace,
    *,
    fill_registry: Callable[[argparse.Namespace, Registry], str | None],
    until_signalled: Callable[[], None],
) -> int:
    try:
        plane = ControlPlane(
            audit_log=args.audit_log, kubeconfig=args.kubeconfig, port=args.port or None
        )
    except MissingBinaries as error:
        print(f"python -m simcluster serve --control-plane real: {error}", file=sys.stderr)
        return 2
    world = NodeWorld(unknown_images="missing")
    problem = fill_registry(args, world.registry)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        plane.start()
    except ControlPlaneError as error:
        print(f"python -m simcluster serve --control-plane real: {error}", file=sys.stderr)
        return 1
    api = Api.from_kubeconfig(plane.kubeconfig)
    kubelets = Kubelets(
        api,
        world=world,
        awaiter_image=args.awaiter_image,
        serving=plane.endpoint().kubelet_tls(directory=plane.workdir / "kubelet"),
    )
    try:
        names = [f"node-{index + 1}" for index in range(args.nodes)]
        with ThreadPoolExecutor(REGISTERING_THREADS) as pool:
            list(pool.map(lambda name: kubelets.add_node(name, images=args.present), names))
        kubelets.start()
        wait_until_ready(api, names)
        print(
            f"real control plane (Kubernetes {plane.binaries_version}) at {plane.server}; "
            f"KUBECONFIG={plane.kubeconfig}",
            flush=True,
        )
        until_signalled()
    finally:
        kubelets.stop()
        api.close()
        plane.stop()
    return 0


def wait_until_ready(api: Api, names: list[str]) -> None:
    """Every node's Ready condition is True as the API server reads it."""
    deadline = time.monotonic() + READY_TIMEOUT
    wanted = set(names)
    while True:
        listing = api.call("GET", "/api/v1/nodes")
        ready = {
            node["metadata"]["name"]
            for node in listing["items"]
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in node.get("status", {}).get("conditions") or []
            )
        }
        if wanted <= ready:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nodes not Ready within {READY_TIMEOUT:g}s: {wanted - ready}")
        time.sleep(0.2)

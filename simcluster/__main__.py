"""`python -m simcluster serve`: a cluster that real kubectl and helm use, with simulated nodes.

`--control-plane sim` (the default): the simulated API server, in this process, instant.
`--control-plane real`: the real etcd, kube-apiserver, kube-controller-manager and
kube-scheduler (`make control-plane` builds them), with the simulated nodes as HTTP clients
(simcluster.nodes.kubelet); without the binaries it exits 2 naming `make control-plane`.

Prints one line naming the admin kubeconfig once ready (the API answers, every node is Ready,
namespace `default` has its ServiceAccount and `kube-root-ca.crt`); serves until SIGINT or
SIGTERM, then exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

from image_awaiter import __version__
from simcluster.cluster import SimCluster
from simcluster.nodes.registry import Registry
from simcluster.nodes.runtime import DEFAULT_AWAITER_IMAGE


def _image(text: str) -> tuple[str, float]:
    ref, _, seconds = text.partition("=")
    try:
        return ref, float(seconds) if seconds else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: PULL_SECONDS must be a number") from None


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="python -m simcluster")
    commands = parse.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a simulated cluster until interrupted")
    serve.add_argument(
        "--control-plane",
        choices=("sim", "real"),
        default="sim",
        help="the simulated API server (default) or the real control plane (make control-plane)",
    )
    serve.add_argument("--nodes", type=int, default=3, help="worker nodes (default 3)")
    serve.add_argument(
        "--image",
        action="append",
        default=[],
        type=_image,
        metavar="REF[=PULL_SECONDS]",
        help="an image the registry has (repeatable); other images fail to pull: not found",
    )
    serve.add_argument(
        "--present", action="append", default=[], metavar="REF", help="already on every node"
    )
    serve.add_argument(
        "--awaiter-image",
        default=DEFAULT_AWAITER_IMAGE,
        metavar="REF",
        help=f"pods with this image (any tag) run the real CLI (default {DEFAULT_AWAITER_IMAGE})",
    )
    serve.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any)")
    serve.add_argument("--kubeconfig", type=Path, help="where to write the admin kubeconfig")
    serve.add_argument(
        "--audit-log",
        type=Path,
        help="one JSON line per request (with `real`: kube-apiserver's own audit log)",
    )
    serve.add_argument("--seed", type=int, default=0)
    return parse


def _images(args: argparse.Namespace, registry: Registry) -> str | None:
    """Fill the registry from --image and --present; an error message, else None."""
    registry.unknown_images_exist = False
    # The project's own image, as the release workflow publishes it (README: Install): the
    # generated puller's default --helper-image and the chart's hook image, both at the
    # package's version.
    registry.add(f"{args.awaiter_image}:{__version__}", size_bytes=20 * 1024**2)
    for ref, seconds in args.image:
        registry.add(ref, pull_seconds=seconds)
    for ref in args.present:
        if registry.lookup(ref) is None:
            return f"--present {ref!r}: not an image reference"
        registry.add(ref, pull_seconds=0)
    return None


def _until_signalled() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


def serve(args: argparse.Namespace) -> int:
    if args.control_plane == "real":
        from simcluster import serving  # the harness's imports only when asked for

        return serving.serve_real(args, fill_registry=_images, until_signalled=_until_signalled)
    work = Path(tempfile.mkdtemp(prefix="simcluster-"))
    sim = SimCluster(seed=args.seed, audit_log=args.audit_log, awaiter_image=args.awaiter_image)
    problem = _images(args, sim.registry)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    sim.use_self_signed_tls(work / "tls")
    sim.publish_root_ca()
    for index in range(args.nodes):
        sim.add_node(f"node-{index + 1}", images=args.present)
    sim.start_on(args.port)
    try:
        kubeconfig = sim.write_kubeconfig(args.kubeconfig or work / "kubeconfig")
        print(f"simulated cluster at {sim.url}; KUBECONFIG={kubeconfig}", flush=True)
        _until_signalled()
    finally:
        sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.nodes < 0:
        print("--nodes must be 0 or more", file=sys.stderr)
        return 2
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())

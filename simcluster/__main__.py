"""`python -m simcluster serve`: a simulated cluster that real kubectl and helm use.

Prints one line naming the admin kubeconfig when ready; serves until SIGINT/SIGTERM, exit 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

from image_awaiter import __version__
from simcluster.cluster import DEFAULT_AWAITER_IMAGE, SimCluster


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
    serve.add_argument("--audit-log", type=Path, help="append one JSON line per request here")
    serve.add_argument("--seed", type=int, default=0)
    return parse


def serve(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="simcluster-"))
    sim = SimCluster(seed=args.seed, audit_log=args.audit_log, awaiter_image=args.awaiter_image)
    sim.registry.unknown_images_exist = False
    # The project's own image, as the release workflow publishes it (README: Install): the
    # generated puller's default --helper-image and the chart's hook image, both at the
    # package's version.
    sim.registry.add(f"{args.awaiter_image}:{__version__}", size_bytes=20 * 1024**2)
    for ref, seconds in args.image:
        sim.registry.add(ref, pull_seconds=seconds)
    for ref in args.present:
        if sim.registry.lookup(ref) is None:
            print(f"--present {ref!r}: not an image reference", file=sys.stderr)
            return 2
        sim.registry.add(ref, pull_seconds=0)
    sim.use_self_signed_tls(work / "tls")
    for index in range(args.nodes):
        sim.add_node(f"node-{index + 1}", images=args.present)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sim.start_on(args.port)
    try:
        kubeconfig = sim.write_kubeconfig(args.kubeconfig or work / "kubeconfig")
        print(f"simulated cluster at {sim.url}; KUBECONFIG={kubeconfig}", flush=True)
        while not stop.wait(0.5):
            pass
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

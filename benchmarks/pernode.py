"""Per-node CPU of `check`'s streaming list, in process, on recorded lines (no socket).

Renders N synthetic nodes (simcluster/apiserver/listing.py) as one chunked watch body, one HTTP
chunk per event as kube-apiserver writes them, then times (best of --repeat, us per node):
  - read: `chunked_lines` over the body, fed from memory in blocks;
  - decode: `NodeCodec.event` on every line;
  - both: reading, decoding and keeping the records, as `read_initial_events` does.
Usage: python benchmarks/pernode.py [--nodes 5000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from image_awaiter.core.references import parse_image  # noqa: E402
from image_awaiter.kube.chunked import chunked_lines  # noqa: E402
from image_awaiter.kube.nodecodec import NodeCodec  # noqa: E402
from simcluster.apiserver.listing import SyntheticNodes  # noqa: E402
from simcluster.nodes.factory import COMMON_IMAGE  # noqa: E402


def body(count: int) -> bytes:
    nodes = SyntheticNodes(count)
    parts = []
    for i in range(count):
        line = b'{"type":"ADDED","object":' + nodes.render(i) + b"}\n"
        parts.append(b"%x\r\n%s\r\n" % (len(line), line))
    return b"".join(parts) + b"0\r\n\r\n"


def feeder(data: bytes, block: int = 1 << 18):  # type: ignore[no-untyped-def]
    source = memoryview(data)
    at = 0

    def read_into(view: memoryview) -> int:
        nonlocal at
        n = min(len(view), len(source) - at, block)
        view[:n] = source[at : at + n]
        at += n
        return n

    return read_into


def codec() -> NodeCodec:
    return NodeCodec(
        wanted=frozenset({parse_image(COMMON_IMAGE).key}),
        label_keys=frozenset({"hub.jupyter.org/node-purpose", "kubernetes.io/os"}),
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = body(args.nodes)
    lines = [bytes(line) for line in chunked_lines(feeder(data))]

    def read() -> None:
        for _ in chunked_lines(feeder(data)):
            pass

    def decode() -> None:
        c = codec()
        for line in lines:
            c.event(line)

    def both() -> None:  # kept in a dict, as read_initial_events keeps them
        c = codec()
        items = {}
        for line in chunked_lines(feeder(data)):
            event = c.event(line)
            items[event.key] = event.record

    for name, run in (("read", read), ("decode", decode), ("both", both)):
        best = float("inf")
        for _ in range(args.repeat):
            started = time.process_time()
            run()
            best = min(best, time.process_time() - started)
        print(f"{name:7s} {best / args.nodes * 1e6:6.2f} us/node", flush=True)
    print(f"load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

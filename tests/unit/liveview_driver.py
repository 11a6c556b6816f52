"""Feed the live view a few snapshots the way the await loop would, then print a final line.

Run by test_liveview_pty.py inside a real pseudo-terminal (and once through a pipe). It decides
like the CLI: draw only when `live_view_wanted` says so; the final line is printed either way.
"""

from __future__ import annotations

import sys

from image_awaiter.core.overview import NodeRecord, build_snapshot
from image_awaiter.output.liveview import LiveView, live_view_wanted

BUSYBOX = "docker.io/library/busybox:1.36"
NOTEBOOK = "quay.io/jupyter/scipy-notebook:2024-05-01"
FINAL = "image-awaiter: node-7: tag not found"
NOTE = "node gpu-1 cordoned: no longer a target"
# containerd's message for a missing tag, as kubelets report it (cvisionai/tator#439 shows one
# for docker.io/cvisionai/tator_online; ghcr.io and docker.io read the same), for our image.
MISSING = NOTEBOOK.replace("2024-05-01", "2099-01-01")
DENIED = (
    f'ErrImagePull: Failed to pull image "{MISSING}": rpc error: code = NotFound desc = failed '
    f'to pull and unpack image "{MISSING}": failed to resolve reference "{MISSING}": '
    f"{MISSING}: not found"
)


def nodes_at(step: int) -> list[NodeRecord]:
    """24 nodes; after `step` rounds, 6 x step have both images and node-7 fails for good."""
    records = []
    for i in range(24):
        done = i < 6 * step
        failing = step == 2 and i == 7 + 12
        records.append(
            NodeRecord(
                name=f"node-{7 if failing else i + 100}",
                done=done,
                state=DENIED if failing else "pulling",
                since=float(i),
                failing=failing,
                present=frozenset({BUSYBOX, NOTEBOOK} if done else {BUSYBOX}),
                pulling=frozenset() if done or failing else frozenset({NOTEBOOK}),
                pulled_bytes={NOTEBOOK: 1_500_000_000} if done else {},
            )
        )
    return records


def main() -> None:
    if live_view_wanted(sys.stderr, "auto", None):
        view = LiveView(stream=sys.stderr, max_nodes=3)
        view.start()
        for step in range(3):
            view.update(
                build_snapshot(
                    nodes=nodes_at(step),
                    images=[BUSYBOX, NOTEBOOK],
                    excluded={"gpu-1": "cordoned"},
                    elapsed=10.0 * step,
                    now=100.0,
                )
            )
            if step == 1:  # as a coloured console log line would arrive, through the writer
                print(f"\x1b[33m{NOTE}\x1b[0m", file=view.writer(), flush=True)
        view.stop()
    print(FINAL, file=sys.stderr)


if __name__ == "__main__":
    main()

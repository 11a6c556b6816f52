"""`make demo` as a newcomer sees it (issue 19): run in a real pseudo-terminal and read back from
pyte's screen, its first screen says in plain words what is about to happen, then the awaiter
draws its live view (it passed `--log-format console`, which turned the view off: about 60
scrolling log lines)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect
import pyte

ROOT = Path(__file__).resolve().parents[2]
COLUMNS, ROWS = 110, 60


def test_make_demo_explains_itself_then_draws_the_live_view_on_a_terminal() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGE_AWAITER_", "KUBE"))}
    env.update(TERM="xterm-256color", PYTHONPATH=str(ROOT))
    child = pexpect.spawn(
        sys.executable,
        ["-m", "simcluster.demo"],
        cwd=str(ROOT),
        env=env,
        dimensions=(ROWS, COLUMNS),
        timeout=180,
    )
    child.expect(pexpect.EOF)
    child.close()
    output = child.before
    assert child.exitstatus == 0, output.decode(errors="replace")[-3000:]
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.ByteStream(screen).feed(output)
    lines = [line.rstrip() for line in screen.display]
    text = "\n".join(lines)
    first = lines.index("What image-awaiter does now, as a Helm hook or CI step would:")
    assert lines[0].startswith("image-awaiter demo: nothing real is touched.")
    assert (
        "  3. shows, below, how many nodes are done, each image, and the slowest nodes;"
        in (lines[first + 1 : first + 5])
    )
    # The live view, redrawn in place: its last frame, not a scroll of log lines.
    assert any(line.startswith("━") and "24/24 nodes · " in line for line in lines)
    assert "  excluded: 4 nodes" in lines
    assert '"event"' not in text and "[info" not in text
    assert "image-awaiter exited 0: every notebook node has both images; DaemonSets left: none" in (
        lines
    )
    assert any(line.startswith("From its report: 24 of 24 notebook nodes done") for line in lines)

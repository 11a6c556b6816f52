"""The live view as a person sees it: drawn in a real pseudo-terminal, read back from pyte's screen.

The driver (liveview_driver.py) feeds three snapshots (0, 6 and 12 of 24 nodes done, node-7
failing in the last) and then prints the final one-line message, as the CLI does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pexpect
import pyte
import pytest

from tests.unit.liveview_driver import FINAL, NOTE

ROOT = Path(__file__).resolve().parents[2]
DRIVER = [sys.executable, "-m", "tests.unit.liveview_driver"]


def _env(term: str = "xterm-256color") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES", "NO_COLOR"}}
    return {**env, "TERM": term, "PYTHONPATH": str(ROOT)}


def _screen(columns: int, rows: int = 30, *, term: str = "xterm-256color") -> list[str]:
    """Run the driver in a pseudo-terminal `columns` wide; the screen's lines, blank tail cut."""
    child = pexpect.spawn(
        DRIVER[0], DRIVER[1:], cwd=str(ROOT), env=_env(term), dimensions=(rows, columns), timeout=60
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    screen = pyte.Screen(columns, rows)
    pyte.ByteStream(screen).feed(child.before)
    if term == "dumb":
        assert b"\x1b" not in child.before  # not one escape sequence
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines


@pytest.fixture(scope="module")
def wide() -> list[str]:
    return _screen(100)


@pytest.fixture(scope="module")
def narrow() -> list[str]:
    return _screen(40)


def test_a_note_during_the_view_is_printed_above_it(wide: list[str]) -> None:
    assert wide[0] == NOTE


def test_the_bar_shows_nodes_done_of_targets_elapsed_and_eta(wide: list[str]) -> None:
    assert "━" in wide[1]
    assert wide[1].endswith("12/24 nodes · 20s · ETA 20s")


def test_earlier_frames_are_redrawn_in_place_not_scrolled(wide: list[str]) -> None:
    text = "\n".join(wide)
    assert text.count("nodes ·") == 1
    assert "6/24 nodes" not in text
    assert "0/24 nodes" not in text


def test_each_image_has_a_line_with_nodes_bytes_and_pulls_in_flight(wide: list[str]) -> None:
    busybox, notebook = wide[2], wide[3]
    assert busybox.split() == ["docker.io/library/busybox:1.36", "24/24"]
    assert notebook.split() == [
        "quay.io/jupyter/scipy-notebook:2024-05-01",
        "12/24",
        "18.0",
        "GB",
        "11",
        "pulling",
    ]


def test_the_failing_node_leads_the_node_list_with_its_message(wide: list[str]) -> None:
    assert wide[4].strip() == "slowest / failing nodes"
    assert wide[5].split()[:3] == ["✗", "node-7", "ErrImagePull:"]
    assert 'ErrImagePull: Failed to pull image "' in wide[5]
    assert wide[5].endswith("/scipy-notebook:2099-01-01: not found  1m21s")  # the root cause
    assert len(wide) == 10  # note, bar, 2 images, heading, 3 nodes, excluded, the final line
    assert wide[-2].strip() == "excluded: 1 node"


def test_the_final_message_stands_alone_on_the_line_after_the_view(wide: list[str]) -> None:
    assert wide[-1] == FINAL
    assert wide[-2].strip() == "excluded: 1 node"


def test_forty_columns_cut_lines_instead_of_wrapping(narrow: list[str]) -> None:
    assert all(len(line) <= 40 for line in narrow)
    assert narrow[0] == NOTE
    assert "━" in narrow[1] and narrow[1].endswith("12/24 nodes · 20s · ETA 20s")
    assert narrow[2].startswith("  docker.io/") and narrow[2].endswith("…usybox:1.36  24/24")
    assert narrow[3].startswith("  quay.io/") and "…:2024-05-01  12/24" in narrow[3]
    assert narrow[4].strip() == "slowest / failing nodes"
    assert narrow[5].split()[:2] == ["✗", "node-7"]
    assert narrow[5].endswith("not found  1m21s")
    assert [line.split()[:2] for line in narrow[6:8]] == [["·", "node-112"], ["·", "node-113"]]
    assert narrow[8].strip() == "excluded: 1 node"
    assert narrow[9:] == [FINAL]


def test_through_a_pipe_only_the_final_message_is_written() -> None:
    done = subprocess.run(
        DRIVER, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stderr == FINAL + "\n"
    assert done.stdout == ""


def test_a_dumb_terminal_gets_only_the_final_message() -> None:
    assert _screen(80, term="dumb") == [FINAL]

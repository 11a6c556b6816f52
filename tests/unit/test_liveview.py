"""The live view's pure parts: the ETA, the snapshot, when the view is drawn, one frame."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence

import pytest

from image_awaiter.core.overview import (
    ImageLine,
    NodeRecord,
    Sample,
    SlowNode,
    Snapshot,
    add_sample,
    build_snapshot,
    duration_text,
    eta,
    fit,
)
from image_awaiter.output.liveview import LiveView, live_view_wanted, render_once

BUSYBOX = "docker.io/library/busybox:1.36"
NOTEBOOK = "quay.io/jupyter/scipy-notebook:2024-05-01"


@pytest.mark.parametrize(
    ("samples", "total", "expected"),
    [
        ([], 10, None),
        ([(0.0, 0)], 10, None),
        ([(0.0, 0), (10.0, 5)], 10, 10.0),
        ([(0.0, 0), (5.0, 1), (10.0, 5)], 10, 10.0),  # oldest to newest, not the last step
        ([(0.0, 2), (4.0, 4)], 100, 192.0),
        ([(0.0, 5), (10.0, 5)], 10, None),  # no progress: unknown, not infinite
        ([(0.0, 6), (10.0, 4)], 10, None),  # nodes left: never a negative rate
        ([(3.0, 3), (3.0, 5)], 10, None),  # no time between the samples
        ([(0.0, 10), (5.0, 10)], 10, 0.0),  # done
        ([(0.0, 2), (4.0, 12)], 10, 0.0),  # more done than targets (a node left): done
        ([(7.0, 0)], 0, 0.0),  # nothing to await
    ],
)
def test_eta_comes_from_the_rate_across_the_samples(
    samples: Sequence[Sample], total: int, expected: float | None
) -> None:
    assert eta(samples, total=total) == expected


def test_samples_older_than_the_window_are_dropped() -> None:
    samples: tuple[Sample, ...] = ()
    for at, done in [(0.0, 0), (10.0, 9), (40.0, 10), (70.0, 11), (80.0, 12)]:
        samples = add_sample(samples, (at, done), window=30.0)
    assert samples == ((70.0, 11), (80.0, 12))


def test_a_fast_start_stops_counting_once_it_leaves_the_window() -> None:
    samples: tuple[Sample, ...] = ()
    for at, done in [(0.0, 0), (10.0, 50), (40.0, 51), (70.0, 52)]:
        samples = add_sample(samples, (at, done), window=30.0)
    assert eta(samples, total=100) == pytest.approx(48 * 30.0)


def _node(name: str, **fields: object) -> NodeRecord:
    return NodeRecord(name=name, **fields)  # type: ignore[arg-type]


def test_snapshot_counts_nodes_images_bytes_and_pulls_in_flight() -> None:
    nodes = [
        _node("a", done=True, present=frozenset({BUSYBOX, NOTEBOOK}), pulled_bytes={NOTEBOOK: 700}),
        _node("b", done=False, present=frozenset({BUSYBOX}), pulling=frozenset({NOTEBOOK})),
        _node("c", done=False, pulling=frozenset({BUSYBOX, NOTEBOOK}), pulled_bytes={}),
        _node("d", done=True, present=frozenset({BUSYBOX, NOTEBOOK}), pulled_bytes={NOTEBOOK: 300}),
    ]
    snap = build_snapshot(
        nodes=nodes, images=[BUSYBOX, NOTEBOOK], excluded={}, elapsed=12.0, now=100.0
    )
    assert (snap.elapsed, snap.done, snap.total) == (12.0, 2, 4)
    assert snap.images == (
        ImageLine(name=BUSYBOX, have=3, targets=4, pulled_bytes=0, pulling=1),
        ImageLine(name=NOTEBOOK, have=2, targets=4, pulled_bytes=1000, pulling=2),
    )


def test_an_image_counts_only_the_nodes_meant_to_get_it() -> None:
    nodes = [
        _node("gpu", done=False, images=frozenset({BUSYBOX, NOTEBOOK})),
        _node("cpu", done=True, images=frozenset({BUSYBOX}), present=frozenset({BUSYBOX})),
    ]
    snap = build_snapshot(nodes=nodes, images=[BUSYBOX, NOTEBOOK], excluded={}, elapsed=0, now=0)
    assert [(line.have, line.targets) for line in snap.images] == [(1, 2), (0, 1)]


def test_failing_nodes_come_first_then_the_longest_waiting() -> None:
    nodes = [
        _node("quick", done=False, state="pulling", since=90.0),
        _node("stuck", done=False, state="pulling", since=10.0),
        _node("done", done=True, since=0.0),
        _node("denied", done=False, state="ErrImagePull: denied", since=95.0, failing=True),
        _node("middle", done=False, state="pulling", since=50.0),
    ]
    snap = build_snapshot(
        nodes=nodes, images=[BUSYBOX], excluded={}, elapsed=0, now=100.0, slowest=3
    )
    assert snap.slowest == (
        SlowNode(name="denied", state="ErrImagePull: denied", for_seconds=5.0, failing=True),
        SlowNode(name="stuck", state="pulling", for_seconds=90.0, failing=False),
        SlowNode(name="middle", state="pulling", for_seconds=50.0, failing=False),
    )


def test_a_state_entered_after_now_lasts_zero_seconds_not_a_negative_time() -> None:
    snap = build_snapshot(
        nodes=[_node("a", done=False, since=101.0)], images=[], excluded={}, elapsed=0, now=100.0
    )
    assert snap.slowest[0].for_seconds == 0.0


def test_excluded_nodes_are_counted_by_reason_most_first() -> None:
    excluded = {"n1": "cordoned", "n2": "not Ready", "n3": "not Ready", "n4": "taint x=y"}
    snap = build_snapshot(nodes=[], images=[], excluded=excluded, elapsed=0, now=0)
    assert snap.excluded[0] == ("not Ready", 2)
    assert sorted(snap.excluded[1:]) == [("cordoned", 1), ("taint x=y", 1)]
    assert snap.excluded_total == 4


def test_groups_are_listed_in_the_order_of_their_first_image() -> None:
    snap = build_snapshot(
        nodes=[],
        images=["x", "y", "z"],
        excluded={},
        elapsed=0,
        now=0,
        groups={"x": "users", "y": "system", "z": "users"},
    )
    assert snap.groups == ("users", "system")
    assert [line.group for line in snap.images] == ["users", "system", "users"]


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("busybox", 10, "busybox"),
        ("abcdefghijklmnop", 10, "abcd…lmnop"),
        (NOTEBOOK, 24, "quay.io/jup…k:2024-05-01"),
        ("abc", 1, "…"),
        ("abc", 0, ""),
    ],
)
def test_long_names_are_cut_in_the_middle(text: str, width: int, expected: str) -> None:
    assert fit(text, width) == expected
    assert len(fit(text, width)) <= width


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (7.9, "7s"), (59, "59s"), (60, "1m00s"), (125, "2m05s"), (3720, "1h02m")],
)
def test_durations_keep_a_short_fixed_shape(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


@pytest.fixture
def terminal() -> Iterator[io.TextIOWrapper]:
    """The writing end of a real pseudo-terminal, as stderr is in an interactive shell."""
    main, replica = os.openpty()
    with open(replica, "w") as stream:
        yield stream
    os.close(main)


@pytest.mark.parametrize(
    ("log_format", "progress", "wanted"),
    [
        ("auto", None, True),
        ("console", None, False),
        ("json", None, False),
        ("json", True, True),
        ("console", True, True),
        ("auto", False, False),
    ],
)
def test_on_a_terminal_auto_or_progress_draws_the_view(
    terminal: io.TextIOWrapper,
    monkeypatch: pytest.MonkeyPatch,
    log_format: str,
    progress: bool | None,
    wanted: bool,
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    assert live_view_wanted(terminal, log_format, progress) is wanted


@pytest.mark.parametrize("term", ["dumb", "unknown", "DUMB"])
def test_a_dumb_terminal_never_gets_the_view_even_when_asked(
    terminal: io.TextIOWrapper, monkeypatch: pytest.MonkeyPatch, term: str
) -> None:
    monkeypatch.setenv("TERM", term)
    assert not live_view_wanted(terminal, "auto", True)


@pytest.mark.parametrize("progress", [None, True])
def test_without_a_terminal_the_view_is_never_drawn(
    monkeypatch: pytest.MonkeyPatch, progress: bool | None
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    reading, writing = os.pipe()
    with open(reading) as _, open(writing, "w") as pipe:
        assert not live_view_wanted(pipe, "auto", progress)
    assert not live_view_wanted(io.StringIO(), "auto", progress)


def test_a_closed_stream_gets_no_view() -> None:
    stream = io.StringIO()
    stream.close()
    assert not live_view_wanted(stream, "auto", True)


def test_importing_the_view_does_not_import_rich() -> None:
    code = (
        "import sys, io\n"
        "from image_awaiter.output.liveview import LiveView, live_view_wanted\n"
        "live_view_wanted(sys.stderr, 'auto', True)\n"
        "LiveView(stream=io.StringIO())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'pygments')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_without_rich_installed_the_view_is_not_wanted_and_logs_still_work() -> None:
    """An image may prune rich (a pod has no terminal); structlog then falls back by itself."""
    code = (
        "import os, sys\n"
        "sys.modules['rich'] = None  # as if not installed\n"
        "import structlog\n"
        "from image_awaiter.output.liveview import live_view_wanted\n"
        "_, replica = os.openpty()\n"
        "print(live_view_wanted(open(replica, 'w'), 'auto', True))\n"
    )
    env = {**os.environ, "TERM": "xterm-256color"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False"


SNAPSHOT = Snapshot(
    elapsed=65.0,
    done=12,
    total=24,
    images=(
        ImageLine(name=BUSYBOX, have=18, targets=24, pulled_bytes=312_400_000, pulling=3),
        ImageLine(
            name=NOTEBOOK + "-with-a-long-suffix", have=12, targets=24, pulled_bytes=0, pulling=9
        ),
    ),
    slowest=(
        SlowNode(
            name="node-7", state="ErrImagePull: manifest unknown", for_seconds=45, failing=True
        ),
        SlowNode(name="node-3", state="pulling", for_seconds=123, failing=False),
    ),
    excluded=(("node is not Ready", 2), ("cordoned", 1)),
)


def _frame(width: int, *, show_excluded: bool = False) -> list[str]:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, color_system=None)
    render_once(SNAPSHOT, console=console, eta=70.0, show_excluded=show_excluded)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return [line.rstrip() for line in text.splitlines()]


def test_a_frame_shows_the_counts_each_image_and_the_failing_node() -> None:
    frame = _frame(100)
    assert "12/24 nodes · 1m05s · ETA 1m10s" in frame[0]
    assert any(BUSYBOX in line and "18/24" in line and "312.4 MB" in line for line in frame)
    assert any("node-7" in line and "manifest unknown" in line and "45s" in line for line in frame)
    assert frame[-1].strip() == "excluded: 3 nodes"


def test_reasons_for_exclusion_are_shown_on_request() -> None:
    assert not any("cordoned" in line for line in _frame(80))
    assert any("1  cordoned" in line for line in _frame(80, show_excluded=True))


@pytest.mark.parametrize("width", [24, 40, 60])
def test_a_narrow_frame_keeps_every_line_within_the_width(width: int) -> None:
    frame = _frame(width, show_excluded=True)
    assert all(len(line) <= width for line in frame)
    assert len(frame) == len(_frame(200, show_excluded=True)) + (1 if width < 43 else 0)
    assert any("…" in line and "12/24" in line for line in frame)


def test_a_long_image_list_keeps_the_unfinished_images_and_sums_up_the_rest() -> None:
    from rich.console import Console

    images = tuple(
        ImageLine(
            name=f"image-{i}",
            have=5 if i in {2, 9, 13} else 8,
            targets=8,
            pulled_bytes=0,
            pulling=0,
        )
        for i in range(14)
    )
    console = Console(file=io.StringIO(), width=80, color_system=None)
    render_once(Snapshot(elapsed=1, done=0, total=8, images=images), console=console)
    frame = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    shown = [line.split()[0] for line in frame[1:-1]]
    assert shown == [f"image-{i}" for i in (0, 1, 2, 3, 4, 5, 6, 9, 13)]
    assert frame[-1].strip() == "and 5 more images, 5 of them on every target"


def test_the_writer_passes_on_whole_lines_only() -> None:
    stream = io.StringIO()
    writer = LiveView(stream=stream).writer()  # not started: notes go straight to the stream
    writer.write("warning: node ")
    writer.write("gpu-1 left\nsecond")
    assert stream.getvalue() == "warning: node gpu-1 left\n"
    writer.write(" line\n")
    assert stream.getvalue() == "warning: node gpu-1 left\nsecond line\n"


def test_images_are_listed_under_their_group_when_the_run_has_groups() -> None:
    from rich.console import Console

    snap = build_snapshot(
        nodes=[_node("a", done=False)],
        images=["jupyter", "pause", "notebook"],
        excluded={},
        elapsed=0,
        now=0,
        groups={"jupyter": "users", "pause": "system", "notebook": "users"},
    )
    console = Console(file=io.StringIO(), width=80, color_system=None)
    render_once(snap, console=console)
    frame = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert [line[:3] for line in frame[1:6]] == ["  u", "   ", "   ", "  s", "   "]
    assert [line.split()[0] for line in frame[1:6]] == [
        "users",
        "jupyter",
        "notebook",
        "system",
        "pause",
    ]


def test_a_multi_line_runtime_message_stays_on_its_node_line() -> None:
    from rich.console import Console

    message = "Failed to pull image:\n\trpc error: code = Unknown\x1b[2J desc = denied"
    snap = Snapshot(
        elapsed=1, done=0, total=1, slowest=(SlowNode("n1", message, 3.0, failing=True),)
    )
    console = Console(file=io.StringIO(), width=120, color_system=None)
    render_once(snap, console=console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b" not in text
    frame = text.splitlines()
    assert len(frame) == 3  # the bar, the heading, the node
    assert frame[-1].startswith("  ✗ n1  Failed to pull image: rpc error: code = Unknown ")
    assert frame[-1].endswith(" desc = denied  3s")


@pytest.mark.parametrize("width", range(1, 31))
def test_every_width_down_to_one_column_renders_within_it(width: int) -> None:
    assert all(len(line) <= width for line in _frame(width, show_excluded=True))

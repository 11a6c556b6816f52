"""The live terminal view: one display updated in place while the awaiter waits.

Shown on a terminal only (`live_view_wanted`); everywhere else the JSON lines stay as they are.
`rich` is imported when a view is built, never at module import: the hook in a pod never draws
and should not pay for it. Each refresh draws one `Snapshot` (see `overview`), so the cost does
not grow with the cluster beyond what `build_snapshot` already folded.

Known limit: narrowing the window while the view is up can leave pieces of the frame drawn
before, because the terminal reflows lines already on screen and the redraw moves up by the old
line count (Textualize/rich#2685: "This is just how terminals work"). Every frame after that is
laid out for the new width, and lines are only as wide as their content needs.
"""

from __future__ import annotations

import importlib.util
import io
import os
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO, cast

from image_awaiter.core.overview import (
    ImageLine,
    Sample,
    SlowNode,
    Snapshot,
    add_sample,
    duration_text,
    eta,
    fit,
)

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.live import Live
    from rich.text import Text

_DUMB_TERMINALS = frozenset({"dumb", "unknown"})  # what rich itself treats as dumb
_MIN_BAR = 10
_MAX_BAR = 40
_MAX_REASONS = 5
_MAX_IMAGES = 10  # lines for images, so that a long list never pushes the nodes off the screen


def live_view_wanted(stream: TextIO, log_format: str, progress_flag: bool | None) -> bool:
    """Whether to draw the live view on `stream`.

    Never without a real terminal (a pipe, a file, a pod's log), on a dumb terminal, or when
    `rich` is not installed (a pruned image). Otherwise `--progress` forces it on and
    `--no-progress` off; left unset (None), only `--log-format auto` enables it, since asking
    for `console` or `json` explicitly asks for log lines.
    """
    if not _is_tty(stream) or os.environ.get("TERM", "").lower() in _DUMB_TERMINALS:
        return False
    if importlib.util.find_spec("rich") is None:
        return False
    if progress_flag is not None:
        return progress_flag
    return log_format == "auto"


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


class LiveView:
    """The display on `stream`: `start()`, `update(snapshot)` each evaluation, then `stop()`.

    `stop()` leaves the last screen in place and ends it with a newline, so a final one-line
    message written afterwards stands on its own line. Lines meant for the person while the
    view is up go through `note()` or the stream from `writer()`, which print them above the
    display; anything else written to the terminal meanwhile would tear the frame.
    """

    def __init__(
        self,
        *,
        stream: TextIO,
        show_excluded: bool = False,
        max_nodes: int = 5,
        eta_window: float = 60.0,
    ) -> None:
        self._stream = stream
        self._show_excluded = show_excluded
        self._max_nodes = max_nodes
        self._eta_window = eta_window
        self._samples: tuple[Sample, ...] = ()
        self._live: Live | None = None

    def start(self) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console(file=self._stream, force_terminal=True, force_interactive=True)
        self._live = Live(
            console=console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
            transient=False,
        )
        self._live.start()

    def update(self, snapshot: Snapshot) -> None:
        self._samples = add_sample(
            self._samples, (snapshot.elapsed, snapshot.done), window=self._eta_window
        )
        if self._live is not None:
            view = Screen(
                snapshot,
                eta=eta(self._samples, total=snapshot.total),
                show_excluded=self._show_excluded,
                max_nodes=self._max_nodes,
            )
            self._live.update(view, refresh=True)

    def note(self, line: str) -> None:
        if self._live is None:
            self._stream.write(line + "\n")
            return
        from rich.text import Text

        self._live.console.print(Text.from_ansi(line), soft_wrap=True)

    def writer(self) -> TextIO:
        """A text stream whose lines become `note()`s, e.g. for structlog's PrintLoggerFactory."""
        return cast(TextIO, _Notes(self))  # a TextIOBase: every TextIO method, typed apart

    def stop(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()
        self._stream.flush()

    def __enter__(self) -> LiveView:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Notes(io.TextIOBase):
    def __init__(self, view: LiveView) -> None:
        self._view = view
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._view.note(line)
        return len(text)


class Screen:
    """One frame of the view, laid out for the width rich gives it at render time.

    Every line is cut to that width (names and states in the middle), never wrapped,
    so a narrow window shows less rather than garbage.
    """

    def __init__(
        self, snapshot: Snapshot, *, eta: float | None, show_excluded: bool, max_nodes: int
    ) -> None:
        self.snapshot = snapshot
        self.eta = eta
        self.show_excluded = show_excluded
        self.max_nodes = max_nodes

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        yield from self._headline(width)
        yield from _image_rows(self.snapshot, width)
        yield from _node_rows(self.snapshot.slowest[: self.max_nodes], width)
        yield from _excluded_rows(self.snapshot, width, show=self.show_excluded)

    def _headline(self, width: int) -> Iterator[Any]:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        snap = self.snapshot
        finished = snap.done >= snap.total
        counts = f"{snap.done}/{snap.total} nodes · {duration_text(snap.elapsed)}"
        if not finished:
            counts += f" · ETA {'--' if self.eta is None else duration_text(self.eta)}"
        text = _line(counts, width, style="bold green" if finished else "bold")
        bar = ProgressBar(total=snap.total or 1, completed=snap.done if snap.total else 1)
        room = width - len(counts) - 2
        grid = Table.grid(padding=(0, 2))
        if room < _MIN_BAR:  # too narrow for both: the bar gets a line of its own
            bar.width = width
            grid.add_row(bar)
            grid.add_row(text)
        else:
            bar.width = min(room, _MAX_BAR)
            grid.add_row(bar, text)
        yield grid


def _printable(text: str) -> str:
    """One line of plain text: runtime messages can carry newlines, tabs or escape codes."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def _line(plain: str, width: int, *, style: str = "") -> Text:
    from rich.text import Text

    text = Text(plain, style=style, no_wrap=True, overflow="ellipsis")
    text.truncate(width, overflow="ellipsis")
    return text


def _columns(cells: Sequence[str], widths: Sequence[int], *, right: Sequence[bool]) -> str:
    return "  ".join(
        cell.rjust(w) if r else cell.ljust(w)
        for cell, w, r in zip(cells, widths, right, strict=True)
    ).rstrip()


def _image_rows(snapshot: Snapshot, width: int) -> Iterator[Text]:
    from rich.filesize import decimal

    shown, hidden = _unfinished_first(snapshot.images, limit=_MAX_IMAGES)
    lines = _by_group(shown, snapshot.groups)
    if not lines:
        return
    counts = [f"{line.have}/{line.targets}" for line in lines]
    sizes = [decimal(line.pulled_bytes) if line.pulled_bytes else "" for line in lines]
    flights = [f"{line.pulling} pulling" if line.pulling else "" for line in lines]
    count_w = max(map(len, counts))
    indent = "    " if snapshot.groups else "  "  # under a group's heading, one step further
    optional = [(sizes, max(map(len, sizes))), (flights, max(map(len, flights)))]
    optional = [(cells, w) for cells, w in optional if w]
    # Drop the size and in-flight columns, last first, before a name gets hard to recognise.
    while optional and _name_room(width - len(indent), count_w, optional) < 16:
        optional.pop()
    room = _name_room(width - len(indent), count_w, optional)
    name_w = max(1, min(max(len(line.name) for line in lines), room))
    group = None
    for i, line in enumerate(lines):
        if snapshot.groups and line.group != group:
            group = line.group
            yield _line(f"  {group or '(no group)'}", width, style="bold")
        cells = [fit(line.name, name_w), counts[i], *(col[i] for col, _ in optional)]
        widths = [name_w, count_w, *(w for _, w in optional)]
        plain = indent + _columns(cells, widths, right=[False, True, True, False][: len(cells)])
        yield _line(plain, width, style=_image_style(line))
    if hidden:
        finished = sum(1 for line in hidden if _finished(line))
        summary = f"  and {len(hidden)} more images, {finished} of them on every target"
        yield _line(summary, width, style="dim")


def _unfinished_first(
    lines: Sequence[ImageLine], *, limit: int
) -> tuple[Sequence[ImageLine], Sequence[ImageLine]]:
    """At most `limit` lines, the summary included: unfinished images first, in their order."""
    if len(lines) <= limit:
        return lines, ()
    ranked = sorted(range(len(lines)), key=lambda i: (_finished(lines[i]), i))
    keep = set(ranked[: limit - 1])
    return (
        [line for i, line in enumerate(lines) if i in keep],
        [line for i, line in enumerate(lines) if i not in keep],
    )


def _finished(line: ImageLine) -> bool:
    return line.have >= line.targets


def _name_room(width: int, count_w: int, optional: Sequence[tuple[list[str], int]]) -> int:
    return width - (count_w + 2) - sum(w + 2 for _, w in optional)


def _by_group(lines: Sequence[ImageLine], groups: Sequence[str]) -> list[ImageLine]:
    if not groups:
        return list(lines)
    order = {name: i for i, name in enumerate(groups)}
    return sorted(lines, key=lambda line: order.get(line.group, len(order)))


def _image_style(line: ImageLine) -> str:
    return "green" if line.targets and _finished(line) else ""


def _node_rows(nodes: Sequence[SlowNode], width: int) -> Iterator[Text]:
    if not nodes:
        return
    yield _line("  slowest / failing nodes", width, style="dim")
    states = [_printable(node.state) for node in nodes]
    times = [duration_text(node.for_seconds) for node in nodes]
    time_w = max(map(len, times))
    room = width - 4 - (time_w + 2) - 2  # indent and mark, the time, the gap before the state
    name_w = min(max(len(node.name) for node in nodes), max(6, room * 2 // 5))
    state_w = max(1, min(room - name_w, max(map(len, states))))
    for node, state, took in zip(nodes, states, times, strict=True):
        mark = "✗" if node.failing else "·"
        # Go wraps errors outside in, so a runtime message ends with its root cause ("...:
        # not found"): keep both ends, as for names.
        state = fit(state, state_w)
        plain = f"  {mark} " + _columns(
            [fit(node.name, name_w), state, took],
            [name_w, state_w, time_w],
            right=[False, False, True],
        )
        yield _line(plain, width, style="red" if node.failing else "yellow")


def _excluded_rows(snapshot: Snapshot, width: int, *, show: bool) -> Iterator[Text]:
    total = snapshot.excluded_total
    if not total:
        return
    yield _line(f"  excluded: {total} node{'s' if total != 1 else ''}", width, style="dim")
    if not show:
        return
    count_w = len(str(snapshot.excluded[0][1]))
    for reason, count in snapshot.excluded[:_MAX_REASONS]:
        yield _line(f"    {count:>{count_w}}  {_printable(reason)}", width, style="dim")
    if len(snapshot.excluded) > _MAX_REASONS:
        rest = len(snapshot.excluded) - _MAX_REASONS
        yield _line(f"    and {rest} more reason{'s' if rest != 1 else ''}", width, style="dim")


def render_once(
    snapshot: Snapshot,
    *,
    console: Console,
    eta: float | None = None,
    show_excluded: bool = False,
    max_nodes: int = 5,
) -> None:
    """Draw one frame on `console`, as a refresh would; for benchmarks and one-off output."""
    console.print(Screen(snapshot, eta=eta, show_excluded=show_excluded, max_nodes=max_nodes))

"""The live view drawn by the real CLI against the simulated cluster, in a pseudo-terminal read
back through pyte's screen; and no view at all when the output is a pipe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pexpect
import pyte

from tests.conftest import ROOT, cli_command, cli_env

APP = "quay.io/org/app:1"


def screen_of(
    kubeconfig: Path, *args: str, columns: int = 100, rows: int = 30, term: str = "xterm-256color"
) -> list[str]:
    """Run `image-awaiter await ARGS` in a pseudo-terminal; the screen's lines at the end."""
    command = cli_command(["await", "--kubeconfig", str(kubeconfig), *args])
    env = {k: v for k, v in cli_env().items() if k not in {"COLUMNS", "LINES", "NO_COLOR"}}
    child = pexpect.spawn(
        command[0],
        command[1:],
        cwd=str(ROOT),
        env={**env, "TERM": term},
        dimensions=(rows, columns),
        timeout=90,
    )
    child.expect(pexpect.EOF)
    child.close()
    screen = pyte.Screen(columns, rows)
    pyte.ByteStream(screen).feed(child.before)
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    screen_of.exitstatus = child.exitstatus  # type: ignore[attr-defined]
    return lines


def test_a_terminal_shows_one_view_with_nodes_done_image_bytes_and_exclusions(
    sim: Any, kubeconfig: Path
) -> None:
    sim.registry.add(APP, size_bytes=734_003_200, platforms=("linux/amd64",))
    for name in ("a", "b"):
        sim.add_node(name)
    sim.add_node("arm", arch="arm64")
    lines = screen_of(kubeconfig, "--image", APP, "--interval", "200ms")
    assert screen_of.exitstatus == 0, "\n".join(lines)  # type: ignore[attr-defined]
    text = "\n".join(lines)
    assert text.count("nodes ·") == 1, text  # redrawn in place, never scrolled
    [headline] = [line for line in lines if "nodes ·" in line]
    assert "━" in headline and "2/2 nodes" in headline
    [image] = [line for line in lines if line.lstrip().startswith(APP)]
    assert image.split()[1:] == ["2/2", "1.5", "GB"]  # two pulls of 734 MB, from Pulled events
    assert "excluded: 1 node" in text
    assert '"event"' not in text  # no JSON lines on a terminal


def test_the_final_line_of_a_failure_stands_below_the_view(sim: Any, kubeconfig: Path) -> None:
    sim.registry.add(APP, missing=True)
    sim.add_node("a")
    lines = screen_of(kubeconfig, "--image", APP, "--interval", "200ms")
    assert screen_of.exitstatus == 4, "\n".join(lines)  # type: ignore[attr-defined]
    [final] = [i for i, line in enumerate(lines) if line.startswith("image-awaiter: ")]
    assert lines[final].startswith("image-awaiter: image quay.io/org/app:1 cannot be pulled")
    assert lines[-1].endswith("or push the image"), lines  # the message, wrapped, comes last
    body = "\n".join(lines[:final])
    assert "0/1 nodes" in body and "✗ a" in body, "\n".join(lines)


def test_a_pipe_gets_json_lines_and_no_view(sim: Any, run_cli: Any) -> None:
    sim.registry.add(APP)
    sim.add_node("a")
    result = run_cli("await", "--image", APP, "--log-format", "auto", "--interval", "200ms")
    assert result.code == 0, result.output
    assert "\x1b" not in result.stderr and "nodes ·" not in result.stderr
    assert all(line.startswith("{") for line in result.stderr.splitlines() if line.strip())
    assert '"event": "run.succeeded"' in result.stderr


def test_no_progress_on_a_terminal_keeps_the_log_lines(sim: Any, kubeconfig: Path) -> None:
    sim.registry.add(APP)
    sim.add_node("a")
    lines = screen_of(kubeconfig, "--image", APP, "--interval", "200ms", "--no-progress")
    text = "\n".join(lines)
    assert "nodes ·" not in text and "run.succeeded" in text, text


def test_a_dumb_terminal_gets_log_lines_not_a_view(sim: Any, kubeconfig: Path) -> None:
    sim.registry.add(APP)
    sim.add_node("a")
    lines = screen_of(kubeconfig, "--image", APP, "--interval", "200ms", term="dumb")
    text = "\n".join(lines)
    assert "nodes ·" not in text and "━" not in text and "run.succeeded" in text, text


def test_ctrl_c_during_the_view_cleans_up_and_ends_below_it(sim: Any, kubeconfig: Path) -> None:
    sim.registry.add(APP, pull_seconds=4000.0)  # 200 s at the fixture's time scale
    sim.add_node("a")
    command = cli_command(["await", "--kubeconfig", str(kubeconfig), "--image", APP])
    child = pexpect.spawn(
        command[0],
        command[1:],
        cwd=str(ROOT),
        env={**cli_env(), "TERM": "xterm-256color"},
        dimensions=(30, 100),
        timeout=90,
    )
    child.expect("0/1 nodes")  # the view is up
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    screen = pyte.Screen(100, 30)
    pyte.ByteStream(screen).feed(child.before)
    lines = [line.rstrip() for line in screen.display if line.strip()]
    assert lines[-1].startswith("image-awaiter: interrupted"), lines
    assert sim.objects("daemonsets", "default") == []

"""The command line in-process: usage errors are one line and exit 2 through the one exit
function, `finish`; the environment is read once into Settings."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from image_awaiter.cli.commands import cli, main
from image_awaiter.cli.ending import Ending, default_termination_log, finish


def run_main(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with pytest.raises(SystemExit) as leaving:
        main(list(argv), err=err)
    code = leaving.value.code
    assert isinstance(code, int)
    return code, err.getvalue()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["await", "--interval", "soon"], "invalid duration 'soon'"),
        (["await", "--on-timeout", "maybe"], "'maybe' is not one of 'fail', 'succeed'"),
        (["await", "--no-such-option"], "No such option '--no-such-option'"),
        (["wait"], "No such command 'wait'"),
        (["await", "--timeout", "5M"], "invalid duration '5M'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv: list[str], expected: str) -> None:
    code, err = run_main(*argv)
    assert code == 2
    [line] = err.splitlines()
    assert line.startswith("image-awaiter: ") and expected in line
    assert line.endswith("; see image-awaiter --help"), "the `; what to do` half"


def test_a_bad_toleration_is_a_usage_error_before_anything_connects() -> None:
    code, err = run_main("await", "--image", "busybox", "--toleration", "gpu:Sometimes")
    assert code == 2
    assert err.startswith("image-awaiter: invalid --toleration 'gpu:Sometimes'")


def test_help_and_version_exit_zero_without_a_final_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_main("--version") == (0, "")
    assert "image-awaiter" in capsys.readouterr().out


def test_the_commands_return_their_ending_in_process() -> None:
    result = CliRunner().invoke(
        cli, ["await", "--image", "busybox", "--interval", "0"], standalone_mode=False
    )
    assert result.exception is None, result.output
    assert result.return_value == Ending(
        2, "--interval must be greater than zero; use a positive duration such as 2s", None
    )


def test_finish_writes_the_termination_log_on_success_but_prints_nothing(tmp_path: Path) -> None:
    err = io.StringIO()
    target = tmp_path / "termination-log"
    with pytest.raises(SystemExit) as leaving:
        finish(Ending(0, "all 3 target nodes have the 1 image", str(target)), err=err)
    assert leaving.value.code == 0 and err.getvalue() == ""
    assert target.read_text() == "image-awaiter: all 3 target nodes have the 1 image\n"


def test_the_termination_log_defaults_to_the_kubelets_file_only_in_a_pod() -> None:
    assert default_termination_log({}) is None
    assert default_termination_log({"KUBECONFIG": "/k", "KUBERNETES_SERVICE_HOST": "h"}) is None
    in_pod = default_termination_log({"POD_NAME": "hook-abc"})
    assert in_pod == ("/dev/termination-log" if Path("/dev/termination-log").is_file() else None)

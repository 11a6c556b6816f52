"""The one exit path seen from outside: the final line also lands in the termination message
file (what `kubectl describe` of a hook pod shows), and an awaiter running in its own namespace
never asks to read that namespace (the chart grants no such access)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.helpers import assert_clean_failure

BUSYBOX = "busybox:1.36"
BROKEN = "quay.io/org/broken:1"


def _namespace_reads(sim: Any) -> list[Any]:
    return [r for r in sim.requests if r.path == "/api/v1/namespaces/default"]


def test_a_pull_failure_writes_the_same_line_to_the_termination_log_as_to_stderr(
    sim: Any, run_cli: Any, tmp_path: Path
) -> None:
    sim.add_node("a")
    sim.fail_pull(BROKEN, reason="InvalidImageName", message="invalid reference format")
    termination_log = tmp_path / "termination-log"
    result = run_cli(
        "await",
        "--image",
        BROKEN,
        "--interval",
        "200ms",
        env={"IMAGE_AWAITER_TERMINATION_LOG": str(termination_log)},
    )
    assert result.code == 4, result.output
    assert_clean_failure(result)
    written = termination_log.read_text()
    assert written == result.last_line + "\n"
    assert BROKEN in written and "node a" in written and "InvalidImageName" in written


def test_a_usage_error_is_written_to_the_termination_log_given_as_an_option(
    sim: Any, run_cli: Any, tmp_path: Path
) -> None:
    termination_log = tmp_path / "message"
    result = run_cli(
        "await", "--image", "Not A/Reference", "--termination-log", str(termination_log)
    )
    assert result.code == 2, result.output
    assert termination_log.read_text() == result.last_line + "\n"
    assert "invalid image reference" in result.last_line


def test_success_is_written_to_the_termination_log_too_and_stderr_stays_quiet(
    sim: Any, run_cli: Any, tmp_path: Path
) -> None:
    sim.add_node("a", images=(BUSYBOX,))
    termination_log = tmp_path / "message"
    result = run_cli("await", "--image", BUSYBOX, "--termination-log", str(termination_log))
    assert result.code == 0, result.output
    assert termination_log.read_text() == "image-awaiter: the 1 target node has the 1 image\n"
    assert "image-awaiter: " not in result.stderr


def test_an_unwritable_termination_log_is_logged_and_the_exit_code_kept(
    sim: Any, run_cli: Any, tmp_path: Path
) -> None:
    sim.add_node("a", images=(BUSYBOX,))
    unwritable = tmp_path / "no-such-dir" / "message"
    result = run_cli("await", "--image", BUSYBOX, "--termination-log", str(unwritable))
    assert result.code == 0, result.output
    assert "termination_log.unwritable" in result.stderr
    assert "Traceback" not in result.output


def test_an_await_in_its_own_pod_namespace_never_reads_the_namespace(
    sim: Any, run_cli: Any
) -> None:
    sim.add_node("a")
    result = run_cli(
        "await", "--image", BUSYBOX, "--interval", "200ms", env={"POD_NAMESPACE": "default"}
    )
    assert result.code == 0, result.output
    assert [r for r in sim.requests if r.method == "POST"], "the puller was never created"
    assert _namespace_reads(sim) == []


def test_an_await_elsewhere_still_checks_that_the_namespace_exists(sim: Any, run_cli: Any) -> None:
    sim.add_node("a")
    result = run_cli(
        "await", "--image", BUSYBOX, "--interval", "200ms", env={"POD_NAMESPACE": "hub"}
    )
    assert result.code == 0, result.output
    assert len(_namespace_reads(sim)) == 1


# CRI-O relays a registry's errors one per line: cri-o/cri-o#2331 (crictl pull, 2019-05-03),
# "Error reading manifest latest in docker.io/crio/busybox: errors:\ndenied: ...\nunauthorized:
# ...", here for a private quay.io repository as issue 19 quotes it.
CRIO_DENIED = (
    "rpc error: code = Unknown desc = Error reading manifest 1 in quay.io/org/private: errors:\n"
    "denied: requested access to the resource is denied\n"
    "unauthorized: authentication required\n"
)


def test_a_runtimes_multi_line_error_stays_one_line_on_stderr_and_in_the_termination_log(
    sim: Any, run_cli: Any, tmp_path: Path
) -> None:
    sim.add_node("a", runtime="cri-o")
    sim.fail_pull("quay.io/org/private:1", reason="ErrImagePull", message=CRIO_DENIED)
    termination_log = tmp_path / "termination-log"
    result = run_cli(
        "await",
        "--image",
        "quay.io/org/private:1",
        "--interval",
        "200ms",
        env={"IMAGE_AWAITER_TERMINATION_LOG": str(termination_log)},
    )
    assert result.code == 4, result.output
    written = termination_log.read_text()
    assert written.count("\n") == 1 and written == result.last_line + "\n"
    final = [line for line in result.stderr.splitlines() if "image-awaiter: " in line]
    assert final == [result.last_line]
    assert (
        "Error reading manifest 1 in quay.io/org/private: errors: denied: requested access to "
        "the resource is denied, unauthorized: authentication required; "
    ) in result.last_line
    assert result.report is not None and result.report["message"] == result.last_line.removeprefix(
        "image-awaiter: "
    )

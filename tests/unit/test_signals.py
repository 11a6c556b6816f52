"""SIGINT/SIGTERM handling of a run: interrupting at once, or held back while a thread starts."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from image_awaiter.core.errors import ExitCode, Interrupted
from image_awaiter.run.signals import SignalGuard


def _busy() -> None:
    """Run some bytecode, the points where Python runs signal handlers."""
    total = 0
    for number in range(100_000):
        total += number


def test_a_signal_interrupts_the_run_at_once() -> None:
    with SignalGuard(), pytest.raises(Interrupted) as caught:
        os.kill(os.getpid(), signal.SIGINT)
        _busy()
        pytest.fail("the signal did not interrupt")
    assert caught.value.exit_code is ExitCode.SIGINT


def test_a_signal_while_a_thread_starts_is_held_back_until_it_has_started() -> None:
    """Regression: SIGINT landing inside Thread.start left a half-started thread behind (a
    traceback from its bootstrap) and sometimes exit 1 instead of 130."""
    started = threading.Event()
    with SignalGuard() as signals, pytest.raises(Interrupted) as caught:
        with signals.held():
            os.kill(os.getpid(), signal.SIGTERM)
            _busy()
            thread = threading.Thread(target=started.set, daemon=True)
            thread.start()
        pytest.fail("the held signal was not raised after the block")
    assert started.wait(5)
    assert caught.value.exit_code is ExitCode.SIGTERM


def test_a_signal_during_cleanup_is_only_recorded() -> None:
    with SignalGuard() as signals:
        signals.defer()
        os.kill(os.getpid(), signal.SIGTERM)
        _busy()
        with signals.held():
            _busy()
    assert signals.deferred == "SIGTERM"


def test_no_except_exception_on_the_way_can_swallow_a_signal() -> None:
    """Regression: SIGTERM landing inside the POST of an Event on the awaiter's own pod was
    caught by that request's `except AwaiterError` and dropped; the run went on until the
    kubelet's SIGKILL (exit 137). A library's `except Exception` is the same trap."""
    swallowed = []
    with SignalGuard(), pytest.raises(Interrupted) as caught:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            _busy()
        except Exception as error:  # what the awaiter and its libraries do
            swallowed.append(error)
        pytest.fail("the signal did not get past `except Exception`")
    assert swallowed == []
    assert caught.value.exit_code is ExitCode.SIGTERM

"""SIGINT/SIGTERM handling of a run: interrupting at once, or held back while a thread starts."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from image_awaiter.errors import ExitCode, Interrupted
from image_awaiter.signals import SignalGuard


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

"""The control plane's processes: each in its own process group, its output in a log file,
killed by the kernel if the Python process that started it dies (PR_SET_PDEATHSIG), and
stopped with SIGTERM, then SIGKILL after a grace period."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _dies_with(parent: int) -> Callable[[], None]:
    """A preexec_fn: the child gets SIGKILL when the thread that started it exits, and exits at
    once if the parent is already gone (it died between fork and prctl)."""

    def arm() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return arm


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def rss_bytes(self) -> int:
        """Resident memory now, from /proc (0 once the process is gone)."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self, *, grace: float = 5.0) -> None:
        """SIGTERM to the process group, SIGKILL after `grace` seconds, then reap."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
            if not self.alive():
                break
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # anything left in its group
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait()


def spawn(
    *, name: str, argv: Sequence[str], logs: Path, env: dict[str, str] | None = None
) -> Process:
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_dies_with(os.getpid()),
            env=env,
        )
    return Process(name, popen, log)


def wait_until(
    condition: Callable[[], bool], *, timeout: float, what: str, poll: float = 0.1
) -> float:
    """Poll `condition` until it holds; the seconds it took. TimeoutError naming `what`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        time.sleep(poll)
    return time.monotonic() - started

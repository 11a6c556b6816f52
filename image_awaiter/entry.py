"""The console entry point: signal handlers first, then the (heavier) CLI, then a fast exit.

Before the CLI is imported, lean.py trims the third-party imports a run never uses (issue 13:
start-up is what every `helm upgrade` pays when nothing needs pulling).

Until the await loop installs its own handlers, SIGINT and SIGTERM exit at once with 130 and
143: nothing has been created yet, and a KeyboardInterrupt traceback would help nobody. At the
end, atexit handlers run (the client removes its temporary certificate files) and the process
leaves without tearing down every module and object: on a 5,000-node cluster that teardown took
about 0.2 s of the time between the last node becoming ready and the exit Helm waits for.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from types import FrameType


def _exit_early(signum: int, _: FrameType | None) -> None:
    if signum == signal.SIGTERM and sys.argv[1:2] == ["gate"]:
        sys.exit(0)  # how Kubernetes stops the gate's pod, even while it starts: a normal end
    sys.exit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGINT, _exit_early)
    signal.signal(signal.SIGTERM, _exit_early)
    from image_awaiter import lean

    lean.install()
    from image_awaiter.cli.commands import main as cli_main

    try:
        cli_main()
    except SystemExit as leaving:
        code = leaving.code
    else:  # pragma: no cover - cli_main always exits
        code = 0
    if not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)

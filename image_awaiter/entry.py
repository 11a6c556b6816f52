"""The console entry point: signal handlers first, then the (heavier) CLI.

Until the await loop installs its own handlers, SIGINT and SIGTERM exit at once with 130 and
143: nothing has been created yet, and a KeyboardInterrupt traceback would help nobody.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _exit_early(signum: int, _: FrameType | None) -> None:
    sys.exit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGINT, _exit_early)
    signal.signal(signal.SIGTERM, _exit_early)
    from image_awaiter.cli import main as cli_main

    cli_main()

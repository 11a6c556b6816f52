"""Run a command and print its wall time, CPU time and peak RSS as one JSON line.

A small intermediary on purpose: on Linux a child's ru_maxrss starts from its parent's RSS at
fork time, so a command forked straight from a benchmark that holds a 5,000-node simulated
cluster would report that cluster's memory. Forked from this small process, it does not.

Usage: python benchmarks/measure.py COMMAND [ARGS...]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    started = time.monotonic()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    print(
        json.dumps(
            {
                "exit_code": os.waitstatus_to_exitcode(status),
                "wall_s": round(wall, 3),
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
                "user_s": round(usage.ru_utime, 3),
                "system_s": round(usage.ru_stime, 3),
                "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
                "stderr_tail": stderr.decode(errors="replace")[-400:],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

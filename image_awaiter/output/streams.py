"""Where a run writes: the report and the plan on `out` (unless written to a file), the live
view, logs and the final line on `err`. Injected, so that tests read what a run wrote."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True, slots=True)
class Streams:
    out: TextIO
    err: TextIO

    @classmethod
    def standard(cls) -> Streams:
        """The process's own, as they are now (a test may have replaced them)."""
        return cls(out=sys.stdout, err=sys.stderr)

"""`await --dry-run`: the plan (each group's targets and what they lack; a table on a terminal)
and, with `-o FORMAT`, the DaemonSets `await` would create now."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from image_awaiter.core.combined import GroupEvaluation, plan_text
from image_awaiter.output.formats import OUTPUT_FORMATS, Documents


def write_plan(
    groups: Sequence[GroupEvaluation],
    *,
    text: TextIO,
    bodies: Documents = (),
    output: str | None = None,
    documents: TextIO | None = None,
) -> None:
    """The plan on `text`; `bodies` in the format named `output` on `documents`, when there
    are any (nothing lacking: nothing would be created)."""
    text.write(plan_text(groups, table=text.isatty()))
    text.flush()
    if output is None or documents is None or not bodies:
        return
    documents.write(OUTPUT_FORMATS[output](bodies))
    documents.flush()

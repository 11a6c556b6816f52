"""`await --dry-run`: the plan (each group's targets and what they lack; a table on a terminal,
`plan_text`, pure) and, with `-o FORMAT`, the DaemonSets `await` would create now."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from image_awaiter.core.combined import GroupEvaluation
from image_awaiter.core.readiness import NodeStatus
from image_awaiter.core.wording import counted
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


def plan_text(groups: Sequence[GroupEvaluation], *, table: bool) -> str:
    """What a `--dry-run` found: per group its images and target nodes, and what each node
    lacks. `table`: aligned columns for a terminal; otherwise one plain line per fact."""
    rows: list[tuple[str, str, str, str]] = []
    lines: list[str] = []
    for group in groups:
        evaluation = group.evaluation
        images = ", ".join(i.original for i in group.images)
        lacking = [v for v in evaluation.verdicts if v.status is not NodeStatus.DONE]
        lines.append(
            f"group {group.name}: {counted(len(group.images), 'image')} ({images}); "
            f"{counted(len(evaluation.verdicts), 'target node')}, {len(lacking)} lacking images, "
            f"{len(evaluation.excluded)} excluded"
        )
        for verdict in evaluation.verdicts:
            lacks = ", ".join(verdict.missing) if verdict.missing else "-"
            if verdict.status is not NodeStatus.DONE:
                lines.append(f"  node {verdict.node} lacks {lacks}")
            rows.append((group.name, verdict.node, "target", lacks))
        for node, reason in sorted(evaluation.excluded.items()):
            rows.append((group.name, node, "excluded", reason))
    if not table:
        return "\n".join(lines) + "\n"
    header = ("GROUP", "NODE", "ROLE", "LACKS / REASON")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    return (
        "\n".join(
            "  ".join([*(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)), row[3]])
            for row in [header, *rows]
        )
        + "\n"
    )

"""The final JSON report and the progress lines: pure functions from an `Evaluation`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from image_awaiter.readiness import Evaluation, NodeStatus, NodeVerdict
from image_awaiter.references import ImageRef

REPORT_VERSION = 1


def summary(evaluation: Evaluation) -> dict[str, int]:
    counts = {status.value: evaluation.count(status) for status in NodeStatus}
    return {"targets": len(evaluation.verdicts), **counts, "excluded": len(evaluation.excluded)}


def progress_fields(evaluation: Evaluation, *, limit: int = 3) -> dict[str, Any]:
    """What a progress line says: counts, and where images are still pulling or stuck."""
    waiting = [v for v in evaluation.verdicts if v.status is not NodeStatus.DONE]
    fields: dict[str, Any] = {
        "done": f"{evaluation.count(NodeStatus.DONE)}/{len(evaluation.verdicts)}",
        "pulling": evaluation.count(NodeStatus.PULLING),
    }
    for status in (NodeStatus.MISSING, NodeStatus.UNSCHEDULABLE, NodeStatus.FAILED):
        if evaluation.count(status):
            fields[status.value] = evaluation.count(status)
    if evaluation.excluded:
        fields["excluded"] = len(evaluation.excluded)
    if waiting:
        fields["waiting_on"] = "; ".join(_short(v) for v in waiting[:limit]) + (
            f"; +{len(waiting) - limit} more" if len(waiting) > limit else ""
        )
    return fields


def _short(verdict: NodeVerdict) -> str:
    return f"{verdict.node}: {verdict.detail or verdict.status.value}"


def not_done_lines(evaluation: Evaluation, *, limit: int = 3) -> str:
    waiting = [v for v in evaluation.verdicts if v.status is not NodeStatus.DONE]
    text = "; ".join(_short(v) for v in waiting[:limit])
    return text + (f"; and {len(waiting) - limit} more" if len(waiting) > limit else "")


def build_report(
    *,
    command: str,
    result: str,
    exit_code: int,
    message: str,
    images: Sequence[ImageRef],
    namespace: str,
    evaluation: Evaluation | None,
    done_after: Mapping[str, float],
    daemonset: Mapping[str, Any] | None,
    started_at: str,
    finished_at: str,
    duration: float,
) -> dict[str, Any]:
    """The `--report` document (its fields are documented in README.md)."""
    nodes: list[dict[str, Any]] = []
    excluded: list[dict[str, str]] = []
    if evaluation is not None:
        for verdict in evaluation.verdicts:
            node: dict[str, Any] = {"name": verdict.node, "status": verdict.status.value}
            if verdict.missing:
                node["missing"] = list(verdict.missing)
            if verdict.failures:
                node["failures"] = [
                    {"image": f.image, "reason": f.reason, "message": f.message}
                    for f in verdict.failures
                ]
            if verdict.detail:
                node["detail"] = verdict.detail
            if verdict.node in done_after:
                node["doneAfterSeconds"] = round(done_after[verdict.node], 3)
            nodes.append(node)
        excluded = [{"name": n, "reason": r} for n, r in sorted(evaluation.excluded.items())]
    return {
        "version": REPORT_VERSION,
        "command": command,
        "result": result,
        "exitCode": exit_code,
        "message": message,
        "namespace": namespace,
        "images": [{"reference": i.original, "normalized": i.canonical} for i in images],
        "daemonset": dict(daemonset) if daemonset else None,
        "startedAt": started_at,
        "finishedAt": finished_at,
        "durationSeconds": round(duration, 3),
        "summary": summary(evaluation) if evaluation is not None else None,
        "nodes": nodes,
        "excluded": excluded,
    }

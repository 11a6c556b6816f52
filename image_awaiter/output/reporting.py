"""The final JSON report and the progress lines: pure functions of an `Outcome` (which says
what the run was, `RunRecord`, and how it ended) and of an `Evaluation`, and `write_report`,
the one place the report is written."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import structlog

from image_awaiter.core.outcomes import GroupOutcome, Outcome, RunRecord, short_verdict
from image_awaiter.core.pullfacts import NodeImageFact, PullFacts, summarise, with_listed
from image_awaiter.core.readiness import Evaluation, NodeStatus, PullFailure
from image_awaiter.core.references import ImageRef
from image_awaiter.output.formats import json_text

log = structlog.get_logger("image_awaiter")

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
        fields["waiting_on"] = "; ".join(short_verdict(v) for v in waiting[:limit]) + (
            f"; +{len(waiting) - limit} more" if len(waiting) > limit else ""
        )
    return fields


def build_report(outcome: Outcome) -> dict[str, Any]:
    """The `--report` document (its fields are documented in README.md), from the outcome
    alone: its `record` says what the run was (the run sets it once it has ended)."""
    record = outcome.record or RunRecord(command="", namespace="")
    evaluation = outcome.evaluation
    return {
        "version": REPORT_VERSION,
        "command": record.command,
        "result": outcome.result.value,
        "exitCode": int(outcome.exit_code),
        "message": outcome.message,
        "namespace": record.namespace,
        "images": [{"reference": i.original, "normalized": i.canonical} for i in record.images],
        "daemonset": dict(outcome.daemonset) if outcome.daemonset else None,
        "startedAt": record.started_at,
        "finishedAt": record.finished_at,
        "durationSeconds": record.seconds,
        "summary": summary(evaluation) if evaluation is not None else None,
        **_judged(outcome, record.images),
        "pulls": _pulls(_facts(outcome, record.images), record.images, evaluation),
        "pullMethod": (
            {"method": outcome.pull_method.method, "reason": outcome.pull_method.reason}
            if outcome.pull_method is not None
            else None
        ),
        "groups": [_group(group, outcome) for group in outcome.groups],
        "skipped": [
            {
                "kind": s.kind,
                "name": s.name,
                **({"key": s.key} if s.key else {}),
                "images": list(s.images),
                "reason": s.reason,
                "source": s.source,
            }
            for s in record.skipped
        ],
    }


def _judged(outcome: Outcome, images: Sequence[ImageRef]) -> dict[str, list[dict[str, Any]]]:
    """The report's `nodes`, `excluded` and `platformExcluded`, from the last evaluation."""
    evaluation, done_after = outcome.evaluation, outcome.done_after
    facts = _facts(outcome, images)
    if evaluation is None:
        return {"nodes": [], "excluded": [], "platformExcluded": []}
    nodes: list[dict[str, Any]] = []
    for verdict in evaluation.verdicts:
        node: dict[str, Any] = {"name": verdict.node, "status": verdict.status.value}
        if verdict.missing:
            node["missing"] = list(verdict.missing)
        if verdict.failures:
            node["failures"] = [_failure(f) for f in verdict.failures]
        if verdict.detail:
            node["detail"] = verdict.detail
        if verdict.node in done_after:
            node["doneAfterSeconds"] = round(done_after[verdict.node], 3)
        if pulls := facts.for_node(verdict.node, images):
            done = verdict.status is NodeStatus.DONE
            node["pulls"] = [_fact(fact, done=done) for fact in pulls]
        nodes.append(node)
    return {
        "nodes": nodes,
        "excluded": [{"name": n, "reason": r} for n, r in sorted(evaluation.excluded.items())],
        "platformExcluded": [
            {"node": node, "image": e.image, "reason": e.reason, "message": e.message}
            for (node, _), e in sorted(evaluation.platform_excluded.items())
        ],
    }


def _group(group: GroupOutcome, outcome: Outcome) -> dict[str, Any]:
    """One pull group: its images, workloads and DaemonSet, and its own `summary`, `nodes` and
    `excluded`, built as the report's top-level ones are, from the group's evaluation."""
    evaluation = group.evaluation
    return {
        "name": group.name,
        "images": [{"reference": i.original, "normalized": i.canonical} for i in group.images],
        "workloads": list(group.workloads),
        "daemonset": dict(group.daemonset) if group.daemonset else None,
        "summary": summary(evaluation) if evaluation is not None else None,
        **_judged(dataclasses.replace(outcome, evaluation=evaluation), group.images),
    }


def _fact(fact: NodeImageFact, *, done: bool) -> dict[str, Any]:
    """A node that is done has the image, whatever an earlier event said: when its `Pulled`
    event never came, the pod's status is the proof, without figures."""
    entry = fact.to_report()
    if done and fact.state in ("failed", "pulling"):
        kept = {k: v for k, v in entry.items() if k in ("image", "failedAttempts")}
        return {**kept, "state": "pulled", "source": "container-status"}
    return entry


def _failure(failure: PullFailure) -> dict[str, str]:
    entry = {"image": failure.image, "reason": failure.reason, "message": failure.message}
    if failure.kind:
        entry |= {
            "errorClass": failure.error_class,
            "errorKind": failure.kind,
            "advice": failure.advice,
        }
    return entry


def _facts(outcome: Outcome, images: Sequence[ImageRef]) -> PullFacts:
    """What the kubelets' events said, and the images each node's own status listed when the
    run began (present there, event or not)."""
    return with_listed(outcome.pull_facts, outcome.listed_at_start, images)


def _pulls(
    facts: PullFacts, images: Sequence[ImageRef], evaluation: Evaluation | None
) -> dict[str, Any]:
    """Per image and for the run, from the kubelets' events and the nodes' own statuses; for
    the nodes still targets (facts of nodes that left or were excluded are not counted)."""
    targets = {v.node for v in evaluation.verdicts} if evaluation is not None else set()
    kept = PullFacts({pair: f for pair, f in facts.facts.items() if pair[0] in targets})
    return summarise(kept, images)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def write_report(outcome: Outcome, *, destination: str, stdout: TextIO) -> None:
    """The report of `outcome`, as JSON, to a file, or `stdout` for `-`; a failure is logged,
    never fatal."""
    text = json_text(build_report(outcome))
    try:
        if destination == "-":
            stdout.write(text)
            stdout.flush()
        else:
            Path(destination).write_text(text, encoding="utf-8")
    except OSError as error:
        log.error("report.unwritable", path=destination, error=str(error))

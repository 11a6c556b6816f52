"""The final JSON report and the progress lines: pure functions of an `Outcome` and an
`Evaluation`, and `write_report`, the one place the report is written."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from image_awaiter.core.outcomes import GroupOutcome, Outcome, short_verdict
from image_awaiter.core.pullfacts import NodeImageFact, PullFacts, summarise
from image_awaiter.core.readiness import Evaluation, NodeStatus, PullFailure
from image_awaiter.core.references import ImageRef

if TYPE_CHECKING:  # a type only: manifests are imported to read --from-manifests
    from image_awaiter.spec.manifests import Skipped

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


def build_report(
    outcome: Outcome,
    *,
    command: str,
    images: Sequence[ImageRef],
    namespace: str,
    started: tuple[str, float],
    skipped: Sequence[Skipped] = (),
) -> dict[str, Any]:
    """The `--report` document (its fields are documented in README.md); `started` is the
    wall-clock ISO time and the monotonic time the run began; `skipped`, the custom resources
    whose images `--from-manifests` did not await."""
    started_at, started_monotonic = started
    evaluation, done_after, facts = outcome.evaluation, outcome.done_after, outcome.pull_facts
    nodes: list[dict[str, Any]] = []
    excluded: list[dict[str, str]] = []
    platform: list[dict[str, str]] = []
    if evaluation is not None:
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
            if facts is not None and (pulls := facts.for_node(verdict.node, images)):
                done = verdict.status is NodeStatus.DONE
                node["pulls"] = [_fact(fact, done=done) for fact in pulls]
            nodes.append(node)
        excluded = [{"name": n, "reason": r} for n, r in sorted(evaluation.excluded.items())]
        platform = [
            {"node": node, "image": e.image, "reason": e.reason, "message": e.message}
            for (node, _), e in sorted(evaluation.platform_excluded.items())
        ]
    return {
        "version": REPORT_VERSION,
        "command": command,
        "result": outcome.result.value,
        "exitCode": int(outcome.exit_code),
        "message": outcome.message,
        "namespace": namespace,
        "images": [{"reference": i.original, "normalized": i.canonical} for i in images],
        "daemonset": dict(outcome.daemonset) if outcome.daemonset else None,
        "startedAt": started_at,
        "finishedAt": now_iso(),
        "durationSeconds": round(time.monotonic() - started_monotonic, 3),
        "summary": summary(evaluation) if evaluation is not None else None,
        "nodes": nodes,
        "excluded": excluded,
        "platformExcluded": platform,
        "pulls": _pulls(facts, images, evaluation),
        "groups": [
            _group(group, outcome, command=command, namespace=namespace, started=started)
            for group in outcome.groups
        ],
        "skipped": [
            {
                "kind": s.kind,
                "name": s.name,
                **({"key": s.key} if s.key else {}),
                "images": list(s.images),
                "reason": s.reason,
                "source": s.source,
            }
            for s in skipped
        ],
    }


def _group(
    group: GroupOutcome,
    outcome: Outcome,
    *,
    command: str,
    namespace: str,
    started: tuple[str, float],
) -> dict[str, Any]:
    """One pull group: its images, workloads and DaemonSet, and its own `summary`, `nodes` and
    `excluded`, built as the report's top-level ones are, from the group's evaluation."""
    alone = dataclasses.replace(outcome, evaluation=group.evaluation, groups=())
    own = build_report(
        alone, command=command, images=group.images, namespace=namespace, started=started
    )
    return {
        "name": group.name,
        "images": own["images"],
        "workloads": list(group.workloads),
        "daemonset": dict(group.daemonset) if group.daemonset else None,
        **{key: own[key] for key in ("summary", "nodes", "excluded", "platformExcluded")},
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


def _pulls(
    facts: PullFacts | None, images: Sequence[ImageRef], evaluation: Evaluation | None
) -> dict[str, Any] | None:
    """Per image and for the run, from the kubelets' events; for the nodes still targets
    (facts of nodes that left or were excluded are not counted)."""
    if facts is None:
        return None
    targets = {v.node for v in evaluation.verdicts} if evaluation is not None else set()
    kept = PullFacts({pair: f for pair, f in facts.facts.items() if pair[0] in targets})
    return summarise(kept, images)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def write_report(report: dict[str, Any], *, destination: str) -> None:
    """Write the report to a file, or stdout for `-`; a failure is logged, never fatal."""
    text = json.dumps(report, indent=2) + "\n"
    try:
        if destination == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            Path(destination).write_text(text, encoding="utf-8")
    except OSError as error:
        log.error("report.unwritable", path=destination, error=str(error))

"""The report is built from the outcome alone: what the run was comes from its `RunRecord`,
how it ended from the outcome, each group's part from its `GroupOutcome`."""

from __future__ import annotations

import io
import json

from image_awaiter.core.errors import ExitCode
from image_awaiter.core.outcomes import GroupOutcome, Outcome, Result, RunRecord, Skipped
from image_awaiter.core.readiness import Evaluation, NodeStatus, NodeVerdict
from image_awaiter.core.references import parse_image
from image_awaiter.output.reporting import build_report, write_report

IMAGE = parse_image("busybox:1.36")
EVALUATION = Evaluation(
    verdicts=(NodeVerdict("n1", NodeStatus.DONE), NodeVerdict("n2", NodeStatus.MISSING, ("x",))),
    excluded={"n3": "node not Ready"},
    failing_since={},
)
RECORD = RunRecord(
    command="check",
    namespace="ns",
    images=(IMAGE,),
    skipped=(Skipped("Notebook", "nb", ("jupyter:1",), "app.yaml"),),
    started_at="2026-01-01T00:00:00Z",
    finished_at="2026-01-01T00:00:02Z",
    seconds=2.0,
)
OUTCOME = Outcome(
    ExitCode.IMAGES_MISSING,
    Result.MISSING,
    "images missing",
    EVALUATION,
    groups=(GroupOutcome("gpu", (IMAGE,), ("Deployment/a",), EVALUATION, None),),
    record=RECORD,
)


def test_the_report_says_what_the_run_was_from_its_record():
    report = build_report(OUTCOME)
    assert {k: report[k] for k in ("command", "namespace", "startedAt", "finishedAt")} == {
        "command": "check",
        "namespace": "ns",
        "startedAt": "2026-01-01T00:00:00Z",
        "finishedAt": "2026-01-01T00:00:02Z",
    }
    assert report["durationSeconds"] == 2.0
    assert report["images"] == [
        {"reference": "busybox:1.36", "normalized": "docker.io/library/busybox:1.36"}
    ]
    assert report["skipped"] == [
        {
            "kind": "Notebook",
            "name": "nb",
            "images": ["jupyter:1"],
            "reason": "a custom resource: its images are not awaited",
            "source": "app.yaml",
        }
    ]


def test_each_group_has_the_top_level_keys_judged_from_its_own_evaluation():
    (group,) = build_report(OUTCOME)["groups"]
    assert list(group) == [
        "name",
        "images",
        "workloads",
        "daemonset",
        "summary",
        "nodes",
        "excluded",
        "platformExcluded",
    ]
    assert group["nodes"] == [
        {"name": "n1", "status": "done"},
        {"name": "n2", "status": "missing", "missing": ["x"]},
    ]
    assert group["excluded"] == [{"name": "n3", "reason": "node not Ready"}]


def test_the_report_to_dash_goes_to_the_given_stream():
    out = io.StringIO()
    write_report(OUTCOME, destination="-", stdout=out)
    assert json.loads(out.getvalue())["result"] == "missing"

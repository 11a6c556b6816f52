"""Logs a log system can index: every event of a run carries its run id, command and
namespace, bound once."""

from __future__ import annotations

import json
from typing import Any


def test_every_event_of_a_run_carries_run_id_command_and_namespace(sim: Any, run_cli: Any) -> None:
    sim.add_node("a")
    result = run_cli("await", "--image", "busybox:1.36", "--interval", "200ms")
    assert result.code == 0, result.output
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    names = {event["event"] for event in events}
    assert {"run.started", "daemonset.created", "node.done", "run.succeeded"} <= names
    run_ids = {event.get("run_id") for event in events}
    assert len(run_ids) == 1 and None not in run_ids
    assert all(e.get("command") == "await" and e.get("namespace") == "default" for e in events)

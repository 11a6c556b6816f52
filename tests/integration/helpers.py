"""Small readers of the simulated cluster's state shared by the integration tests."""

from __future__ import annotations

from typing import Any

MANAGED = "app.kubernetes.io/managed-by"


def writes(sim: Any) -> list[Any]:
    """Requests that could change the cluster."""
    return [r for r in sim.requests if r.method not in ("GET", "HEAD")]


def our_daemonsets(sim: Any, namespace: str = "default") -> list[dict[str, Any]]:
    return [
        d
        for d in sim.objects("daemonsets", namespace)
        if (d["metadata"].get("labels") or {}).get(MANAGED) == "image-awaiter"
    ]


def created_daemonset_bodies(sim: Any) -> list[dict[str, Any]]:
    return [d for d in sim.objects("daemonsets", "default")]


def node_report(result: Any, name: str) -> dict[str, Any]:
    assert result.report is not None, result.output
    for node in result.report["nodes"]:
        if node["name"] == name:
            return dict(node)
    raise AssertionError(f"node {name} not in report: {result.report['nodes']}")


def excluded(result: Any) -> dict[str, str]:
    assert result.report is not None, result.output
    return {e["name"]: e["reason"] for e in result.report["excluded"]}


def assert_clean_failure(result: Any) -> None:
    """One clear line, no traceback."""
    assert "Traceback" not in result.output, result.output
    assert result.last_line.startswith("image-awaiter: "), result.stderr

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


# JupyterHub's pools, as z2jh's docs lay them out (tests/integration/test_applications.py).
PURPOSE = "hub.jupyter.org/node-purpose"
USER_TAINT = {"key": "hub.jupyter.org/dedicated", "value": "user", "effect": "NoSchedule"}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def jupyterhub_pools(sim: Any) -> dict[str, set[str]]:
    """Core nodes (untainted, as z2jh's `prefer` default lets user pods use them), a CPU user
    pool and an arm64 user pool (z2jh's user taint), a GPU pool (only the GPU taint)."""
    user = {PURPOSE: "user"}
    return {
        "core": set(sim.add_node_pool("core", 2, labels={PURPOSE: "core"})),
        "cpu": set(sim.add_node_pool("cpu", 2, labels=user, taints=[USER_TAINT])),
        "arm": set(sim.add_node_pool("arm", 1, labels=user, taints=[USER_TAINT], arch="arm64")),
        "gpu": set(
            sim.add_node_pool(
                "gpu", 2, labels={**user, "nvidia.com/gpu.present": "true"}, taints=[GPU_TAINT]
            )
        ),
    }


def planned_nodes(report: dict[str, Any]) -> dict[str, set[str]]:
    """Each image's planned nodes: the union of the target nodes of every group awaiting it."""
    nodes: dict[str, set[str]] = {}
    for group in report["groups"]:
        targets = {n["name"] for n in group["nodes"]}
        for image in group["images"]:
            nodes.setdefault(image["reference"], set()).update(targets)
    return nodes

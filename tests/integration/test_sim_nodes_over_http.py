"""SimCluster's nodes are the HTTP kubelets (simcluster.nodes.kubelet), the same ones that serve
the real control plane: they reach the simulated API server only over HTTP, with their own
token, and the server treats them as any client (issue 17 item 4)."""

from __future__ import annotations

from typing import Any

from simcluster import SimCluster
from simcluster.cluster import DEFAULT_TOKEN, KUBELET_TOKEN

LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
PAUSE = "registry.k8s.io/pause:3.10"


def _pod(name: str, node: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "labels": {"sim/run": "1"}},
        "spec": {"nodeName": node, "containers": [{"name": "pause", "image": PAUSE}]},
    }


def _phase(sim: SimCluster, name: str) -> str:
    pod = sim.store.get("pods", name, "default") or {}
    return str((pod.get("status") or {}).get("phase") or "")


def test_a_node_is_registered_by_its_kubelet_over_http_with_a_token_of_its_own(
    sim: SimCluster,
) -> None:
    sim.add_node("n")
    registered = [(r.method, r.path) for r in sim.kubelet_requests]
    assert ("POST", "/api/v1/nodes") in registered
    assert ("PATCH", "/api/v1/nodes/n/status") in registered
    assert ("POST", LEASES) in registered
    [created] = [e for e in sim.audit.entries if e.verb == "create" and e.resource == "nodes"]
    assert created.user_agent.startswith("kubelet/v1.36.3 ")
    assert sim.store.get("leases", "n", "kube-node-lease") is not None
    assert sim.token_uses[KUBELET_TOKEN] >= 3
    assert sim.token_uses[DEFAULT_TOKEN] == 0  # not the admin's: tests rotate that one
    assert not [r for r in sim.requests if r.path.startswith("/api/v1/nodes")]


def test_revoking_every_client_token_leaves_the_kubelets_working(sim: SimCluster) -> None:
    sim.tokens.clear()
    sim.add_node("n")
    sim.create("pods", _pod("p", "n"), "default")
    assert sim.wait_for(lambda s: _phase(s, "p") == "Running")
    assert sim.kubelets is not None and sim.kubelets.errors == []


def test_a_node_reporting_not_ready_starts_no_pod_until_it_is_ready_again(
    sim: SimCluster,
) -> None:
    sim.add_node("n", ready=False)
    [ready] = [
        c for c in sim.store.get("nodes", "n")["status"]["conditions"] if c["type"] == "Ready"
    ]
    assert (ready["status"], ready["reason"]) == ("False", "KubeletNotReady")
    sim.create("pods", _pod("p", "n"), "default")
    assert not sim.wait_for(lambda s: _phase(s, "p") != "", timeout=1.0)
    sim.set_node_ready("n", True)
    assert sim.node_ready("n")
    assert sim.wait_for(lambda s: _phase(s, "p") == "Running")
    sim.set_node_ready("n", False)
    sim.create("pods", _pod("q", "n"), "default")
    assert not sim.wait_for(lambda s: _phase(s, "q") != "", timeout=1.0)
    assert _phase(sim, "p") == "Running"  # what ran goes on being reported as it was


def test_a_removed_node_loses_its_kubelet_and_its_lease(sim: SimCluster) -> None:
    sim.add_node("n")
    sim.remove_node("n")
    assert sim.store.get("nodes", "n") is None
    assert sim.store.get("leases", "n", "kube-node-lease") is None
    assert "n" not in sim.node_sims


def test_stopping_twice_is_harmless(sim: SimCluster) -> None:
    sim.add_node("n")
    sim.stop()
    sim.stop()
    assert sim.kubelets is not None and sim.kubelets.errors == []

"""The simulated API server's list semantics at scale: synthetic nodes served page by page, the
watch cache's rv=0 behaviour, the WatchList refusal, and request counting by where a request is
served from."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from image_awaiter.core.errors import InvalidObject
from image_awaiter.core.references import parse_image
from image_awaiter.kube.client import Kube, ReadTimeout
from image_awaiter.kube.connecting import connect
from image_awaiter.kube.nodecodec import NodeCodec
from image_awaiter.kube.podcodec import PodCodec
from image_awaiter.kube.resources import NODES, PODS
from image_awaiter.kube.watching import Informer, WatchTiming
from simcluster.apiserver.listing import request_counts
from simcluster.nodes.factory import COMMON_IMAGE

WANTED = frozenset({parse_image(COMMON_IMAGE).key})


@pytest.fixture
def kube(sim: Any, kubeconfig: Path) -> Kube:
    return Kube(connect(kubeconfig=str(kubeconfig), context=None, namespace=None).client)


def test_synthetic_nodes_are_served_page_by_page_with_the_stored_ones(sim: Any, kube: Kube) -> None:
    sim.serve_synthetic_nodes(7)
    sim.add_node("stored")
    first = kube.request("GET", NODES.address(), query={"limit": 5})
    rest = kube.request(
        "GET", NODES.address(), query={"limit": 5, "continue": first["metadata"]["continue"]}
    )
    names = [n["metadata"]["name"] for n in first["items"] + rest["items"]]
    assert names == [f"node-{i:05d}" for i in range(7)] + ["stored"]
    node = first["items"][0]
    assert len(node["metadata"]["labels"]) == 13
    assert node["spec"]["taints"][0]["key"] == "hub.jupyter.org/dedicated"
    assert len(node["status"]["images"]) == 50


def test_a_list_at_resource_version_0_ignores_limit_like_the_watch_cache(
    sim: Any, kube: Kube
) -> None:
    sim.serve_synthetic_nodes(12)
    cached = kube.request("GET", NODES.address(), query={"limit": 5, "resourceVersion": "0"})
    assert len(cached["items"]) == 12 and not cached["metadata"].get("continue")
    quorum = kube.request("GET", NODES.address(), query={"limit": 5})
    assert len(quorum["items"]) == 5
    assert request_counts(r for r in sim.requests if r.path == "/api/v1/nodes") == {
        "cache list": 1,
        "quorum list page": 1,
    }


def test_a_server_without_watch_list_refuses_it_with_the_real_status(sim: Any, kube: Kube) -> None:
    sim.watch_list = False
    query = {"watch": "true", "sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"}
    with pytest.raises(InvalidObject) as refused:
        list(kube.stream(NODES.address(), query=query, read_timeout=ReadTimeout(5)))
    assert refused.value.status == 422
    assert (
        'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: sendInitialEvents'
        " is forbidden for watch unless the WatchList feature gate is enabled"
    ) in str(refused.value)


def test_a_streaming_list_of_synthetic_nodes_decodes_every_node(sim: Any, kube: Kube) -> None:
    sim.serve_synthetic_nodes(300)
    informer = Informer(
        kube=kube,
        address=NODES.address(),
        codec=NodeCodec(wanted=WANTED, label_keys=frozenset({"hub.jupyter.org/node-purpose"})),
        timing=WatchTiming(watch_seconds=30, read_timeout=10),
    )
    nodes = informer.list_once()
    assert len(nodes) == 300
    assert all(node.images == WANTED and node.ready for node in nodes.values())
    assert request_counts(sim.requests) == {"streaming list": 1}


def test_every_daemonset_has_a_completed_puller_on_every_synthetic_node(
    sim: Any, kube: Kube
) -> None:
    sim.serve_synthetic_nodes(4)
    sim.create(
        "daemonsets",
        {
            "metadata": {"name": "pull", "labels": {"run": "r1"}},
            "spec": {
                "selector": {"matchLabels": {"run": "r1"}},
                "template": {
                    "metadata": {"labels": {"run": "r1"}},
                    "spec": {
                        "initContainers": [{"name": "i0", "image": COMMON_IMAGE}],
                        "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}],
                    },
                },
            },
        },
        namespace="default",
    )
    informer = Informer(
        kube=kube,
        address=PODS.address(namespace="default"),
        codec=PodCodec(),
        label_selector="run=r1",
    )
    pods = informer.list_once()
    synthetic = {k: p for k, p in pods.items() if p.node and p.node.startswith("node-")}
    assert len(synthetic) == 4
    assert all(p.images[next(iter(WANTED))].state.value == "pulled" for p in synthetic.values())


@pytest.mark.parametrize(
    ("watch_list", "node_requests"),
    [
        (True, {"streaming list": 1}),
        (False, {"streaming list": 1, "quorum list page": 1}),  # refused, then one page
    ],
)
def test_check_reads_nodes_streaming_or_in_pages_where_the_server_refuses(
    sim: Any, run_cli: Any, watch_list: bool, node_requests: dict[str, int]
) -> None:
    sim.watch_list = watch_list
    sim.registry.add(COMMON_IMAGE)
    sim.add_node("a", images=[COMMON_IMAGE])
    result = run_cli("check", "--image", COMMON_IMAGE)
    assert result.code == 0, result.output
    assert request_counts(r for r in sim.requests if r.path == "/api/v1/nodes") == node_requests


def test_check_reads_pages_when_a_streaming_list_never_ends(sim: Any, run_cli: Any) -> None:
    """A server (or proxy) that accepts `sendInitialEvents=true` and streams the nodes but never
    sends the initial-events-end bookmark: `check` reads pages after the 10 s wait instead of
    retrying the same watch until its timeout (issue 19)."""
    sim.initial_events_end = False
    sim.registry.add(COMMON_IMAGE)
    sim.add_node("a", images=[COMMON_IMAGE])
    started = time.monotonic()
    result = run_cli("check", "--image", COMMON_IMAGE, "--timeout", "60s", timeout=90)
    assert result.code == 0, result.output
    assert 10 <= time.monotonic() - started < 10 + 8
    node_requests = request_counts(r for r in sim.requests if r.path == "/api/v1/nodes")
    assert node_requests == {"streaming list": 1, "quorum list page": 1}
    assert "watch.list_unended" in result.stderr

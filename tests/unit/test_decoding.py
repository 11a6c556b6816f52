"""Codecs: nodes and puller pods decode from list pages and watch events alike."""

from __future__ import annotations

import json
from typing import Any

import pytest

from image_awaiter.core.placement import Taint
from image_awaiter.core.references import parse_image
from image_awaiter.core.targeting import NodeState
from image_awaiter.kube.decoding import JsonCodec, UidCodec
from image_awaiter.kube.nodecodec import NodeCodec
from image_awaiter.kube.podcodec import EventCodec, PodCodec

WANTED = frozenset({parse_image("nginx:1.7.9").key})
NODE: dict[str, Any] = {
    "metadata": {
        "name": "n1",
        "resourceVersion": "42",
        "labels": {"zone": "a"},
        "annotations": {"x": "y" * 100},
    },
    "spec": {"unschedulable": True, "taints": [{"key": "k", "effect": "NoSchedule"}]},
    "status": {
        "capacity": {"cpu": "4"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        "images": [
            {"names": ["nginx:1.7.9", "nginx@sha256:" + "a" * 64], "sizeBytes": 1},
            {"sizeBytes": 2},
        ],
        "nodeInfo": {"kubeletVersion": "v1.33.0"},
    },
}


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (
            NODE,
            NodeState(
                name="n1",
                ready=True,
                unschedulable=True,
                taints=(Taint(key="k", effect="NoSchedule"),),
                labels={"zone": "a"},
                images=frozenset({parse_image("nginx:1.7.9").key}),
            ),
        ),
        ({"metadata": {"name": "bare"}}, NodeState(name="bare", ready=False)),
        (
            {
                "metadata": {"name": "nulls", "labels": None},
                "spec": {"taints": None},
                "status": {"images": None},
            },
            NodeState(name="nulls", ready=False),
        ),
    ],
)
def test_list_pages_and_watch_events_decode_nodes_alike(
    node: dict[str, Any], expected: NodeState
) -> None:
    page = json.dumps(
        {"kind": "NodeList", "metadata": {"resourceVersion": "7", "continue": "c"}, "items": [node]}
    ).encode()
    decoded = NodeCodec(wanted=WANTED).page(page)
    assert decoded.resource_version == "7" and decoded.continue_token == "c"
    [(key, state)] = decoded.items
    assert key == node["metadata"]["name"]
    assert state == expected
    event = NodeCodec(wanted=WANTED).event(json.dumps({"type": "ADDED", "object": node}).encode())
    assert event.record == expected


def test_node_events_decode_including_deletions_bookmarks_and_errors() -> None:
    codec = NodeCodec(wanted=WANTED)
    added = codec.event(json.dumps({"type": "ADDED", "object": NODE}).encode())
    assert added.key == "n1" and added.resource_version == "42"
    assert added.record is not None and added.record.images == WANTED
    deleted = codec.event(json.dumps({"type": "DELETED", "object": NODE}).encode())
    assert deleted.record is None and deleted.key == "n1"
    bookmark = codec.event(
        b'{"type":"BOOKMARK","object":{"kind":"Node","metadata":{"resourceVersion":"99"}}}'
    )
    assert bookmark.type == "BOOKMARK" and bookmark.resource_version == "99"
    error = codec.event(
        b'{"type":"ERROR","object":{"kind":"Status","code":410,'
        b'"message":"too old resource version"}}'
    )
    assert error.type == "ERROR" and error.status is not None and error.status["code"] == 410


# What an API server sends when a watch's resourceVersion was compacted away: a Status whose
# `status` is the string "Failure" (seen in jaegertracing/jaeger-operator#103: "map[code:410
# kind:Status apiVersion:v1 metadata:map[] status:Failure message:... reason:Expired]").
EXPIRED = (
    b'{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},'
    b'"status":"Failure","message":"too old resource version: 227 (231)",'
    b'"reason":"Expired","code":410}}'
)


@pytest.mark.parametrize(
    "codec",
    [NodeCodec(wanted=WANTED), PodCodec(), UidCodec(), EventCodec(pod_prefix="puller-")],
    ids=["nodes", "pods", "daemonsets", "events"],
)
def test_a_real_410_status_decodes_as_an_error_event(codec: Any) -> None:
    """Regression (chaos seed 2033): the node decoder read the Status as a node, refused its
    string `status`, and the nodes watch restarted from the expired version forever instead
    of relisting."""
    error = codec.event(EXPIRED)
    assert error.type == "ERROR" and error.status["code"] == 410
    assert error.status["reason"] == "Expired"


def test_a_node_event_that_is_not_an_error_still_fails_to_decode() -> None:
    with pytest.raises(ValueError):
        NodeCodec(wanted=WANTED).event(b'{"type":"ADDED","object":{"status":"Failure"}}')
    with pytest.raises(ValueError):
        NodeCodec(wanted=WANTED).event(b'{"type":"ADDED",')


@pytest.mark.parametrize("garbage", [b"{not json", b'{"items": 5}', b'{"items": [{"spec": 1}]}'])
def test_undecodable_node_pages_raise_value_error(garbage: bytes) -> None:
    with pytest.raises(ValueError):
        NodeCodec(wanted=WANTED).page(garbage)


def test_json_codec_keys_namespaced_objects_by_namespace_and_name() -> None:
    codec = JsonCodec(lambda raw: raw["metadata"]["name"].upper())
    page = codec.page(
        b'{"metadata":{"resourceVersion":"3"},"items":[{"metadata":{"name":"p","namespace":"ns"}}]}'
    )
    assert page.items == [("ns/p", "P")] and page.continue_token == ""
    event = codec.event(
        b'{"type":"MODIFIED","object":{"metadata":{"name":"p","namespace":'
        b'"ns","resourceVersion":"5"}}}'
    )
    assert (event.key, event.record, event.resource_version) == ("ns/p", "P", "5")


def test_puller_pods_with_equal_pull_states_share_one_map() -> None:
    from image_awaiter.kube.podcodec import PodCodec

    def pod(node: str) -> dict[str, Any]:
        return {
            "metadata": {"name": f"puller-{node}", "namespace": "ns", "resourceVersion": "1"},
            "spec": {
                "nodeName": node,
                "initContainers": [{"name": "i0", "image": "nginx:1.7.9"}],
                "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}],
            },
            "status": {
                "initContainerStatuses": [
                    {"name": "i0", "imageID": "sha256:1", "state": {"terminated": {}}}
                ]
            },
        }

    page = json.dumps({"metadata": {}, "items": [pod("a"), pod("b")]}).encode()
    [(key_a, a), (_, b)] = PodCodec().page(page).items
    assert key_a == "ns/puller-a"
    assert a is not None and b is not None
    assert (a.node, b.node) == ("a", "b")
    assert a.images[parse_image("nginx:1.7.9").key].state.value == "pulled"
    assert a.images is b.images


@pytest.mark.parametrize("codec_name", ["node", "pod", "uid", "json"])
def test_events_decoded_from_a_view_of_a_reused_buffer_keep_nothing_of_it(codec_name: str) -> None:
    """Watch lines are views of the read buffer (chunked.py), rewritten by the next read: a
    record, key or resourceVersion that referred to it would change under the store."""
    from image_awaiter.kube.decoding import UidCodec
    from image_awaiter.kube.podcodec import PodCodec

    pod = {
        "metadata": {"name": "p", "namespace": "ns", "resourceVersion": "7", "uid": "u1"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx:1.7.9"}]},
        "status": {"containerStatuses": [{"name": "c", "imageID": "sha256:1"}]},
    }
    codec: Any = {
        "node": NodeCodec(wanted=WANTED),
        "pod": PodCodec(),
        "uid": UidCodec(),
        "json": JsonCodec(lambda raw: raw["metadata"]),
    }[codec_name]
    line = json.dumps({"type": "ADDED", "object": NODE if codec_name == "node" else pod}).encode()
    buffer = bytearray(line)
    from_view = codec.event(memoryview(buffer))
    buffer[:] = b" " * len(buffer)  # the next read
    from_bytes = codec.event(line)
    assert from_view == from_bytes
    assert from_view.record is not None

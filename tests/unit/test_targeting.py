"""Which nodes are targets: readiness, cordons, taints, nodeSelector, required affinity."""

from __future__ import annotations

import json
from typing import Any

import pytest

from image_awaiter.core.errors import UsageError
from image_awaiter.core.placement import Placement, Taint
from image_awaiter.core.references import ImageKey, parse_image
from image_awaiter.core.targeting import (
    NodeState,
    exclusion_reason,
    label_keys,
    placement_from_pod_spec,
    split_targets,
)
from image_awaiter.kube.nodecodec import NodeCodec


def node_from_json(raw: dict[str, Any], *, wanted: frozenset[ImageKey]) -> NodeState:
    """A node as the nodes cache keeps it: decoded from a watch event by the real codec."""
    event = NodeCodec(wanted=wanted).event(json.dumps({"type": "ADDED", "object": raw}).encode())
    assert event.record is not None
    return event.record


def node(name: str = "n", **kwargs: Any) -> NodeState:
    kwargs.setdefault("ready", True)
    return NodeState(name=name, **kwargs)


def reason(
    node_: NodeState, pod_spec: dict[str, Any] | None = None, include_cordoned: bool = False
) -> str | None:
    placement = placement_from_pod_spec(pod_spec or {})
    return exclusion_reason(node_, placement, include_cordoned=include_cordoned)


def test_a_ready_plain_node_is_a_target() -> None:
    assert reason(node()) is None


def test_a_not_ready_node_is_excluded() -> None:
    assert reason(node(ready=False)) == "node not Ready"


def test_a_cordoned_node_is_excluded_unless_cordoned_nodes_are_included() -> None:
    cordoned = node(
        unschedulable=True, taints=(Taint("node.kubernetes.io/unschedulable", "", "NoSchedule"),)
    )
    assert "cordoned" in (reason(cordoned) or "")
    assert reason(cordoned, include_cordoned=True) is None


TAINT_CASES = [
    # taint, tolerations, excluded?
    (Taint("dedicated", "core", "NoSchedule"), [], True),
    (Taint("dedicated", "core", "NoExecute"), [], True),
    (Taint("dedicated", "core", "PreferNoSchedule"), [], False),
    (
        Taint("dedicated", "core", "NoSchedule"),
        [{"key": "dedicated", "operator": "Equal", "value": "core", "effect": "NoSchedule"}],
        False,
    ),
    (
        Taint("dedicated", "core", "NoSchedule"),
        [{"key": "dedicated", "value": "core"}],
        False,
    ),  # default operator Equal, any effect
    (
        Taint("dedicated", "core", "NoSchedule"),
        [{"key": "dedicated", "operator": "Equal", "value": "other"}],
        True,
    ),
    (Taint("dedicated", "core", "NoSchedule"), [{"key": "dedicated", "operator": "Exists"}], False),
    (
        Taint("dedicated", "core", "NoExecute"),
        [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        True,
    ),
    (Taint("gpu", "", "NoSchedule"), [{"operator": "Exists"}], False),  # tolerates everything
    (Taint("gpu", "", "NoSchedule"), [{"operator": "Exists", "effect": "NoExecute"}], True),
    (Taint("node.kubernetes.io/disk-pressure", "", "NoSchedule"), [], False),  # DS default
]


@pytest.mark.parametrize(("taint", "tolerations", "excluded"), TAINT_CASES)
def test_taints_must_be_tolerated_by_the_puller_pod(
    taint: Taint, tolerations: list[dict[str, Any]], excluded: bool
) -> None:
    result = reason(node(taints=(taint,)), {"tolerations": tolerations})
    assert (result is not None) is excluded
    if excluded:
        assert str(taint) in (result or "")


def test_node_selector_must_match_labels() -> None:
    linux = node(labels={"kubernetes.io/os": "linux"})
    windows = node(labels={"kubernetes.io/os": "windows"})
    spec = {"nodeSelector": {"kubernetes.io/os": "linux"}}
    assert reason(linux, spec) is None
    assert reason(windows, spec) == "nodeSelector kubernetes.io/os=linux does not match"
    assert reason(node(), spec) is not None


def affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
            }
        }
    }


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


AFFINITY_CASES = [
    (expr("pool", "In", "a", "b"), {"pool": "a"}, True),
    (expr("pool", "In", "a", "b"), {"pool": "c"}, False),
    (expr("pool", "In", "a"), {}, False),
    (expr("pool", "NotIn", "a"), {"pool": "b"}, True),
    (expr("pool", "NotIn", "a"), {}, True),
    (expr("pool", "NotIn", "a"), {"pool": "a"}, False),
    (expr("gpu", "Exists"), {"gpu": ""}, True),
    (expr("gpu", "Exists"), {}, False),
    (expr("gpu", "DoesNotExist"), {}, True),
    (expr("gpu", "DoesNotExist"), {"gpu": "x"}, False),
    (expr("cores", "Gt", "16"), {"cores": "64"}, True),
    (expr("cores", "Gt", "16"), {"cores": "16"}, False),
    (expr("cores", "Gt", "16"), {"cores": "many"}, False),
    (expr("cores", "Lt", "16"), {"cores": "8"}, True),
    (expr("cores", "Lt", "16"), {}, False),
]


@pytest.mark.parametrize(("term", "labels", "matches"), AFFINITY_CASES)
def test_required_node_affinity_operators(
    term: dict[str, Any], labels: dict[str, str], matches: bool
) -> None:
    result = reason(node(labels=labels), affinity(term))
    assert (result is None) is matches


def test_match_fields_on_metadata_name() -> None:
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}
    assert reason(node("a"), affinity(term)) is None
    assert reason(node("b"), affinity(term)) == "required node affinity does not match"


def test_affinity_terms_are_ored_and_expressions_within_a_term_anded() -> None:
    both = {
        "matchExpressions": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]
    }
    other = expr("c", "Exists")
    assert reason(node(labels={"a": "1"}), affinity(both, other)) is not None
    assert reason(node(labels={"a": "1", "b": "1"}), affinity(both, other)) is None
    assert reason(node(labels={"c": "1"}), affinity(both, other)) is None


def test_an_empty_term_matches_nothing() -> None:
    assert reason(node(labels={"a": "1"}), affinity({})) is not None


@pytest.mark.parametrize(
    "pod_spec",
    [
        {"nodeSelector": ["not", "a", "map"]},
        {"tolerations": "everything"},
        affinity({"matchExpressions": [{"key": "a", "operator": "Near"}]}),
        affinity({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1", "2"]}]}),
        affinity({"matchExpressions": [{"operator": "Exists"}]}),
    ],
)
def test_malformed_placement_is_a_usage_error(pod_spec: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        placement_from_pod_spec(pod_spec)


def test_split_targets_sorts_targets_and_explains_exclusions() -> None:
    nodes = {"b": node("b"), "a": node("a"), "c": node("c", ready=False)}
    targets, excluded = split_targets(nodes, Placement(), include_cordoned=False)
    assert [n.name for n in targets] == ["a", "b"]
    assert excluded == {"c": "node not Ready"}


def test_node_from_json_keeps_only_what_decisions_need() -> None:
    raw = {
        "metadata": {
            "name": "n1",
            "labels": {"kubernetes.io/os": "linux"},
            "annotations": {"big": "x" * 1000},
        },
        "spec": {
            "unschedulable": True,
            "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}],
        },
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "images": [
                {
                    "names": [
                        "docker.io/library/nginx@sha256:" + "a" * 64,
                        "docker.io/library/nginx:1.7.9",
                    ],
                    "sizeBytes": 1,
                },
                {"names": [f"registry.example.com/other:{i}" for i in range(5)], "sizeBytes": 2},
            ],
        },
    }
    wanted = frozenset({parse_image("nginx:1.7.9").key, parse_image("busybox").key})
    state = node_from_json(raw, wanted=wanted)
    assert state == NodeState(
        name="n1",
        ready=True,
        unschedulable=True,
        taints=(Taint("k", "v", "NoSchedule"),),
        labels={"kubernetes.io/os": "linux"},
        images=frozenset({"docker.io/library/nginx:1.7.9"}),
    )


def test_node_without_a_ready_condition_is_not_ready() -> None:
    state = node_from_json(
        {
            "metadata": {"name": "x"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]},
        },
        wanted=frozenset(),
    )
    assert state.ready is False


def test_a_node_keeps_only_the_labels_its_placement_and_reports_read() -> None:
    placement = placement_from_pod_spec(
        {
            "nodeSelector": {"pool": "user"},
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}
                        ]
                    }
                }
            },
        }
    )
    keys = label_keys([placement])
    assert keys == {"pool", "zone", "kubernetes.io/os", "kubernetes.io/arch"}
    raw = {
        "metadata": {
            "name": "n",
            "labels": {"pool": "user", "zone": "a", "kubernetes.io/os": "linux", "noise": "x"},
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    event = NodeCodec(wanted=frozenset(), label_keys=keys).event(
        json.dumps({"type": "ADDED", "object": raw}).encode()
    )
    assert event.record is not None
    assert event.record.labels == {"pool": "user", "zone": "a", "kubernetes.io/os": "linux"}
    assert exclusion_reason(event.record, placement, include_cordoned=False) is None

"""The one selector-operator implementation and the one pod-image walker, as tables."""

from __future__ import annotations

from typing import Any

import pytest

from image_awaiter.core.errors import UsageError
from image_awaiter.core.pods import pod_images, pod_spec
from image_awaiter.core.selectors import LABEL_OPERATORS, NODE_OPERATORS, Requirement, requirement


@pytest.mark.parametrize(
    ("operator", "values", "value", "matches"),
    [
        ("In", ("a", "b"), "a", True),
        ("In", ("a", "b"), "c", False),
        ("In", ("a",), None, False),
        ("NotIn", ("a",), "b", True),
        ("NotIn", ("a",), None, True),
        ("NotIn", ("a",), "a", False),
        ("Exists", (), "", True),
        ("Exists", (), None, False),
        ("DoesNotExist", (), None, True),
        ("DoesNotExist", (), "x", False),
        ("Gt", ("4",), "8", True),
        ("Gt", ("4",), "4", False),
        ("Lt", ("4",), "3", True),
        ("Lt", ("4",), "x", False),
        ("Gt", ("4",), None, False),
    ],
)
def test_requirement_operators(
    operator: str, values: tuple[str, ...], value: str | None, matches: bool
) -> None:
    assert Requirement(key="k", operator=operator, values=values).matches(value) is matches


def test_label_selectors_refuse_the_node_only_operators() -> None:
    assert {"Gt", "Lt"} == NODE_OPERATORS - LABEL_OPERATORS
    with pytest.raises(UsageError, match="unknown selector operator 'Gt'"):
        requirement(key="k", operator="Gt", values=["1"], allowed=LABEL_OPERATORS)
    with pytest.raises(UsageError, match="exactly one value"):
        requirement(key="k", operator="Lt", values=["1", "2"], allowed=NODE_OPERATORS)
    assert requirement(key="k", operator="In", values=[1, True], allowed=LABEL_OPERATORS) == (
        Requirement(key="k", operator="In", values=("1", "True"))
    )


@pytest.mark.parametrize(
    ("spec", "images"),
    [
        ({}, []),
        ({"containers": [{"name": "c", "image": "b:1"}]}, ["b:1"]),
        (
            {
                "initContainers": [{"name": "i", "image": "a:1"}],
                "containers": [{"name": "c", "image": "b:1"}, {"name": "d", "image": "a:1"}],
                "volumes": [
                    {"name": "v", "image": {"reference": "c:1"}},
                    {"name": "e", "emptyDir": {}},
                ],
            },
            ["a:1", "b:1", "c:1"],
        ),
        (
            {
                "containers": [{"name": "c", "image": "b:1"}],
                "ephemeralContainers": [{"name": "debugger", "image": "busybox:1.36"}],
            },
            ["b:1"],
        ),
    ],
    ids=[
        "empty",
        "one container",
        "init, containers, image volumes, once each in order",
        "not ephemeral containers: no pod starts with them",
    ],
)
def test_the_pod_image_walker(spec: dict[str, Any], images: list[str]) -> None:
    assert pod_images(spec) == images


def test_a_malformed_pod_spec_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="invalid pod template"):
        pod_spec({"containers": "nginx"})

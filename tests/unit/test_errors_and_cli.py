"""Exit codes, CLI option parsing and log redaction."""

from __future__ import annotations

import json

import pytest

from image_awaiter.cli.options import parse_node_selectors, parse_toleration
from image_awaiter.core.errors import ExitCode, Interrupted, UsageError
from image_awaiter.output.logs import redact


def test_exit_codes_are_the_documented_ones() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 130, 143]


@pytest.mark.parametrize(("signal_name", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_interruptions_carry_their_signal_exit_code(signal_name: str, code: int) -> None:
    assert Interrupted(signal_name).exit_code == code


@pytest.mark.parametrize(
    ("text", "toleration"),
    [
        ("*", {"operator": "Exists"}),
        ("gpu:NoSchedule", {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}),
        (
            "dedicated=core:NoExecute",
            {"key": "dedicated", "operator": "Equal", "value": "core", "effect": "NoExecute"},
        ),
        ("gpu", {"key": "gpu", "operator": "Exists"}),
    ],
)
def test_tolerations_parse(text: str, toleration: dict[str, str]) -> None:
    assert parse_toleration(text) == toleration


@pytest.mark.parametrize("text", ["gpu:Sometimes", ":NoSchedule", "=x:NoSchedule"])
def test_bad_tolerations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_toleration(text)


def test_node_selectors_default_to_linux_and_can_be_cleared() -> None:
    assert parse_node_selectors([]) == {"kubernetes.io/os": "linux"}
    assert parse_node_selectors(["-"]) == {}
    assert parse_node_selectors(["a=b", "c="]) == {"a": "b", "c": ""}
    with pytest.raises(UsageError):
        parse_node_selectors(["novalue"])


def test_redaction_removes_tokens_and_bearer_strings() -> None:
    event = {
        "event": "x",
        "token": "abc",
        "authorization": "Bearer abc",
        "error": "sent Bearer s3cr3t.value to server",
        "node": "n",
    }
    cleaned = redact(None, "info", dict(event))
    assert "abc" not in json.dumps(cleaned) and "s3cr3t" not in json.dumps(cleaned)
    assert cleaned["node"] == "n"

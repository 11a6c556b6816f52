"""Exit codes, HTTP error translation, CLI option parsing and log redaction."""

from __future__ import annotations

import json
from typing import Any

import pytest

from image_awaiter.cli import parse_node_selectors, parse_toleration
from image_awaiter.errors import ApiError, ExitCode, Gone, Interrupted, UsageError
from image_awaiter.kube import describe_request, translate
from image_awaiter.logs import redact


def test_exit_codes_are_the_documented_ones() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 130, 143]


@pytest.mark.parametrize(("signal_name", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_interruptions_carry_their_signal_exit_code(signal_name: str, code: int) -> None:
    assert Interrupted(signal_name).code == code


def status(code: int, message: str, **details: Any) -> bytes:
    body: dict[str, Any] = {"kind": "Status", "code": code, "message": message, "reason": "R"}
    if details:
        body["details"] = details
    return json.dumps(body).encode()


def test_401_is_an_api_failure_saying_credentials_were_rejected() -> None:
    error = translate("GET", "/api/v1/nodes", 401, status(401, "Unauthorized"), {})
    assert error.exit_code is ExitCode.API
    assert "unauthorised" in error.one_line() and "credentials" in error.one_line()


def test_403_names_the_verb_resource_and_namespace_to_grant() -> None:
    error = translate(
        "POST",
        "/apis/apps/v1/namespaces/jhub/daemonsets",
        403,
        status(403, 'daemonsets.apps is forbidden: User "x" cannot create'),
        {},
    )
    line = error.one_line()
    assert error.exit_code is ExitCode.API
    assert "forbidden (403): daemonsets.apps is forbidden" in line
    assert "grant verb 'create' on resource 'daemonsets.apps' in namespace 'jhub'" in line


def test_403_on_nodes_says_cluster_wide() -> None:
    error = translate(
        "GET", "/api/v1/nodes", 403, status(403, "nodes is forbidden"), {}, {"limit": 500}
    )
    assert "grant verb 'list' on resource 'nodes' cluster-wide" in error.one_line()


def test_404_of_the_namespace_is_an_api_failure_naming_it() -> None:
    error = translate(
        "GET",
        "/api/v1/namespaces/nope",
        404,
        status(404, 'namespaces "nope" not found', name="nope", kind="namespaces"),
        {},
    )
    assert error.exit_code is ExitCode.API and "'nope' not found" in error.one_line()


def test_410_is_gone_so_the_caller_relists() -> None:
    assert isinstance(translate("GET", "/api/v1/nodes", 410, status(410, "expired"), {}), Gone)


def test_422_is_bad_input() -> None:
    error = translate(
        "POST",
        "/apis/apps/v1/namespaces/d/daemonsets",
        422,
        status(422, "spec.selector: Required value"),
        {},
    )
    assert error.exit_code is ExitCode.USAGE and "invalid" in error.one_line()


def test_other_statuses_are_api_failures_with_the_server_message() -> None:
    error = translate("DELETE", "/apis/apps/v1/namespaces/d/daemonsets/x", 400, b"not json", {})
    assert isinstance(error, ApiError) and error.exit_code is ExitCode.API
    assert "400" in error.one_line()


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/nodes", {}, ("list", "nodes", None)),
        ("GET", "/api/v1/nodes", {"watch": "true"}, ("watch", "nodes", None)),
        ("WATCH", "/api/v1/namespaces/a/pods", {}, ("watch", "pods", "a")),
        ("GET", "/api/v1/namespaces/a/pods/p", {}, ("get", "pods", "a")),
        (
            "DELETE",
            "/apis/apps/v1/namespaces/a/daemonsets/d",
            {},
            ("delete", "daemonsets.apps", "a"),
        ),
        ("GET", "/api/v1/namespaces/a", {}, ("get", "namespaces", None)),
    ],
)
def test_requests_are_described_as_rbac_verbs(
    method: str, path: str, query: dict[str, str], expected: tuple[str, str, str | None]
) -> None:
    assert describe_request(method, path, query) == expected


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

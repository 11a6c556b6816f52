"""Failure responses become typed errors from one table; resources build paths and RBAC hints."""

from __future__ import annotations

import json
from typing import Any

import pytest

from image_awaiter.core.errors import (
    ApiError,
    BadRequest,
    Conflict,
    ExitCode,
    Forbidden,
    Gone,
    InvalidObject,
    NamespaceNotFound,
    NotFound,
    Unauthorized,
)
from image_awaiter.kube.apierrors import translate
from image_awaiter.kube.resources import DAEMONSETS, NAMESPACES, NODES, PODS, Address, Resource

DS_COLLECTION = DAEMONSETS.address(namespace="jhub")


def status(code: int, message: str, **details: Any) -> bytes:
    body: dict[str, Any] = {"kind": "Status", "code": code, "message": message, "reason": "R"}
    if details:
        body["details"] = details
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("code", "kind", "exit_code"),
    [
        (401, Unauthorized, ExitCode.API),
        (403, Forbidden, ExitCode.API),
        (404, NotFound, ExitCode.API),
        (409, Conflict, ExitCode.API),
        (410, Gone, ExitCode.API),
        (422, InvalidObject, ExitCode.USAGE),
        (400, BadRequest, ExitCode.API),
    ],
)
def test_each_failure_status_becomes_its_own_error_class(
    code: int, kind: type[ApiError], exit_code: ExitCode
) -> None:
    error = translate("POST", DS_COLLECTION, code, status(code, "no"))
    assert type(error) is kind
    assert error.exit_code is exit_code and error.status == code


def test_401_is_an_api_failure_saying_credentials_were_rejected() -> None:
    error = translate("GET", NODES.address(), 401, status(401, "Unauthorized"))
    assert "unauthorised" in error.one_line() and "credentials" in error.one_line()


def test_403_names_the_verb_resource_and_namespace_to_grant() -> None:
    message = 'daemonsets.apps is forbidden: User "x" cannot create'
    error = translate("POST", DS_COLLECTION, 403, status(403, message))
    line = error.one_line()
    assert "forbidden (403): daemonsets.apps is forbidden" in line
    assert "grant verb 'create' on resource 'daemonsets.apps' in namespace 'jhub'" in line


def test_403_on_nodes_says_cluster_wide() -> None:
    error = translate("GET", NODES.address(), 403, status(403, "nodes is forbidden"), {"limit": 5})
    assert "grant verb 'list' on resource 'nodes' cluster-wide" in error.one_line()


def test_404_of_the_namespace_is_an_api_failure_naming_it() -> None:
    body = status(404, 'namespaces "nope" not found', name="nope", kind="namespaces")
    error = translate("GET", NAMESPACES.address(name="nope"), 404, body)
    assert isinstance(error, NamespaceNotFound) and isinstance(error, NotFound)
    assert error.exit_code is ExitCode.API and "'nope' not found" in error.one_line()


def test_a_bare_404_is_not_found_but_says_nothing_about_the_namespace() -> None:
    error = translate("GET", PODS.address(namespace="a", name="p"), 404, b"404 page not found")
    assert type(error) is NotFound and "/api/v1/namespaces/a/pods/p" in error.one_line()


def test_other_statuses_are_api_failures_with_the_server_message() -> None:
    address = DAEMONSETS.address(namespace="d", name="x")
    error = translate("DELETE", address, 400, b"not json")
    assert isinstance(error, ApiError) and error.exit_code is ExitCode.API
    assert "400" in error.one_line()


@pytest.mark.parametrize(
    ("address", "path"),
    [
        (NODES.address(), "/api/v1/nodes"),
        (NODES.address(name="n1"), "/api/v1/nodes/n1"),
        (NAMESPACES.address(name="a"), "/api/v1/namespaces/a"),
        (PODS.address(namespace="a"), "/api/v1/namespaces/a/pods"),
        (PODS.address(), "/api/v1/pods"),
        (DAEMONSETS.address(namespace="a", name="d"), "/apis/apps/v1/namespaces/a/daemonsets/d"),
    ],
)
def test_resources_build_their_api_paths(address: Address, path: str) -> None:
    assert address.path == path


def test_a_cluster_scoped_resource_refuses_a_namespace() -> None:
    with pytest.raises(ValueError, match="cluster-scoped"):
        NODES.address(namespace="a")
    assert Resource(group="x.io", version="v1", plural="things", namespaced=False).qualified == (
        "things.x.io"
    )


@pytest.mark.parametrize(
    ("method", "address", "query", "verb"),
    [
        ("GET", NODES.address(), {}, "list"),
        ("GET", NODES.address(), {"watch": "true"}, "watch"),
        ("WATCH", PODS.address(namespace="a"), {}, "watch"),
        ("GET", PODS.address(namespace="a", name="p"), {}, "get"),
        ("DELETE", DAEMONSETS.address(namespace="a", name="d"), {}, "delete"),
        ("POST", DAEMONSETS.address(namespace="a"), {}, "create"),
    ],
)
def test_requests_are_described_as_rbac_verbs(
    method: str, address: Address, query: dict[str, str], verb: str
) -> None:
    assert address.verb(method, query) == verb

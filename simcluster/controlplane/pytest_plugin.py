"""pytest plumbing for the real control plane: one per test run, shared by the xdist workers,
started when a test first uses the `control_plane` fixture (so runs that use none start
nothing), stopped when the run ends; a fresh namespace per test (`namespace`).

Enable with `pytest_plugins = ("simcluster.controlplane.pytest_plugin",)` in the top conftest.
`IMAGE_AWAITER_CONTROL_PLANE_ENDPOINT=path/endpoint.json` uses a control plane already running
(its work directory has the file) instead of starting one. Without built binaries the tests
that use it fail, naming `make control-plane`: they never skip."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simcluster.controlplane.endpoints import Endpoint
from simcluster.controlplane.sharing import Broker, Unavailable, request

SOCKET_KEY = "image_awaiter_control_plane_socket"
ENDPOINT_ENV = "IMAGE_AWAITER_CONTROL_PLANE_ENDPOINT"
MARKER = "real_control_plane"
_broker_key = pytest.StashKey[Broker]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: uses the real control plane (set on every test that does)"
    )
    if hasattr(config, "workerinput") or os.environ.get(ENDPOINT_ENV):
        return  # a worker asks the controller's broker; or one is already running
    directory = Path(tempfile.mkdtemp(prefix="cp-broker-"))
    config.stash[_broker_key] = Broker(socket_path=directory / "broker.sock")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist's controller: tell each worker where the broker listens."""
    broker = node.config.stash.get(_broker_key, None)
    if broker is not None:
        node.workerinput[SOCKET_KEY] = str(broker.socket_path)


def pytest_unconfigure(config: pytest.Config) -> None:
    broker = config.stash.get(_broker_key, None)
    if broker is not None:
        broker.close()
        shutil.rmtree(broker.socket_path.parent, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(MARKER)


def _socket_path(config: pytest.Config) -> Path:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        return Path(workerinput[SOCKET_KEY])
    return config.stash[_broker_key].socket_path


@pytest.fixture(scope="session")
def control_plane(pytestconfig: pytest.Config) -> Endpoint:
    """The run's real control plane: `server`, `kubeconfig` (admin), `admin` (a JSON client),
    `client(token=...)`, `write_kubeconfig(...)`, `identity(...)`, `audit_log`, `version`."""
    existing = os.environ.get(ENDPOINT_ENV)
    if existing:
        return Endpoint.from_json(Path(existing).read_text())
    try:
        return request(_socket_path(pytestconfig))
    except (Unavailable, OSError) as error:
        pytest.fail(f"real control plane unavailable: {error}", pytrace=False)


@pytest.fixture
def namespace(control_plane: Endpoint, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, with its `default` ServiceAccount (pods need it to be
    admitted); deleted after the test."""
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    admin = control_plane.admin
    admin.create("/api/v1/namespaces", {"metadata": {"name": name}})
    admin.wait_for(
        f"/api/v1/namespaces/{name}/serviceaccounts/default",
        what=f"ServiceAccount default in namespace {name}",
    )
    try:
        yield name
    finally:
        admin.request("DELETE", f"/api/v1/namespaces/{name}")

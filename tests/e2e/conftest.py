"""Real-cluster end-to-end tests, through pytest-kubernetes.

They run wherever a cluster can be had: `--k8s-kubeconfig PATH` (or KUBECONFIG /
IMAGE_AWAITER_E2E_KUBECONFIG) for an existing cluster, or a kind/k3d/minikube binary with a
reachable Docker engine for a throwaway one. Elsewhere every test skips, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _external_kubeconfig(config: pytest.Config) -> str | None:
    for candidate in (
        config.getoption("k8s_kubeconfig"),
        os.environ.get("IMAGE_AWAITER_E2E_KUBECONFIG"),
        os.environ.get("KUBECONFIG"),
    ):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


def _provider_with_engine() -> str | None:
    providers = [p for p in ("k3d", "kind", "minikube") if shutil.which(p)]
    if not providers:
        return None
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "info"], capture_output=True, timeout=20, check=False)
    return providers[0] if probe.returncode == 0 else None


def why_no_cluster(config: pytest.Config) -> str | None:
    if _external_kubeconfig(config) or _provider_with_engine():
        return None
    return (
        "no real cluster: pass --k8s-kubeconfig or set IMAGE_AWAITER_E2E_KUBECONFIG/"
        "KUBECONFIG, or install kind/k3d/minikube with a running Docker engine"
    )


@pytest.fixture
def real_kubeconfig(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A kubeconfig of a real cluster: the given one, or a throwaway cluster of the provider
    found here, created once and kept for the whole session (pytest-kubernetes deletes it at
    the end)."""
    reason = why_no_cluster(request.config)
    if reason is not None:
        pytest.skip(reason)
    external = _external_kubeconfig(request.config)
    if external is not None:
        yield Path(external)
        return
    provider = request.config.getoption("k8s_provider") or _provider_with_engine()
    request.node.add_marker(pytest.mark.k8s(provider=provider, keep=True))
    cluster: Any = request.getfixturevalue("k8s")
    cluster.create(timeout=180)
    kubeconfig = cluster.kubeconfig
    assert kubeconfig is not None
    yield Path(kubeconfig)


def leftover_daemonsets(kubeconfig: Path) -> list[str]:
    """Names of image-awaiter's DaemonSets in any namespace, read with the official client."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        response = api.call_api(
            *api.param_serialize(
                method="GET",
                resource_path="/apis/apps/v1/daemonsets",
                query_params=[("labelSelector", "app.kubernetes.io/managed-by=image-awaiter")],
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
        )
        response.read()
        listing = json.loads(response.data)
    finally:
        api.close()
    return [item["metadata"]["name"] for item in listing.get("items") or []]

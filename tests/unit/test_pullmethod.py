"""`--pull-method auto`: image volumes only where the server and every target node's runtime
support them (versions as real servers and kubelets report them)."""

from __future__ import annotations

import pytest

from image_awaiter.core.pullmethod import choose_pull_method

CONTAINERD_2 = "containerd://2.0.4"
CONTAINERD_1 = "containerd://1.7.22"
CRIO_130 = "cri-o://1.30.0"
CRIO_129 = "cri-o://1.29.6"
DOCKER = "docker://24.0.7"


@pytest.mark.parametrize(
    ("server", "runtimes", "method", "reason"),
    [
        (
            "v1.35.0",
            {"a": CONTAINERD_2, "b": CRIO_130},
            "imageVolumes",
            "Kubernetes v1.35.0 and every target node's runtime (containerd://2.0.4, "
            "cri-o://1.30.0) support them",
        ),
        (
            "v1.36.1-eks-3025e55",
            {"a": "containerd://2.1.0-rc.1"},
            "imageVolumes",
            "Kubernetes v1.36.1-eks-3025e55 and every target node's runtime "
            "(containerd://2.1.0-rc.1) support them",
        ),
        (
            "v1.34.2",
            {"a": CONTAINERD_2},
            "initContainers",
            "Kubernetes v1.34.2 has image volumes off by default (on from 1.35)",
        ),
        (
            "v1.35.0",
            {"a": CONTAINERD_2, "b": CONTAINERD_1},
            "initContainers",
            "node b runs containerd://1.7.22; image volumes need containerd 2 or CRI-O 1.30+",
        ),
        (
            "v1.35.0",
            {"a": CRIO_129, "b": DOCKER, "c": CRIO_130},
            "initContainers",
            "node a runs cri-o://1.29.6 (and 1 more nodes); image volumes need containerd 2 or "
            "CRI-O 1.30+",
        ),
        (
            "v1.35.0",
            {"a": ""},
            "initContainers",
            "node a runs an unknown runtime; image volumes need containerd 2 or CRI-O 1.30+",
        ),
        ("v1.35.0", {}, "initContainers", "no target node to tell the runtime of"),
        (None, {"a": CONTAINERD_2}, "initContainers", "the API server's version is unknown"),
        (
            "v1.36.0+k3s1",
            {"a": "containerd://2.0.5-k3s1"},
            "imageVolumes",
            "Kubernetes v1.36.0+k3s1 and every target node's runtime (containerd://2.0.5-k3s1) "
            "support them",
        ),
    ],
)
def test_auto_chooses_image_volumes_only_where_server_and_every_runtime_support_them(
    server: str | None, runtimes: dict[str, str], method: str, reason: str
) -> None:
    choice = choose_pull_method(server_version=server, runtimes=runtimes)
    assert (choice.method, choice.reason) == (method, reason)

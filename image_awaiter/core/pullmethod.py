"""`--pull-method auto`: whether image volumes can pull the images, from the API server's version
and every target node's container runtime, as plain data.

Image volumes (KEP-4639) are on by default from Kubernetes 1.35 (beta, then GA in 1.36) and need
a runtime that mounts them: containerd 2.0 or later, CRI-O 1.30 or later (kubernetes/enhancements
#4639; containerd #11903). Nodes report their runtime as `status.nodeInfo.containerRuntimeVersion`
(`containerd://2.0.4`, `cri-o://1.30.0`, `docker://24.0.7`). Anything else, or anything unknown,
keeps the init containers, which work everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

IMAGE_VOLUMES_SINCE = (1, 35)
RUNTIMES_WITH_IMAGE_VOLUMES: Mapping[str, tuple[int, int]] = {
    "containerd": (2, 0),
    "cri-o": (1, 30),
}
_VERSION = re.compile(r"v?(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True)
class MethodChoice:
    """The pull method `auto` chose, and why, in words for the log and the report."""

    method: Literal["initContainers", "imageVolumes"]
    reason: str


def major_minor(text: str) -> tuple[int, int] | None:
    """`v1.35.2-eks-1a2b3c` -> (1, 35); None when it names no version."""
    found = _VERSION.match(text.strip())
    return (int(found.group(1)), int(found.group(2))) if found else None


def runtime_supports_image_volumes(runtime: str) -> bool:
    name, _, version = runtime.partition("://")
    needed = RUNTIMES_WITH_IMAGE_VOLUMES.get(name)
    found = major_minor(version)
    return needed is not None and found is not None and found >= needed


def choose_pull_method(*, server_version: str | None, runtimes: Mapping[str, str]) -> MethodChoice:
    """Image volumes when the server is 1.35 or later and every target node's runtime (node
    name -> `containerRuntimeVersion`) mounts them; init containers otherwise."""
    server = major_minor(server_version or "")
    if server is None:
        return MethodChoice("initContainers", "the API server's version is unknown")
    if server < IMAGE_VOLUMES_SINCE:
        return MethodChoice(
            "initContainers",
            f"Kubernetes {server_version} has image volumes off by default (on from 1.35)",
        )
    if not runtimes:
        return MethodChoice("initContainers", "no target node to tell the runtime of")
    lacking = sorted(
        node for node, runtime in runtimes.items() if not runtime_supports_image_volumes(runtime)
    )
    if lacking:
        more = f" (and {len(lacking) - 1} more nodes)" if len(lacking) > 1 else ""
        runtime = runtimes[lacking[0]] or "an unknown runtime"
        return MethodChoice(
            "initContainers",
            f"node {lacking[0]} runs {runtime}{more}; image volumes need containerd 2 or "
            "CRI-O 1.30+",
        )
    kinds = ", ".join(sorted(set(runtimes.values())))
    return MethodChoice(
        "imageVolumes",
        f"Kubernetes {server_version} and every target node's runtime ({kinds}) support them",
    )

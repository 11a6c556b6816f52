"""What a pod log request is answered, wherever it is served: the simulated API server's
`pods/NAME/log` (apiserver/podlogs.py) and the kubelets' `/containerLogs/...` that the real
kube-apiserver asks (kubeletserver.py). A container the pod does not have (its containers and
init containers, as kube-apiserver checks) and a container still waiting to start are refused
with kube-apiserver's words; `tailLines` cuts the log."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class LogError(Exception):
    """A log request refused: its HTTP status and plain-text message (kube-apiserver hands
    both on to `kubectl`)."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def log_view(
    pod: dict[str, Any], *, container: str, data: bytes | None, tail_lines: int | None
) -> tuple[bytes, int]:
    """What the log of `container` shows now (`data`: what its process wrote, None if it never
    ran), cut to `tail_lines`, and how long it is whole (where a follower goes on from)."""
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    containers = [
        c["name"] for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
    ]
    if container not in containers:
        raise LogError(HTTPStatus.BAD_REQUEST, f"container {container} is not valid for pod {name}")
    if data is None:
        if (pod.get("status") or {}).get("phase", "Pending") == "Pending":
            raise LogError(
                HTTPStatus.BAD_REQUEST,
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating',
            )
        data = b""
    whole = len(data)
    if tail_lines is not None:
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-tail_lines:]) if tail_lines else b""
    return data, whole

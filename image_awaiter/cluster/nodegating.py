"""What the gate writes to nodes: the condition (through `nodes/status`), the gate taint's
removal (a JSON patch that tests the taints it read, re-read and retried on 409/422), and Events
on the node (`ImagesPending`, `ImagesReady`, `ImagesPullFailed`, `ImagesMaxWaitExceeded`).

Nothing here decides: `gating.writes_for` says what to write; nodes without the gate taint never
reach this module.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime
from typing import Any

import structlog

from image_awaiter.core.errors import ApiError, Conflict, InvalidObject, NotFound
from image_awaiter.core.gating import (
    ConditionUpdate,
    GateTaint,
    condition_json_patch,
    condition_patch,
    taint_removal_patch,
)
from image_awaiter.kube.api import KubeApi
from image_awaiter.kube.resources import EVENTS, NODES

log = structlog.get_logger("image_awaiter.cluster.nodegating")

MAX_ATTEMPTS = 5  # re-reads of a node whose taints keep changing under the patch
COMPONENT = "image-awaiter-gate"
EVENTS_NAMESPACE = "default"  # where node events live (the kubelet's choice too)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class NodeWriter:
    """Writes of one gate replica (the leader) to nodes; `requests` counts them by kind."""

    def __init__(self, *, kube: KubeApi, gate: GateTaint, condition_type: str) -> None:
        self._kube = kube
        self._gate = gate
        self._condition_type = condition_type
        self._strategic = True  # until a server answers 415 to a strategic merge patch
        self.requests: dict[str, int] = {}

    def _count(self, kind: str) -> None:
        self.requests[kind] = self.requests.get(kind, 0) + 1

    def set_condition(self, name: str, update: ConditionUpdate, *, previous: str) -> None:
        transition = previous.split("/", 1)[0] != update.status
        address = NODES.address(name=name, subresource="status")
        if self._strategic:
            body = condition_patch(
                self._condition_type, update, now=now_iso(), transition=transition
            )
            self._count("condition")
            try:  # a strategic merge patch: conditions merge by type
                self._kube.request("PATCH", address, body=body, budget=10.0)
                return
            except ApiError as error:
                if error.status != 415:
                    raise
                log.info("gate.no_strategic_merge", detail="conditions as JSON patches")
                self._strategic = False
        self._set_condition_by_json_patch(name, update, transition=transition)

    def _set_condition_by_json_patch(
        self, name: str, update: ConditionUpdate, *, transition: bool
    ) -> None:
        address = NODES.address(name=name, subresource="status")
        for _ in range(MAX_ATTEMPTS):
            self._count("reread")
            node = self._kube.request("GET", NODES.address(name=name), budget=10.0)
            conditions = (node.get("status") or {}).get("conditions") or []
            patch = condition_json_patch(
                conditions, self._condition_type, update, now=now_iso(), transition=transition
            )
            self._count("condition")
            try:
                self._kube.request("PATCH", address, body=patch, budget=10.0)
                return
            except (Conflict, InvalidObject) as error:
                log.info("gate.conditions_changed", node=name, error=error.message)
        raise ApiError(f"node {name}: its conditions kept changing under {MAX_ATTEMPTS} patches")

    def untaint(self, name: str, taints: bytes) -> bool:
        """Remove the gate taint from the node, conditional on its taints being `taints` (as
        read); on 409/422 re-read the node and try again. False: the node is gone."""
        current: list[dict[str, Any]] = json.loads(taints or b"null") or []
        for _ in range(MAX_ATTEMPTS):
            patch = taint_removal_patch(current, self._gate)
            if patch is None:
                return True  # someone removed it already
            self._count("untaint")
            try:
                self._kube.request(  # a JSON patch: test, then replace
                    "PATCH", NODES.address(name=name), body=patch, budget=10.0
                )
                return True
            except (Conflict, InvalidObject) as error:
                log.info("gate.taints_changed", node=name, error=error.message)
            except NotFound:
                return False
            self._count("reread")
            try:
                node = self._kube.request("GET", NODES.address(name=name), budget=10.0)
            except NotFound:
                return False
            current = (node.get("spec") or {}).get("taints") or []
        raise ApiError(f"node {name}: its taints kept changing under {MAX_ATTEMPTS} patches")


class NodeEvents:
    """Events about nodes, recorded as the kubelet does (namespace default, the node's name
    as its uid, which `kubectl describe node` reads). Never fatal."""

    def __init__(self, *, kube: KubeApi) -> None:
        self._kube = kube
        self._host = socket.gethostname()
        self.sent = 0

    def record(self, node: str, reason: str, message: str, *, warning: bool = False) -> None:
        stamp = now_iso()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{node}.{time.time_ns():x}", "namespace": EVENTS_NAMESPACE},
            "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node},
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT, "host": self._host},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._host,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self._kube.request(
                "POST", EVENTS.address(namespace=EVENTS_NAMESPACE), body=body, budget=5.0
            )
        except ApiError as error:
            log.debug("gate.event_unrecorded", node=node, reason=reason, error=error.one_line())
            return
        self.sent += 1

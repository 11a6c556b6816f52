"""Kubernetes Events on the awaiter's own pod, so that `kubectl describe pod` and `kubectl get
events` tell the story without the logs: `ImagesPulling` (the plan) on start, `ImagePullFailed`
(the classified cause) and `ImagesReady` on success.

Only when the downward API names the pod (POD_NAME, POD_UID, POD_NAMESPACE). Rate-limited:
a reason is recorded at most once per `MIN_GAP` seconds and at most `MAX_EVENTS` in a run, like
client-go's spam filter keeps a kubelet's events in bounds. Recording never fails the run: an
event the API refuses (RBAC off in the chart, a quota) is logged at debug once and dropped.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime

import structlog

from image_awaiter.core.errors import AwaiterError
from image_awaiter.kube.api import KubeApi
from image_awaiter.kube.resources import EVENTS
from image_awaiter.spec.pullers import Owner

log = structlog.get_logger("image_awaiter.cluster.podevents")

MIN_GAP = 30.0  # seconds between two events of the same reason
MAX_EVENTS = 20  # per run
COMPONENT = "image-awaiter"
MAX_MESSAGE = 1024  # the API refuses event messages above this


class PodEvents:
    """Records events about `pod`; a no-op when `pod` is None."""

    def __init__(self, *, kube: KubeApi, pod: Owner | None, run_id: str) -> None:
        self._kube = kube
        self._pod = pod
        self._run_id = run_id
        self._last: dict[str, float] = {}
        self._sent = 0
        self._broken = False
        self.recorded: list[tuple[str, str]] = []  # (reason, message), for the report

    def record(self, reason: str, message: str, *, warning: bool = False) -> None:
        if self._pod is None or self._broken or self._sent >= MAX_EVENTS:
            return
        now = time.monotonic()
        if now - self._last.get(reason, -MIN_GAP) < MIN_GAP:
            return
        self._last[reason] = now
        self._sent += 1
        try:
            self._kube.request(
                "POST",
                EVENTS.address(namespace=self._pod.namespace),
                body=self._body(reason, message[:MAX_MESSAGE], warning=warning),
                budget=5.0,
            )
        except AwaiterError as error:  # never worth failing a run for
            self._broken = True
            log.debug("podevent.unrecorded", reason=reason, error=error.one_line())
            return
        self.recorded.append((reason, message))

    def _body(self, reason: str, message: str, *, warning: bool) -> dict[str, object]:
        assert self._pod is not None
        stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{self._pod.name}.{time.time_ns():x}",
                "namespace": self._pod.namespace,
                "labels": {"image-awaiter/run-id": self._run_id},
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": self._pod.name,
                "namespace": self._pod.namespace,
                "uid": self._pod.uid,
            },
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT, "host": socket.gethostname()},
            "reportingComponent": COMPONENT,
            "reportingInstance": socket.gethostname(),
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }

"""core/v1 Events as the kubelet, scheduler and Job controller of the simulated cluster record
them, for `kubectl describe` and `kubectl get events`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from simcluster.apiserver.store import now_iso

if TYPE_CHECKING:
    from simcluster.cluster import SimCluster


def record(
    sim: SimCluster,
    obj: dict[str, Any],
    *,
    reason: str,
    message: str,
    component: str,
    host: str = "",
    warning: bool = False,
    field_path: str = "",
) -> None:
    """A core/v1 Event about `obj`, as `kubectl describe` and `kubectl get events` read them."""
    meta = obj["metadata"]
    stamp = now_iso()
    involved = {
        "kind": obj.get("kind", ""),
        "namespace": meta.get("namespace", ""),
        "name": meta["name"],
        "uid": meta["uid"],
        "apiVersion": obj.get("apiVersion", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if field_path:
        involved["fieldPath"] = field_path
    source = {"component": component, **({"host": host} if host else {})}
    event = {
        # Named as the event recorder names them: the object's name, then the time in hex
        # nanoseconds; events of one object therefore list in the order they happened.
        "metadata": {
            "name": f"{meta['name']}.{_event_clock():x}",
            "namespace": meta.get("namespace"),
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "type": "Warning" if warning else "Normal",
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": host,
    }
    sim.store.create("events", event, meta.get("namespace") or "default")


_last_event_ns = 0


def _event_clock() -> int:
    global _last_event_ns
    _last_event_ns = max(time.time_ns(), _last_event_ns + 1)
    return _last_event_ns

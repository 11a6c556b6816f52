"""The simulated kubelets' event recorder: core/v1 Events about pods, as client-go's recorder
and EventCorrelator write them.

- An event identical to an earlier one (same source, object, fieldPath, type, reason, message)
  is not created again: the earlier one's `count` goes up and its `lastTimestamp` moves, which
  is what `kubectl describe` shows as "(x4 over 2m)".
- A token bucket per source and object (burst 25, one more every 5 minutes: client-go's
  defaultSpamBurst / defaultSpamQPS) drops the rest, count bumps included, as the real spam
  filter does. Time is scaled like every other delay of the simulation.
- Names are `<pod>.<hex unix nanos>`, as the kubelet's recorder makes them.

`Recorder` holds that logic; `writing.ApiEventRecorder` writes what it decides through the API.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from simcluster.nodes.pulling import now_iso

SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0


@dataclass
class _Bucket:
    tokens: float
    at: float


class Recorder:
    def __init__(self, *, time_scale: float) -> None:
        self.time_scale = time_scale
        self._seen: dict[tuple[str, ...], tuple[str, str]] = {}  # identity -> (ns, name) key
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.dropped = 0
        self._last_nanos = 0

    def record(
        self,
        pod: dict[str, Any],
        *,
        host: str,
        reason: str,
        message: str,
        warning: bool = False,
        field_path: str = "",
    ) -> None:
        """Record (or bump) one kubelet event about `pod`."""
        meta = pod["metadata"]
        namespace, uid = meta.get("namespace") or "default", meta["uid"]
        kind = "Warning" if warning else "Normal"
        if not self._allow(host, uid):
            self.dropped += 1
            return
        identity = (host, uid, field_path, kind, reason, message)
        seen = self._seen.get(identity)
        stamp = now_iso()
        if seen is not None and self._bump(seen, stamp):
            return
        involved = {
            "kind": "Pod",
            "namespace": namespace,
            "name": meta["name"],
            "uid": uid,
            "apiVersion": "v1",
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            involved["fieldPath"] = field_path
        self._last_nanos = max(time.time_ns(), self._last_nanos + 1)  # names never collide
        name = f"{meta['name']}.{self._last_nanos:x}"
        event = {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": {"component": "kubelet", "host": host},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "type": kind,
            "eventTime": None,
            "reportingComponent": "kubelet",
            "reportingInstance": host,
        }
        self._create(namespace, event)
        self._seen[identity] = (namespace, name)

    def _bump(self, key: tuple[str, str], stamp: str) -> bool:
        """Count one more of the event at (namespace, name); False if it is gone."""
        raise NotImplementedError

    def _create(self, namespace: str, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def forget(self, live_uids: set[str]) -> None:
        """Drop bookkeeping for pods that are gone (their events stay, as in a real cluster)."""
        self._seen = {k: v for k, v in self._seen.items() if k[1] in live_uids}
        self._buckets = {k: v for k, v in self._buckets.items() if k[1] in live_uids}

    def _allow(self, host: str, uid: str) -> bool:
        now = time.monotonic()
        refill = SPAM_REFILL_SECONDS * self.time_scale
        bucket = self._buckets.setdefault((host, uid), _Bucket(float(SPAM_BURST), now))
        bucket.tokens = min(float(SPAM_BURST), bucket.tokens + (now - bucket.at) / refill)
        bucket.at = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

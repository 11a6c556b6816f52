"""Graceful pod deletion as kube-apiserver decides it (pkg/registry/core/pod/strategy.go,
`CheckGracefulDeleteStrategy`): a pod bound to a node and not finished is not deleted at once;
the API server sets `deletionTimestamp` and `deletionGracePeriodSeconds` and the node's kubelet
stops the containers (SIGTERM, SIGKILL after the grace period) and then deletes it with
`gracePeriodSeconds=0`. A pod not yet bound, or Succeeded or Failed, or deleted with a grace
period of 0, goes at once.

Two differences, on purpose: a pod bound to a node that no longer exists goes at once (a real
cluster's pod garbage collector deletes it a little later), and so does one bound to a node no
kubelet serves (the stored synthetic nodes of the benchmarks), which a real cluster would leave
Terminating."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from simcluster.apiserver.store import Store

Obj = dict[str, Any]
DEFAULT_GRACE_SECONDS = 30  # the pod spec's terminationGracePeriodSeconds default
STAMP = "%Y-%m-%dT%H:%M:%SZ"


def grace_seconds(pod: Obj, options: Obj) -> int | None:
    """The grace period this delete gives the pod, or None: delete it now."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return None
    grace = options.get("gracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    grace = int(grace)
    current = pod["metadata"].get("deletionGracePeriodSeconds")
    if current is not None and "deletionTimestamp" in pod["metadata"]:
        grace = min(grace, int(current))  # a second delete may shorten it, never lengthen it
    return grace or None


def mark_terminating(
    store: Store, pod: Obj, options: Obj, *, served: Callable[[str], bool]
) -> Obj | None:
    """Start the graceful deletion of `pod` (the store's lock held): the terminating pod, or
    None when it is to be deleted at once. `served(node)`: whether a kubelet runs that node."""
    grace = grace_seconds(pod, options)
    if grace is None or not served(pod["spec"]["nodeName"]):
        return None
    meta = pod["metadata"]
    if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds") == grace:
        return pod

    # the time it is to be gone by: now plus the grace period (rest.BeforeDelete)
    by = (datetime.now(UTC) + timedelta(seconds=grace)).strftime(STAMP)

    def mark(obj: Obj) -> None:
        _stamp(obj, by, grace)

    return store.mutate("pods", meta["name"], meta["namespace"], mark)


def as_deleted(pod: Obj) -> Obj:
    """The pod as a delete that removes it at once answers it: stamped deleted now, with a
    grace period of 0 (what kube-apiserver returns)."""
    answer = copy.deepcopy(pod)
    _stamp(answer, datetime.now(UTC).strftime(STAMP), 0)
    return answer


def _stamp(pod: Obj, at: str, grace: int) -> None:
    meta = pod["metadata"]
    if meta.get("deletionGracePeriodSeconds") == grace:
        return
    meta["deletionTimestamp"] = at
    meta["deletionGracePeriodSeconds"] = grace
    if "generation" in meta:  # a pod's generation counts its deletion too (1.33+)
        meta["generation"] = int(meta["generation"]) + 1

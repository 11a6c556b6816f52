"""`PodStatuses`: the HTTP kubelets' status manager. A pod's status is written through
`pods/<name>/status` by its node's writer (writing.Writers), with a uid precondition; statuses
that pile up while the writer is busy are written once, the last one; a failed write is
forgotten, so the next sync writes it again; and a status someone else changed (the pod's
phase or a condition's status) is written back."""

from __future__ import annotations

import threading

from simcluster.apiclient import MERGE_PATCH, Api, Json
from simcluster.nodes.writing import Writers


class PodStatuses:
    """What was written of each pod (by uid), and what is still to be."""

    def __init__(self, api: Api, *, writers: Writers, errors: list[str]) -> None:
        self.api = api
        self.writers = writers
        self.errors = errors
        self.reported: dict[str, Json] = {}  # uid -> the status we last wrote
        self.unwritten: dict[str, Json] = {}  # uid -> the status patch its writer is to send
        self.written: dict[str, str] = {}  # uid -> the resourceVersion our last write made
        self._unwritten_lock = threading.Lock()
        self.finished: set[str] = set()  # running: nothing more to sync until deleted

    def patch(self, pod: Json, status: Json) -> None:
        """Write a pod's status (only if it is still the pod of that uid), by its node's
        writer; statuses that pile up while it is busy are written once, the last one (as the
        kubelet's status manager); if the write fails, the next sync writes it again."""
        meta = pod["metadata"]
        uid = meta["uid"]
        self.reported[uid] = status
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status"
        with self._unwritten_lock:  # else a status set just as the writer takes one is lost
            queued = uid in self.unwritten
            self.unwritten[uid] = {"metadata": {"uid": uid}, "status": status}
        if queued:
            return

        def write() -> None:
            with self._unwritten_lock:
                body = self.unwritten.pop(uid, None)
            if body is None:
                return
            answer, written = self.api.request("PATCH", path, body, content_type=MERGE_PATCH)
            if answer < 400:
                self.written[uid] = written.get("metadata", {}).get("resourceVersion", "")
            else:
                self.reported.pop(uid, None)
                self.finished.discard(uid)
                if answer != 404:
                    message = written.get("message")
                    self.errors.append(f"pod status {meta['name']}: {answer} {message}")

        self.writers.submit(pod["spec"].get("nodeName") or "", write, urgent=True)

    def drifted(self, pod: Json) -> bool:
        """Whether someone else wrote this pod's status since this kubelet last did, and it
        differs from what it wrote."""
        return self._newer_than_written(pod) and _drifted(
            pod, self.reported.get(pod["metadata"]["uid"])
        )

    def reconcile(self, pod: Json) -> None:
        """Someone else changed the status of a pod this kubelet runs (the node lifecycle
        controller marks the pods of a node it thought lost not Ready): write it again, as
        the kubelet's status manager does when the API's copy differs from its own."""
        status = self.reported.get(pod["metadata"]["uid"])
        if status is not None and pod["metadata"]["uid"] not in self.unwritten:
            self.patch(pod, status)

    def keep_only(self, live: set[str]) -> None:
        """Forget the pods whose uids are not `live` (they are gone)."""
        self.finished &= live
        for kept in (self.reported, self.written):  # the writers change them too: list() first
            for uid in [uid for uid in list(kept) if uid not in live]:
                kept.pop(uid, None)

    def _newer_than_written(self, pod: Json) -> bool:
        """Whether this copy of the pod was written after this kubelet's last status write
        (resourceVersions are opaque to clients, but etcd revisions here: integers)."""
        written = self.written.get(pod["metadata"]["uid"])
        seen = pod["metadata"].get("resourceVersion") or ""
        return (
            written is not None
            and seen.isdigit()
            and written.isdigit()
            and int(seen) > int(written)
        )


def _drifted(pod: Json, reported: Json | None) -> bool:
    """The pod's phase or a condition's status is not what this kubelet last wrote."""
    if reported is None:
        return False
    seen = pod.get("status") or {}

    def conditions(status: Json) -> dict[str, str]:
        return {c["type"]: c["status"] for c in status.get("conditions") or []}

    return seen.get("phase") != reported.get("phase") or any(
        conditions(seen).get(kind) != value for kind, value in conditions(reported).items()
    )

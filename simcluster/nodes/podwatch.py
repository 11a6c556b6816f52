"""`PodWatch`: the HTTP kubelets' one watch of the pods bound to any node
(`fieldSelector=spec.nodeName!=`), kept to the pods of their nodes here: listed, then watched
from the list's resourceVersion (bookmarks on, each watch bounded), relisted after an ERROR
event (410 Gone and the like) or a failure."""

from __future__ import annotations

import threading

import urllib3

from simcluster.apiclient import Api, ApiError, Json, Stream

POD_WATCH_SECONDS = 300  # a watch is bounded; then it resumes from its resourceVersion


class PodWatch:
    """`pods`: uid -> the pod as last seen, on one of the `claimed` nodes; replaced whole on a
    list, changed under `changed` (whose waiters are told)."""

    def __init__(
        self,
        api: Api,
        *,
        claimed: set[str],
        changed: threading.Condition,
        errors: list[str],
        stop: threading.Event,
    ) -> None:
        self.api = api
        self.claimed = claimed
        self.changed = changed
        self.errors = errors
        self._stop = stop
        self.pods: dict[str, Json] = {}
        self._stream: Stream | None = None

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._list_and_watch()
            except (urllib3.exceptions.HTTPError, OSError, ApiError, ValueError) as error:
                if not self._stop.is_set():
                    self.errors.append(f"pod watch: {error}")
                    self._stop.wait(0.5)

    def close(self) -> None:
        """End the watch now (after `stop` is set: else it lists again)."""
        stream = self._stream
        if stream is not None:
            stream.close()

    def drop_node(self, name: str) -> None:
        """Forget the pods on node `name` (the caller holds `changed`)."""
        self.pods = {u: p for u, p in self.pods.items() if p["spec"].get("nodeName") != name}

    def _list_and_watch(self) -> None:
        selector = {"fieldSelector": "spec.nodeName!="}
        listing = self.api.call("GET", "/api/v1/pods", query=selector)
        with self.changed:
            self.pods = {
                pod["metadata"]["uid"]: pod for pod in listing.get("items") or [] if self._ours(pod)
            }
            self.changed.notify_all()
        version = listing["metadata"]["resourceVersion"]
        while not self._stop.is_set():
            query = {
                **selector,
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(POD_WATCH_SECONDS),
            }
            self._stream = self.api.watch("/api/v1/pods", query)
            for event in self._stream:
                kind, pod = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    return  # 410 Gone and the like: list again
                version = pod.get("metadata", {}).get("resourceVersion") or version
                if kind != "BOOKMARK":
                    self._apply(kind, pod)

    def _ours(self, pod: Json) -> bool:
        return (pod.get("spec") or {}).get("nodeName") in self.claimed

    def _apply(self, kind: str | None, pod: Json) -> None:
        uid = pod["metadata"]["uid"]
        with self.changed:
            if kind == "DELETED" or not self._ours(pod):
                self.pods.pop(uid, None)
            else:
                self.pods[uid] = pod
            self.changed.notify_all()

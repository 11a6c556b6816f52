"""What the runtime (runtime.py) and pod sandboxes (sandboxes.py) need of a cluster, through
the API, for the HTTP kubelets: `ApiCluster` reads objects and asks the TokenRequest API for a
pod's token; `ApiHost` writes the runtime's statuses and events through the kubelets, and keeps
pod logs (the simulated API server serves them from here; the real one asks the kubelets'
server, kubeletserver.py, which reads them here too)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from simcluster.apiclient import Api, ApiError, Json
from simcluster.nodes.factory import pod_ip

if TYPE_CHECKING:
    from simcluster.nodes.kubelet import Kubelets


class ApiCluster:
    """What a pod sandbox reads (sandboxes.Cluster), over the API."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.server = api.server

    def get(self, resource: str, name: str, namespace: str) -> Json | None:
        status, found = self.api.request("GET", f"/api/v1/namespaces/{namespace}/{resource}/{name}")
        if status == 404:
            return None
        if status >= 400:
            raise ApiError(status=status, method="GET", path=f"{resource}/{name}", body=found)
        return found

    def token(self, pod: Json, account: str) -> str:
        """A token bound to the pod, as the kubelet requests one for a projected volume."""
        meta = pod["metadata"]
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 3607,
                "boundObjectRef": {
                    "apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"],
                },
            },
        }  # fmt: skip
        path = f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token"
        return str(self.api.call("POST", path, request)["status"]["token"])

    def ca_pem(self) -> bytes | None:
        return self.api.credentials.ca_data


class ApiHost:
    """The runtime's side effects (runtime.Host) through the API."""

    def __init__(self, kubelets: Kubelets, *, awaiter_image: str) -> None:
        self.kubelets = kubelets
        self.registry = kubelets.world.registry
        self.awaiter_image = awaiter_image
        self.cluster = ApiCluster(kubelets.api)
        self.logs: dict[tuple[str, str], bytes] = {}
        self.log_changed = threading.Condition()  # a log grew or a process ended
        # told when a log grows or a process ends (SimCluster serves logs and wakes followers)
        self.on_log: Callable[[], None] = lambda: None

    def write_status(self, pod: Json, status: Json) -> None:
        node = self.kubelets.nodes.get(pod["spec"].get("nodeName", ""))
        if node is not None:
            status = {**status, "hostIP": node.address, "hostIPs": [{"ip": node.address}]}
            ip = pod_ip(node.pod_cidr, pod["metadata"]["uid"])
            status.update(podIP=ip, podIPs=[{"ip": ip}])
        self.kubelets.patch_pod_status(pod, status)

    def record(
        self, pod: Json, *, reason: str, message: str, node: str, warning: bool, field_path: str
    ) -> None:
        self.kubelets.recorder.record(
            pod, host=node, reason=reason, message=message, warning=warning, field_path=field_path
        )

    def remove(self, pod: Json) -> None:
        """After the pod's last status is written (its node's writer, in order), as the kubelet
        deletes a pod only once its status manager has synced the final status."""
        uid = pod["metadata"]["uid"]
        if uid in self.kubelets.deleting:
            return
        self.kubelets.deleting.add(uid)

        def delete() -> None:
            if not self.kubelets.delete_pod(pod):
                self.kubelets.deleting.discard(uid)  # the next sync tries again

        self.kubelets.writers.submit(pod["spec"].get("nodeName") or "", delete, urgent=True)

    def append_log(self, key: tuple[str, str], chunk: bytes) -> None:
        with self.log_changed:
            self.logs[key] = self.logs.get(key, b"") + chunk
            self.log_changed.notify_all()
        self.on_log()

    def log(self, key: tuple[str, str]) -> bytes:
        return self.logs.get(key, b"")

    def wake(self) -> None:
        with self.kubelets.changed:
            self.kubelets.changed.notify_all()
        with self.log_changed:
            self.log_changed.notify_all()
        self.on_log()

    # ------------------------------------------------------------------ for the kubelet server

    def pod_named(self, namespace: str, name: str) -> Json | None:
        """The pod on one of our nodes, with the status we last wrote (the API's copy lags)."""
        with self.kubelets.changed:
            for uid, pod in self.kubelets.pods.items():
                meta = pod["metadata"]
                if meta.get("namespace") == namespace and meta["name"] == name:
                    status = {**(pod.get("status") or {}), **self.kubelets.reported.get(uid, {})}
                    return {**pod, "status": status}
        return None

    def logged(self, key: tuple[str, str]) -> bytes | None:
        """The log, None while the pod's process has written nothing (or runs no process)."""
        return self.logs.get(key)

    def running(self, key: tuple[str, str]) -> bool:
        return self.kubelets.runtime.running(key)

    def wait_for_log(self, key: tuple[str, str], *, longer_than: int, timeout: float) -> None:
        with self.log_changed:
            self.log_changed.wait_for(
                lambda: len(self.logs.get(key, b"")) > longer_than or not self.running(key),
                timeout=timeout,
            )

"""`PodSync`: the HTTP kubelets' sync loop. Whenever the pods change (or every `tick`), each
pod on a node that is Ready is synced: an awaiter-image pod by the runtime (runtime.py), any
other through `pulling.PodWorker` until it runs, its status written (podstatus.py) and written
back if someone else changed it; a pod with a deletionTimestamp has its containers stopped and
is deleted (also on a node that is NotReady); each node's `status.images` written when it
changed; what is gone, forgotten."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from simcluster.apiclient import Json
from simcluster.nodes.factory import pod_ip
from simcluster.nodes.leases import SimNode

if TYPE_CHECKING:
    from simcluster.nodes.kubelet import Kubelets


class PodSync:
    """Syncs the pods of the kubelets' nodes (`run`, on one thread, until `stop`); `deleting`:
    the uids whose deletion was asked for (once each)."""

    def __init__(self, kubelets: Kubelets, *, stop: threading.Event) -> None:
        self.kubelets = kubelets
        self._stop = stop
        self.deleting: set[str] = set()

    def run(self) -> None:
        kubelets = self.kubelets
        while not self._stop.is_set():
            with kubelets.changed:
                kubelets.changed.wait(kubelets.tick)
                pods = list(kubelets.pods.values())
            try:
                self._sync(pods)
            except Exception as error:  # a kubelet outlives any one bad sync, and says why
                kubelets.errors.append(f"sync: {error!r}")
                self._stop.wait(0.2)

    def delete_pod(self, pod: Json) -> bool:
        """The end of graceful deletion: gone now, if it is still the pod of that uid."""
        meta = pod["metadata"]
        status, answer = self.kubelets.api.request(
            "DELETE",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
            {
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": meta["uid"]},
            },
        )
        if status >= 400 and status not in (404, 409):
            message = answer.get("message")
            self.kubelets.errors.append(f"delete pod {meta['name']}: {status} {message}")
            return False
        return True

    def _sync(self, pods: list[Json]) -> None:
        kubelets, statuses, runtime = self.kubelets, self.kubelets.statuses, self.kubelets.runtime
        now = time.monotonic()
        for node in list(kubelets.nodes.values()):
            images = kubelets.worker.render_images(node.sim, now)
            if images is not None:
                self._submit_images(node.sim.name, images)
        live = set()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            live.add(uid)
            on = kubelets.nodes.get(pod["spec"]["nodeName"])
            if on is None:
                continue
            node = on
            if node.sim.name in kubelets.down and not pod["metadata"].get("deletionTimestamp"):
                continue
            if runtime.handles(pod):
                runtime.sync(pod, node.sim, now, pull=kubelets.worker.pull)
            elif pod["metadata"].get("deletionTimestamp"):
                self._finish_deletion(pod, node)
            elif uid not in statuses.finished:
                self._sync_pod(pod, node, now)
            elif statuses.drifted(pod):
                statuses.reconcile(pod)
        runtime.reap(live, now)
        self.deleting &= live
        statuses.keep_only(live)
        if len(kubelets.worker.runs) > len(live):
            kubelets.worker.forget(live)
            kubelets.recorder.forget(live)

    def _sync_pod(self, pod: Json, node: SimNode, now: float) -> None:
        uid = pod["metadata"]["uid"]
        statuses = self.kubelets.statuses
        status = self.kubelets.worker.run_pod(pod, node.sim, now)
        status["hostIP"] = node.address
        status["hostIPs"] = [{"ip": node.address}]
        if status["phase"] == "Running":
            status["podIP"] = pod_ip(node.pod_cidr, uid)
            status["podIPs"] = [{"ip": status["podIP"]}]
        if status == statuses.reported.get(uid):
            return
        statuses.patch(pod, status)
        if status["phase"] == "Running":
            statuses.finished.add(uid)

    def _finish_deletion(self, pod: Json, node: SimNode) -> None:
        """The containers stop (a Killing event for each running one), then the pod goes."""
        uid = pod["metadata"]["uid"]
        if uid in self.deleting:
            return
        self.deleting.add(uid)
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            if "running" in (container.get("state") or {}):
                self.kubelets.recorder.record(
                    pod, host=node.sim.name, reason="Killing",
                    message=f"Stopping container {container['name']}", warning=False,
                    field_path=f"spec.containers{{{container['name']}}}",
                )  # fmt: skip
        if not self.delete_pod(pod):
            self.deleting.discard(uid)

    def _submit_images(self, name: str, images: list[Any]) -> None:
        leases = self.kubelets.leases
        self.kubelets.writers.submit(
            name, lambda: leases.patch_node_status(name, {"images": images})
        )

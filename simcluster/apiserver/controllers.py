"""Controllers of the simulated cluster, run by one background loop: the DaemonSet controller,
the garbage collector (ownerReferences) and the in-process kubelets of the nodes added through
`SimCluster` (their pod logic is simcluster.nodes.pulling, shared with the HTTP kubelet of
simcluster.nodes.kubelet; here it reads and writes the store directly, for speed). Nodes
registered over HTTP by that kubelet are left to it.

Scheduling rules are implemented here independently of the product's own targeting code.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from simcluster.apiserver import events
from simcluster.nodes import failures
from simcluster.nodes.pulling import (
    ContainerRun,
    NodeSim,
    PodWorker,
    PullFailure,
    PullRecord,
)
from simcluster.nodes.recording import EventRecorder
from simcluster.nodes.registry import Image, parse

__all__ = ["ContainerRun", "Controllers", "NodeSim", "PullFailure", "PullRecord", "node_fits"]

if TYPE_CHECKING:
    from simcluster.cluster import SimCluster

DS_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]

# ---------------------------------------------------------------------------- scheduling


def tolerated(taint: dict[str, Any], tolerations: list[dict[str, Any]]) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t["key"] == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == (
            taint.get("value") or ""
        ):
            return True
    return False


def _expression(req: dict[str, Any], value: str | None) -> bool:
    op, values = req["operator"], req.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if value is None:
        return False
    try:
        return int(value) > int(values[0]) if op == "Gt" else int(value) < int(values[0])
    except ValueError:
        return False


def node_fits(node: dict[str, Any], pod_spec: dict[str, Any]) -> bool:
    labels = node["metadata"].get("labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    tolerations = (pod_spec.get("tolerations") or []) + DS_TOLERATIONS
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerated(taint, tolerations):
            return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required is not None:
        fields = {"metadata.name": node["metadata"]["name"]}
        terms = required.get("nodeSelectorTerms") or []
        ok = any(
            (t.get("matchExpressions") or t.get("matchFields"))
            and all(_expression(r, labels.get(r["key"])) for r in t.get("matchExpressions") or [])
            and all(_expression(r, fields.get(r["key"])) for r in t.get("matchFields") or [])
            for t in terms
        )
        if not ok:
            return False
    return True


class Controllers:
    def __init__(self, sim: SimCluster) -> None:
        self.sim = sim
        self.rng = random.Random(sim.seed + 1)
        self.finished: set[str] = set()
        self.failed_creates: set[tuple[str, str]] = set()  # (DaemonSet uid, message) recorded
        self.recorder = EventRecorder(sim)
        self.worker = PodWorker(world=sim, platform=self._platform, events=self._event)
        # Per DaemonSet uid: (generation, nodes version) the set was computed at, the eligible
        # node names, and per node (resourceVersion, fits) so only changed nodes are re-judged.
        self.eligible: dict[str, tuple[tuple[int, int], set[str], dict[str, tuple[str, bool]]]] = {}

    def tick(self) -> None:
        store = self.sim.store
        with store.lock:
            self._daemonsets()
            self.sim.jobs.tick()
            self.sim.jobs.schedule_pending()
            self._collect_garbage()
            self._kubelets()

    # ------------------------------------------------------------------ DaemonSets

    def _daemonsets(self) -> None:
        store = self.sim.store
        nodes = list(store.peek("nodes").values())
        pods = list(store.peek("pods").values())
        for (ns, name), ds in list(store.peek("daemonsets").items()):
            uid = ds["metadata"]["uid"]
            mine = [
                p
                for p in pods
                if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences") or [])
            ]
            by_node: dict[str, dict[str, Any]] = {}
            for pod in mine:
                target = _pod_target(pod)
                if target:
                    by_node[target] = pod
            eligible = self._eligible(ds, nodes)
            wanted = sorted(eligible - set(by_node))
            if wanted and self._refused_by_admission(ds):
                wanted = []
            for node_name in wanted:
                self._create_pod(ds, node_name)
            for node_name, pod in by_node.items():
                if node_name not in eligible and "deletionTimestamp" not in pod["metadata"]:
                    store.delete("pods", pod["metadata"]["name"], ns)
            ready = sum(1 for p in mine if (p.get("status") or {}).get("phase") == "Running")
            status = {
                "observedGeneration": ds["metadata"].get("generation", 1),
                "desiredNumberScheduled": len(eligible),
                "currentNumberScheduled": len(set(by_node) & eligible),
                "updatedNumberScheduled": len(set(by_node) & eligible),
                "numberReady": ready,
                "numberAvailable": ready,
                "numberMisscheduled": 0,
            }
            if ds.get("status") != status:
                store.mutate("daemonsets", name, ns, lambda o, s=status: o.__setitem__("status", s))

    def _refused_by_admission(self, ds: dict[str, Any]) -> bool:
        """ServiceAccount admission refuses a pod whose account does not exist; the DaemonSet
        controller then records `FailedCreate` with the API's refusal and creates no pod (one
        event per DaemonSet and message here; the real one's repeats are aggregated)."""
        meta, spec = ds["metadata"], ds["spec"]["template"]["spec"]
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        if self.sim.store.get("serviceaccounts", account, meta["namespace"]) is not None:
            return False
        message = (
            f'Error creating: pods "{meta["name"]}-" is forbidden: error looking up service '
            f'account {meta["namespace"]}/{account}: serviceaccount "{account}" not found'
        )
        if (meta["uid"], message) not in self.failed_creates:
            self.failed_creates.add((meta["uid"], message))
            events.record(
                self.sim, ds, reason="FailedCreate", message=message,
                component="daemonset-controller", warning=True,
            )  # fmt: skip
        return True

    def _eligible(self, ds: dict[str, Any], nodes: list[dict[str, Any]]) -> set[str]:
        """Nodes the DaemonSet's pods fit on. When a node changes only that node is judged
        again: judging all 5,000 nodes on every node update held the store for ~100 ms, which
        slowed every API answer (and the benchmark's exit latency) with it."""
        uid = ds["metadata"]["uid"]
        generation = ds["metadata"].get("generation", 1)
        version = (generation, self.sim.store.versions["nodes"])
        cached = self.eligible.get(uid)
        if cached is not None and cached[0] == version:
            return cached[1]
        fits = cached[2] if cached is not None and cached[0][0] == generation else {}
        eligible: set[str] = set()
        seen: dict[str, tuple[str, bool]] = {}
        for node in nodes:
            name, rv = node["metadata"]["name"], node["metadata"].get("resourceVersion", "")
            known = fits.get(name)
            if known is None or known[0] != rv:
                known = (rv, node_fits(node, ds["spec"]["template"]["spec"]))
            seen[name] = known
            if known[1]:
                eligible.add(name)
        self.eligible[uid] = (version, eligible, seen)
        return eligible

    def _create_pod(self, ds: dict[str, Any], node_name: str) -> None:
        store = self.sim.store
        ns = ds["metadata"]["namespace"]
        template = ds["spec"]["template"]
        spec = dict(template["spec"])
        spec["tolerations"] = (spec.get("tolerations") or []) + DS_TOLERATIONS
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": [node_name]}
                            ]
                        }
                    ]
                }
            }
        }
        node = store.peek("nodes").get(("", node_name)) or {}
        allocatable = ((node.get("status") or {}).get("allocatable") or {}).get("pods")
        max_pods = int(allocatable) if str(allocatable or "").isdigit() else None
        on_node = sum(
            1
            for p in store.peek("pods").values()
            if (p.get("spec") or {}).get("nodeName") == node_name
        )
        status: dict[str, Any] = {"phase": "Pending"}
        if max_pods is not None and on_node >= max_pods:  # the scheduler's pod-count filter
            status["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    # kube-scheduler v1.36.3's words (seen on the real control plane; a
                    # DaemonSet pod's matchFields affinity leaves it one node to consider)
                    "message": (
                        "0/1 nodes are available: 1 Too many pods. no new claims to deallocate, "
                        "preemption: 0/1 nodes are available: 1 No preemption victims found for "
                        "incoming pod."
                    ),
                }
            ]
        else:
            spec["nodeName"] = node_name
            status["conditions"] = [{"type": "PodScheduled", "status": "True"}]
        pod = {
            "metadata": {
                "generateName": ds["metadata"]["name"] + "-",
                "labels": dict(template.get("metadata", {}).get("labels") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "DaemonSet",
                        "name": ds["metadata"]["name"],
                        "uid": ds["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
            "status": status,
        }
        store.create("pods", pod, ns)

    # ------------------------------------------------------------------ garbage collection

    def _collect_garbage(self) -> None:
        store = self.sim.store
        for resource in ("pods", "daemonsets", "configmaps"):
            for (ns, name), obj in list(store.peek(resource).items()):
                owners = obj["metadata"].get("ownerReferences") or []
                if owners and not any(store.exists_uid(o.get("uid", "")) for o in owners):
                    store.delete(resource, name, ns)

    # ------------------------------------------------------------------ kubelets

    def _kubelets(self) -> None:
        store = self.sim.store
        now = time.monotonic()
        for node_sim in self.sim.node_sims.values():
            self._land_images(node_sim, now)
        live = set()
        for (ns, name), pod in list(store.peek("pods").items()):
            uid = pod["metadata"]["uid"]
            live.add(uid)
            if uid in self.finished:
                continue
            node_name = (pod.get("spec") or {}).get("nodeName")
            node_sim = self.sim.node_sims.get(node_name or "")
            if node_sim is None or not self.sim.node_ready(node_name or ""):
                continue
            if not self._owned_by_ds(pod) and self.sim.runtime.handles(pod):
                self.sim.runtime.sync(pod, node_sim, now, pull=self.worker.pull)
                continue  # the real CLI runs in it (runtime.py)
            if (
                not self._owned_by_ds(pod)
                and not owned_by("Job", pod)
                and not pod["metadata"].get("labels", {}).get("sim/run")
            ):
                continue  # pods created by tests as plain objects are left alone
            status = self.worker.run_pod(pod, node_sim, now)
            if status["phase"] == "Running":
                self.finished.add(uid)
            if status != pod.get("status"):
                store.mutate("pods", name, ns, lambda o, s=status: o.__setitem__("status", s))
        self.sim.runtime.reap(live, now)
        self.finished &= live
        if len(self.worker.runs) > len(live) or any(u not in live for u in self.worker.started):
            self.worker.forget(live)  # pods gone: drop what was theirs
            self.recorder.forget(live)

    def _owned_by_ds(self, pod: dict[str, Any]) -> bool:
        return owned_by("DaemonSet", pod)

    def _platform(self, node: NodeSim) -> failures.Platform:
        obj = self.sim.store.peek("nodes").get(("", node.name)) or {}
        labels = (obj.get("metadata") or {}).get("labels") or {}
        info = (obj.get("status") or {}).get("nodeInfo") or {}
        return failures.platform_of(labels, info)

    def _event(
        self, pod: dict[str, Any], host: str, reason: str, message: str, warning: bool, path: str
    ) -> None:
        if self.sim.kubelet_events:
            self.recorder.record(
                pod, host=host, reason=reason, message=message, warning=warning, field_path=path
            )

    def pull_seconds(self, image: Image, node_name: str) -> float:
        """How long a pull of `image` takes on the node, in (scaled) seconds."""
        return self.worker.pull_seconds(image, node_name)

    def _land_images(self, node: NodeSim, now: float) -> None:
        """Write node.status.images once pulls are older than the node's status lag."""
        rendered = self.worker.render_images(node, now)
        if rendered is not None:

            def change(obj: dict[str, Any]) -> None:
                obj.setdefault("status", {})["images"] = rendered

            self.sim.store.mutate("nodes", node.name, None, change)


def owned_by(kind: str, obj: dict[str, Any]) -> bool:
    return any(o.get("kind") == kind for o in obj["metadata"].get("ownerReferences") or [])


def _key(ref: str) -> str:
    parsed = parse(ref)
    return parsed.key if parsed else ref


def _pod_target(pod: dict[str, Any]) -> str | None:
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for req in term.get("matchFields") or []:
            if req.get("key") == "metadata.name" and req.get("values"):
                return str(req["values"][0])
    return None

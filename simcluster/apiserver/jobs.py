"""The Job controller (batch/v1) and the scheduler of the simulated cluster.

A Job gets one Pod at a time (completions and parallelism default to 1, as the API server
defaults them), labelled and owned as the real controller does. Every pod that ends is counted
once, as the real controller does with its tracking finalizer: Succeeded as succeeded, anything
else (Failed, or deleted before it succeeded) as failed. Conditions follow Kubernetes >= 1.31:
`SuccessCriteriaMet` then `Complete`; `FailureTarget` when the Job is judged failed, `Failed`
once its pods have terminated. Failed pods are replaced after the controller's exponential
back-off (10 s doubling, capped at 6 min; scaled by the cluster's time_scale, like pulls).
activeDeadlineSeconds and ttlSecondsAfterFinished are user-facing and count real seconds.

The scheduler binds pending pods of Jobs, and of awaiter runs, to a Ready, schedulable node
their nodeSelector, affinity and tolerations allow (the least loaded; ties by name).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simcluster.apiserver import events, rest
from simcluster.apiserver.controllers import node_fits, owned_by, tolerated
from simcluster.apiserver.kinds import BY_RESOURCE
from simcluster.apiserver.store import now_iso
from simcluster.nodes.runtime import runs_awaiter

if TYPE_CHECKING:
    from simcluster.cluster import SimCluster

JOB_NAME = "batch.kubernetes.io/job-name"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
# Messages as kubernetes pkg/controller/job/job_controller.go writes them.
BACKOFF_MESSAGE = "Job has reached the specified backoff limit"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"
COMPLETE_MESSAGE = "Reached expected number of succeeded pods"
BACKOFF_BASE, BACKOFF_CAP = 10.0, 360.0


@dataclass
class JobTrack:
    started: float  # monotonic
    counted: dict[str, str] = field(default_factory=dict)  # pod uid -> "succeeded" | "failed"
    alive: set[str] = field(default_factory=set)  # pod uids not yet counted, last time
    failures: int = 0  # failures the back-off was last computed for
    next_pod_at: float = 0.0
    finished_at: float | None = None


class JobController:
    def __init__(self, sim: SimCluster) -> None:
        self.sim = sim
        self.tracks: dict[str, JobTrack] = {}  # job uid -> what the controller remembers
        self.scheduled_at: tuple[int, int] = (-1, -1)  # (pods, nodes) versions last scheduled

    def tick(self) -> None:
        store = self.sim.store
        if not store.peek("jobs") and not self.tracks:
            return
        now = time.monotonic()
        pods_by_job: dict[str, list[dict[str, Any]]] = {}
        for pod in store.peek("pods").values():
            for owner in pod["metadata"].get("ownerReferences") or []:
                if owner.get("kind") == "Job" and owner.get("controller"):
                    pods_by_job.setdefault(owner["uid"], []).append(pod)
        live = set()
        for job in list(store.peek("jobs").values()):
            uid = job["metadata"]["uid"]
            live.add(uid)
            self._sync(job, pods_by_job.get(uid, []), now)
        for uid in set(self.tracks) - live:
            del self.tracks[uid]

    def schedule_pending(self) -> None:
        """Bind pending pods of Jobs and awaiter runs (DaemonSet pods are bound on creation).
        Only when pods or nodes changed: looking at 5,000 DaemonSet pods costs ~5 ms a tick."""
        versions = (self.sim.store.versions["pods"], self.sim.store.versions["nodes"])
        if versions == self.scheduled_at:
            return
        self.scheduled_at = versions
        for pod in list(self.sim.store.peek("pods").values()):
            if (pod.get("spec") or {}).get("nodeName") or "deletionTimestamp" in pod["metadata"]:
                continue
            if owned_by("Job", pod) or runs_awaiter(pod, self.sim.awaiter_image):
                schedule(self.sim, pod)

    # ------------------------------------------------------------------ one Job

    def _sync(self, job: dict[str, Any], pods: list[dict[str, Any]], now: float) -> None:
        if _defaults_missing(job):
            self._default(job)
            return
        uid = job["metadata"]["uid"]
        track = self.tracks.setdefault(uid, JobTrack(started=now))
        status = dict(job.get("status") or {})
        conditions = list(status.get("conditions") or [])
        types = {c["type"] for c in conditions if c.get("status") == "True"}
        if types & {"Complete", "Failed"}:
            self._expire(job, track, now)
            return
        spec = job["spec"]
        seen = {p["metadata"]["uid"] for p in pods}
        for pod in pods:
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                track.counted.setdefault(
                    pod["metadata"]["uid"], "succeeded" if phase == "Succeeded" else "failed"
                )
        for pod_uid in track.alive - seen:
            track.counted.setdefault(pod_uid, "failed")  # deleted before it succeeded
        active = [
            p
            for p in pods
            if p["metadata"]["uid"] not in track.counted
            and "deletionTimestamp" not in p["metadata"]
        ]
        terminating = [
            p
            for p in pods
            if p["metadata"]["uid"] not in track.counted and "deletionTimestamp" in p["metadata"]
        ]
        track.alive = {
            p["metadata"]["uid"] for p in pods if p["metadata"]["uid"] not in track.counted
        }
        succeeded = sum(1 for v in track.counted.values() if v == "succeeded")
        failed = len(track.counted) - succeeded
        if failed > track.failures:  # a new failure: the next pod waits out the back-off
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failed - 1))
            track.next_pod_at = now + delay * self.sim.time_scale
            track.failures = failed
        status.setdefault("startTime", now_iso())
        target = next((c for c in conditions if c["type"] == "FailureTarget"), None)
        if target is None and succeeded >= spec["completions"]:
            conditions += [
                _condition("SuccessCriteriaMet", "CompletionsReached", COMPLETE_MESSAGE),
                _condition("Complete", "CompletionsReached", COMPLETE_MESSAGE),
            ]
            status["completionTime"] = now_iso()
            track.finished_at = now
            events.record(
                self.sim,
                job,
                reason="Completed",
                message="Job completed",
                component="job-controller",
            )
        elif target is None and failed > spec["backoffLimit"]:
            target = _condition("FailureTarget", "BackoffLimitExceeded", BACKOFF_MESSAGE)
            conditions.append(target)
        elif (
            target is None
            and spec.get("activeDeadlineSeconds") is not None
            and now - track.started >= float(spec["activeDeadlineSeconds"])
        ):
            target = _condition("FailureTarget", "DeadlineExceeded", DEADLINE_MESSAGE)
            conditions.append(target)
        if target is not None:
            for pod in active:
                self._delete_pod(job, pod)
            terminating += active
            active = []
            if not terminating:
                conditions.append(_condition("Failed", target["reason"], target["message"]))
                track.finished_at = now
                events.record(
                    self.sim,
                    job,
                    reason=target["reason"],
                    message=target["message"],
                    component="job-controller",
                    warning=True,
                )
        elif "Complete" not in {c["type"] for c in conditions} and not spec.get("suspend"):
            wanted = min(spec["parallelism"], spec["completions"] - succeeded)
            if len(active) < wanted and now >= track.next_pod_at:
                active.append(self._create_pod(job))
        ready = sum(
            1
            for p in active
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        )
        status.update(
            active=len(active),
            succeeded=succeeded,
            failed=failed,
            ready=ready,
            terminating=len(terminating),
            uncountedTerminatedPods={},
        )
        if conditions:
            status["conditions"] = conditions
        for key in ("active", "succeeded", "failed"):
            if not status[key]:
                status.pop(key)  # omitted when zero, as the API serialises them
        if status != job.get("status"):
            meta = job["metadata"]
            self.sim.store.mutate(
                "jobs", meta["name"], meta["namespace"], lambda o: o.__setitem__("status", status)
            )

    def _default(self, job: dict[str, Any]) -> None:
        """What the API server adds on create: counts, the selector, the template's labels."""
        meta = job["metadata"]
        labels = {
            CONTROLLER_UID: meta["uid"],
            JOB_NAME: meta["name"],
            "controller-uid": meta["uid"],
            "job-name": meta["name"],
        }

        def change(obj: dict[str, Any]) -> None:
            spec = obj.setdefault("spec", {})
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completionMode", "NonIndexed")
            spec.setdefault("suspend", False)
            spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
            spec.setdefault("manualSelector", False)
            if not spec["manualSelector"]:
                spec["selector"] = {"matchLabels": {CONTROLLER_UID: meta["uid"]}}
                template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
                template_meta["labels"] = {**(template_meta.get("labels") or {}), **labels}
            pod_spec = spec["template"].setdefault("spec", {})
            pod_spec.setdefault("restartPolicy", "Never")
            pod_spec.setdefault("terminationGracePeriodSeconds", 30)
            pod_spec.setdefault("dnsPolicy", "ClusterFirst")
            pod_spec.setdefault("schedulerName", "default-scheduler")
            for container in pod_spec.get("containers") or []:
                container.setdefault("terminationMessagePath", "/dev/termination-log")
                container.setdefault("terminationMessagePolicy", "File")
                container.setdefault(
                    "imagePullPolicy",
                    "Always" if container.get("image", "").endswith(":latest") else "IfNotPresent",
                )

        self.sim.store.mutate("jobs", meta["name"], meta["namespace"], change)

    def _create_pod(self, job: dict[str, Any]) -> dict[str, Any]:
        meta = job["metadata"]
        template = job["spec"]["template"]
        spec = dict(template.get("spec") or {})
        pod = {
            "metadata": {
                "generateName": f"{meta['name']}-",
                "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        }
        rest.default(BY_RESOURCE["pods"], pod)  # as the API server defaults what it creates
        created = self.sim.store.create("pods", pod, meta["namespace"])
        events.record(
            self.sim,
            job,
            reason="SuccessfulCreate",
            message=f"Created pod: {created['metadata']['name']}",
            component="job-controller",
        )
        return created

    def _delete_pod(self, job: dict[str, Any], pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        rest.delete(self.sim, BY_RESOURCE["pods"], meta["name"], meta["namespace"], {})
        events.record(
            self.sim,
            job,
            reason="SuccessfulDelete",
            message=f"Deleted pod: {meta['name']}",
            component="job-controller",
        )

    def _expire(self, job: dict[str, Any], track: JobTrack, now: float) -> None:
        """ttlSecondsAfterFinished: the finished Job goes, its pods with it (background)."""
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        if track.finished_at is None:
            track.finished_at = now
        if now - track.finished_at >= float(ttl):
            self.sim.store.delete("jobs", job["metadata"]["name"], job["metadata"]["namespace"])


# ---------------------------------------------------------------------------- scheduling


def schedule(sim: SimCluster, pod: dict[str, Any]) -> None:
    """Bind a pending pod to a node, or say why none fits, as the default scheduler does."""
    store = sim.store
    meta, spec = pod["metadata"], pod.get("spec") or {}
    nodes = sorted(store.peek("nodes").values(), key=lambda n: n["metadata"]["name"])
    load: dict[str, int] = {}
    for other in store.peek("pods").values():
        node_name = (other.get("spec") or {}).get("nodeName")
        if node_name:
            load[node_name] = load.get(node_name, 0) + 1
    verdicts = [_unschedulable_because(sim, n, spec) for n in nodes]
    fitting = [n for n, why in zip(nodes, verdicts, strict=True) if not why]
    if not fitting:
        counts: dict[str, int] = {}
        for why in verdicts:
            counts[why] = counts.get(why, 0) + 1
        # The scheduler's FitError text: reasons counted, sorted as strings, then preemption's
        # verdict (as a real cluster reports it, e.g. "0/2 nodes are available: 1 node(s) had
        # untolerated taint {node.kubernetes.io/unreachable: }, ... preemption: 0/2 nodes are
        # available: 2 Preemption is not helpful for scheduling.").
        total = len(nodes)
        message = (
            f"0/{total} nodes are available: "
            + ", ".join(sorted(f"{count} {why}" for why, count in counts.items()))
            + f". preemption: 0/{total} nodes are available: {total} Preemption is not helpful "
            "for scheduling."
        )
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
        }
        if (pod.get("status") or {}).get("conditions") != [condition]:
            store.mutate(
                "pods",
                meta["name"],
                meta["namespace"],
                lambda o: o.setdefault("status", {}).__setitem__("conditions", [condition]),
            )
            events.record(
                sim,
                pod,
                reason="FailedScheduling",
                message=message,
                component="default-scheduler",
                warning=True,
            )
        return
    chosen = min(fitting, key=lambda n: (load.get(n["metadata"]["name"], 0), n["metadata"]["name"]))
    node_name = chosen["metadata"]["name"]

    def bind(obj: dict[str, Any]) -> None:
        obj["spec"]["nodeName"] = node_name
        obj.setdefault("status", {})["conditions"] = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_iso()}
        ]

    bound = store.mutate("pods", meta["name"], meta["namespace"], bind)
    events.record(
        sim,
        bound or pod,
        reason="Scheduled",
        message=f"Successfully assigned {meta['namespace']}/{meta['name']} to {node_name}",
        component="default-scheduler",
    )


def _unschedulable_because(sim: SimCluster, node: dict[str, Any], spec: dict[str, Any]) -> str:
    """Why the pod cannot go to the node, in the scheduler's words; empty when it can."""
    name = node["metadata"]["name"]
    if not sim.node_ready(name) or name not in sim.node_sims:
        return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
    tolerations = spec.get("tolerations") or []
    unschedulable = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    if (node.get("spec") or {}).get("unschedulable") and not tolerated(unschedulable, tolerations):
        return "node(s) were unschedulable"
    if not node_fits(node, spec):
        return "node(s) didn't match Pod's node affinity/selector"
    return ""


def _defaults_missing(job: dict[str, Any]) -> bool:
    spec = job.get("spec") or {}
    return "completions" not in spec or "backoffLimit" not in spec or "selector" not in spec


def _condition(kind: str, reason: str, message: str) -> dict[str, Any]:
    stamp = now_iso()
    return {
        "type": kind,
        "status": "True",
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }

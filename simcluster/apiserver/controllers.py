"""Controllers of the simulated cluster, run by one background loop: the DaemonSet controller,
the garbage collector (ownerReferences) and a kubelet per node (image pulls with the kubelet's
back-off and the runtime's real error texts, pod statuses, Events through recording.py,
node.status.images with the 50-image cap).

Scheduling rules are implemented here independently of the product's own targeting code.
"""

from __future__ import annotations

import collections
import random
import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simcluster.apiserver.store import now_iso
from simcluster.nodes import failures, messages
from simcluster.nodes.recording import EventRecorder
from simcluster.nodes.registry import Image, Ref, image_id, image_names, parse

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
SHELL_WORDS = ("/bin/sh", "sh", "/bin/bash", "bash", "sleep", "echo", "true", "cp", "/bin/true")
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff")
# The kubelet's image pull back-off (pkg/kubelet: backOffPeriod, MaxContainerBackOff) and how
# soon its pod worker syncs a pod again after an error; all scaled by the cluster's time_scale.
BACKOFF_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 300.0
RESYNC_SECONDS = 10.0


@dataclass
class PullFailure:
    image_key: str  # or "*": every image
    reason: str
    message: str | None  # None: the node's runtime's real text for `kind`
    nodes: set[str] | None
    times: int | None
    kind: str | None = None


@dataclass
class NodeSim:
    name: str
    runtime: str = "containerd"
    max_images: int = 50
    max_pods: int = 110
    status_lag: float = 0.0
    serialize_pulls: bool = False  # the kubelet's serializeImagePulls (its default is true)
    queue_free_at: float = 0.0  # with serialize_pulls: when the node's pull queue is free
    images: dict[str, tuple[Image, float]] = field(default_factory=dict)  # key -> (image, at)
    pulls: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (start, end)
    rendered: list[Any] = field(default_factory=list)
    static_images: list[dict[str, Any]] = field(default_factory=list)  # as given, pre-rendered
    dirty: bool = True


@dataclass(frozen=True)
class PullRecord:
    """One thing a simulated kubelet did about an image, for tests to check reports against."""

    node: str
    image: str  # as written in the pod spec
    outcome: str  # "pulled", "present" or "failed"
    seconds: float | None = None  # as the Pulled event says
    seconds_including_waiting: float | None = None
    size_bytes: int | None = None
    kind: str | None = None  # failures.KINDS entry of a failure (None: a custom message)
    message: str = ""  # the runtime's error text of a failure
    at: float = 0.0  # monotonic


@dataclass
class ContainerRun:
    state: str = "waiting"  # waiting, pulling, done, crashed, failing
    reason: str = "PodInitializing"
    message: str = ""
    image_id: str = ""
    restarts: int = 0
    started_at: str = ""  # when the container started (RFC 3339)
    # the pull in flight: when it started and ends (monotonic), the error it ends with
    attempt_started: float = 0.0  # requested
    attempt_began: float = 0.0  # the runtime started pulling (after the node's queue)
    attempt_ends: float | None = None
    attempt_error: str | None = None
    pulls_failed: int = 0
    last_error: str = ""
    retry_at: float = 0.0  # the image back-off runs until
    next_sync: float = 0.0  # the pod worker comes back to the pod at
    attempt_kind: str | None = None
    events: list[tuple[str, str, bool]] = field(default_factory=list)  # (reason, msg, warning)


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
        self.runs: dict[str, dict[str, ContainerRun]] = {}  # pod uid -> container -> run
        self.volume_runs: dict[str, dict[str, ContainerRun]] = {}
        self.finished: set[str] = set()
        self.started: dict[str, str] = {}  # pod uid -> status.startTime
        self.recorder = EventRecorder(sim)
        self.pull_log: collections.deque[PullRecord] = collections.deque(maxlen=100_000)
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
            for node_name in sorted(eligible - set(by_node)):
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
        sim_node = self.sim.node_sims.get(node_name)
        on_node = sum(
            1
            for p in store.peek("pods").values()
            if (p.get("spec") or {}).get("nodeName") == node_name
        )
        status: dict[str, Any] = {"phase": "Pending"}
        if sim_node is not None and on_node >= sim_node.max_pods:
            status["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Too many pods.",
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
                self.sim.runtime.sync(pod, node_sim, now, pull=self._pull)
                continue  # the real CLI runs in it (runtime.py)
            if (
                not self._owned_by_ds(pod)
                and not owned_by("Job", pod)
                and not pod["metadata"].get("labels", {}).get("sim/run")
            ):
                continue  # pods created by tests as plain objects are left alone
            status = self._run_pod(pod, node_sim, now)
            if status["phase"] == "Running":
                self.finished.add(uid)
            if status != pod.get("status"):
                store.mutate("pods", name, ns, lambda o, s=status: o.__setitem__("status", s))
        self.sim.runtime.reap(live, now)
        for uid in list(self.runs):
            if uid not in live:
                self.runs.pop(uid, None)
                self.volume_runs.pop(uid, None)
        self.finished &= live

        if any(uid not in live for uid in self.started):  # pods gone: drop what was theirs
            self.started = {uid: at for uid, at in self.started.items() if uid in live}
            self.recorder.forget(live)

    def _owned_by_ds(self, pod: dict[str, Any]) -> bool:
        return owned_by("DaemonSet", pod)

    def _run_pod(self, pod: dict[str, Any], node: NodeSim, now: float) -> dict[str, Any]:
        uid = pod["metadata"]["uid"]
        spec = pod["spec"]
        runs = self.runs.setdefault(uid, {})
        volume_runs = self.volume_runs.setdefault(uid, {})
        filled: set[str] = set()
        blocked = False
        for volume in spec.get("volumes") or []:
            ref = (volume.get("image") or {}).get("reference")
            if ref:
                run = volume_runs.setdefault(ref, ContainerRun())
                self._pull(
                    run,
                    ref,
                    node,
                    now,
                    policy=(volume["image"].get("pullPolicy") or "IfNotPresent"),
                )
                self._record(pod, node, run, field_path="")
                if run.state != "done":
                    blocked = True
        init_statuses = []
        for container in spec.get("initContainers") or []:
            run = runs.setdefault(container["name"], ContainerRun())
            if not blocked:
                self._advance(run, container, node, now, filled, spec, final=True)
                self._record(
                    pod, node, run, field_path=f"spec.initContainers{{{container['name']}}}"
                )
                if run.state != "done":
                    blocked = True
            init_statuses.append(_status(container, run, init=True))
        statuses = []
        volume_failure = next((r for r in volume_runs.values() if r.state == "failing"), None)
        for container in spec.get("containers") or []:
            run = runs.setdefault(
                container["name"],
                ContainerRun(reason="PodInitializing" if init_statuses else "ContainerCreating"),
            )
            if not blocked:
                self._advance(run, container, node, now, filled, spec, final=False)
                self._record(pod, node, run, field_path=f"spec.containers{{{container['name']}}}")
            elif volume_failure is not None and not init_statuses:
                run.reason, run.message = volume_failure.reason, volume_failure.message
            statuses.append(_status(container, run, init=False))
        all_running = not blocked and all(
            runs[c["name"]].state == "done" for c in spec.get("containers") or []
        )
        conditions = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": str(not blocked)},
            {"type": "ContainersReady", "status": str(all_running)},
            {"type": "Ready", "status": str(all_running)},
        ]
        status: dict[str, Any] = {
            "phase": "Running" if all_running else "Pending",
            "conditions": conditions,
            "hostIP": "10.0.0.1",
            "startTime": self.started.setdefault(uid, now_iso()),
            "containerStatuses": statuses,
        }
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        return status

    def _advance(
        self,
        run: ContainerRun,
        container: dict[str, Any],
        node: NodeSim,
        now: float,
        filled: set[str],
        spec: dict[str, Any],
        *,
        final: bool,
    ) -> None:
        if run.state in ("done", "crashed"):
            if run.state == "done" and final:
                self._note_fills(container, spec, filled)
            return
        image_ref = container["image"]
        self._pull(
            run, image_ref, node, now, policy=container.get("imagePullPolicy") or "IfNotPresent"
        )
        if run.state != "done":
            return
        command = (container.get("command") or []) + (container.get("args") or [])
        image = self.sim.registry.lookup(image_ref)
        needs_shell = bool(command) and command[0] in SHELL_WORDS
        in_filled = bool(command) and any(command[0].startswith(p + "/") for p in filled)
        if needs_shell and image is not None and not image.has_shell and not in_filled:
            run.state, run.reason = "crashed", "CrashLoopBackOff"
            run.message = f'exec: "{command[0]}": stat {command[0]}: no such file or directory'
            run.restarts += 1
            return
        run.started_at = run.started_at or now_iso()
        run.events.append(("Created", f"Created container: {container['name']}", False))
        run.events.append(("Started", f"Started container {container['name']}", False))
        if final:
            self._note_fills(container, spec, filled)

    def _note_fills(
        self, container: dict[str, Any], spec: dict[str, Any], filled: set[str]
    ) -> None:
        words = " ".join((container.get("command") or []) + (container.get("args") or []))
        empty_dirs = {v["name"] for v in spec.get("volumes") or [] if "emptyDir" in v}
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") in empty_dirs and mount["mountPath"] in words:
                filled.add(mount["mountPath"])

    def _pull(self, run: ContainerRun, ref: str, node: NodeSim, now: float, *, policy: str) -> None:
        """One kubelet sync of a container's image, as pkg/kubelet/images/image_manager.go does
        it: present -> done; else Pulling, then Pulled or Failed; after a failure the pod is
        synced again only every ~10 s (scaled), and while the per-image back-off (10 s doubling
        to 300 s) runs, the sync says ImagePullBackOff. Events are queued on `run.events`."""
        if run.state == "done":
            return
        parsed = parse(ref)
        failure = self.sim.pull_failure(parsed.key if parsed else ref, node.name)
        if parsed is None or (failure is not None and failure.reason == "InvalidImageName"):
            text = messages.INVALID_IMAGE_NAME.message.format(image=ref)
            if failure is not None and failure.message:
                text = failure.message
            self._refuse(run, node, now, "InvalidImageName", text, event="InspectFailed")
            return
        present = parsed.key in node.images
        if present and policy != "Always":
            image = node.images[parsed.key][0]
            if run.state != "done":
                message = messages.ALREADY_PRESENT.message.format(image=ref)
                run.events.append(("Pulled", message, False))
                size = image.size_bytes
                self.pull_log.append(PullRecord(node.name, ref, "present", size_bytes=size, at=now))
            run.state, run.image_id = "done", image_id(image, node.runtime)
            return
        if not present and policy == "Never":
            text = messages.NEVER_PULL.message.format(image=ref)
            self._refuse(run, node, now, "ErrImageNeverPull", text, event="ErrImageNeverPull")
            return
        if run.attempt_ends is None:
            if run.state == "failing" and now < run.next_sync:
                return  # the pod worker has not come back to this pod yet
            if now < run.retry_at:
                self._back_off(run, node, ref, now)
                return
            self._start_attempt(run, ref, parsed, node, now, failure)
        assert run.attempt_ends is not None
        if now < run.attempt_ends:
            if run.state != "failing":
                run.state, run.reason = "pulling", run.reason or "PodInitializing"
            return
        self._end_attempt(run, ref, parsed, node, now)

    def _start_attempt(
        self,
        run: ContainerRun,
        ref: str,
        parsed: Ref,
        node: NodeSim,
        now: float,
        failure: PullFailure | None,
    ) -> None:
        scale = self.sim.time_scale
        run.events.append(("Pulling", messages.PULLING.message.format(image=ref), False))
        kind, error = self._pull_error(ref, parsed, node, now, failure)
        run.attempt_started = run.attempt_began = now
        run.attempt_error, run.attempt_kind = error, kind
        if error is not None:
            run.attempt_ends = now + failures.fail_after(kind) * scale
            return
        image = self.sim.registry.lookup(ref)
        assert image is not None
        if parsed.key in node.images:  # imagePullPolicy Always: only the manifest is fetched
            seconds = min(0.5, image.pull_seconds) * self.pull_jitter(node.name) * scale
            run.attempt_ends = now + seconds
            return
        done_at = node.pulls.get(parsed.key, (now, 0.0))[1]
        if node.serialize_pulls:
            # One pull at a time (the kubelet's serializeImagePulls): this one waits for the
            # queue; behind a pull of the same image only the manifest is left to fetch.
            seconds = self.pull_seconds(image, node.name)
            if done_at > now:
                seconds = min(0.5 * self.pull_jitter(node.name) * scale, seconds)
            began = max(now, node.queue_free_at, done_at if done_at > now else now)
            done_at = node.queue_free_at = began + seconds
            node.pulls[parsed.key] = (began, done_at)
        elif done_at <= now:  # no pull of it under way on this node: this one starts it
            began, done_at = now, now + self.pull_seconds(image, node.name)
            node.pulls[parsed.key] = (began, done_at)
        else:  # joins the pull under way: the runtime fetches the same layers once
            began = now
        run.attempt_began, run.attempt_ends = began, done_at

    def _pull_error(
        self, ref: str, parsed: Ref, node: NodeSim, now: float, failure: PullFailure | None
    ) -> tuple[str | None, str | None]:
        """(failure kind, runtime message) if this attempt is to fail, else (None, None)."""
        platform = self._platform(node)

        def said(kind: str) -> str:
            return failures.runtime_message(
                kind, runtime=node.runtime, image=ref, ref=parsed.key, platform=platform
            )

        if failure is not None:
            if failure.times is not None:
                failure.times -= 1
            return failure.kind, failure.message or said(failure.kind or "tag-not-found")
        outage = self.sim.registry.outage(parsed, now)
        if outage is not None:
            return outage.kind, said(outage.kind)
        missing = self.sim.registry.missing_kind(parsed)
        if missing is not None:
            return missing, said(missing)
        image = self.sim.registry.lookup(ref)
        if image is not None and image.failure is not None:
            return image.failure, said(image.failure)
        if image is not None and not platform.supported_by(image.platforms):
            return "no-platform-variant", said("no-platform-variant")
        return None, None

    def _end_attempt(
        self, run: ContainerRun, ref: str, parsed: Ref, node: NodeSim, now: float
    ) -> None:
        assert run.attempt_ends is not None
        took = run.attempt_ends - run.attempt_began
        waited = run.attempt_ends - run.attempt_started
        error, run.attempt_ends = run.attempt_error, None
        if error is not None:
            run.pulls_failed += 1
            backoff = min(BACKOFF_SECONDS * 2 ** (run.pulls_failed - 1), MAX_BACKOFF_SECONDS)
            run.retry_at = now + backoff * self.sim.time_scale
            run.next_sync = now + self._resync(node)
            run.last_error = error
            run.state, run.reason, run.message = "failing", "ErrImagePull", error
            self.pull_log.append(
                PullRecord(node.name, ref, "failed", kind=run.attempt_kind, message=error, at=now)
            )
            failed = messages.FAILED.message.format(image=ref, error=error)
            run.events.append(("Failed", failed, True))
            run.events.append(("Failed", "Error: ErrImagePull", True))
            return
        image = self.sim.registry.lookup(ref)
        assert image is not None
        if parsed.key not in node.images:
            node.images[parsed.key] = (image, now)
            node.images[f"{image.name}@{image.digest}"] = (image, now)
            node.dirty = True
        if node.pulls.get(parsed.key, (0.0, now + 1))[1] <= now:
            node.pulls.pop(parsed.key, None)
        pulled = messages.pulled_event(
            image=ref,
            seconds=took,
            seconds_including_waiting=waited,
            size_bytes=image.size_bytes,
        )
        run.events.append((pulled.reason, pulled.message, False))
        self.pull_log.append(
            PullRecord(node.name, ref, "pulled", took, waited, image.size_bytes, at=now)
        )
        run.state, run.image_id = "done", image_id(image, node.runtime)

    def _back_off(self, run: ContainerRun, node: NodeSim, ref: str, now: float) -> None:
        run.state, run.reason = "failing", "ImagePullBackOff"
        run.message = messages.WAITING_BACKOFF_1_32[1].format(
            image=ref, reason="ErrImagePull", error=run.last_error
        )
        run.next_sync = now + self._resync(node)
        run.events.append(("BackOff", messages.BACKOFF.message.format(image=ref), False))
        run.events.append(("Failed", "Error: ImagePullBackOff", True))

    def _refuse(
        self, run: ContainerRun, node: NodeSim, now: float, reason: str, text: str, *, event: str
    ) -> None:
        """A pull the kubelet will not even try (bad reference, policy Never)."""
        run.state, run.reason, run.message = "failing", reason, text
        if now >= run.next_sync:
            run.next_sync = now + self._resync(node)
            run.events.append((event, text, True))
            run.events.append(("Failed", f"Error: {reason}", True))

    def _record(
        self, pod: dict[str, Any], node: NodeSim, run: ContainerRun, *, field_path: str
    ) -> None:
        if self.sim.kubelet_events:
            for reason, message, warning in run.events:
                self.recorder.record(
                    pod,
                    host=node.name,
                    reason=reason,
                    message=message,
                    warning=warning,
                    field_path=field_path,
                )
        run.events.clear()

    def _platform(self, node: NodeSim) -> failures.Platform:
        obj = self.sim.store.peek("nodes").get(("", node.name)) or {}
        labels = (obj.get("metadata") or {}).get("labels") or {}
        info = (obj.get("status") or {}).get("nodeInfo") or {}
        return failures.platform_of(labels, info)

    def pull_jitter(self, node_name: str) -> float:
        """Per node and repeatable: some nodes pull faster than others (0.75-1.24)."""
        return 0.75 + (zlib.crc32(node_name.encode()) % 50) / 100

    def pull_seconds(self, image: Image, node_name: str) -> float:
        """How long a pull of `image` takes on the node, in (scaled) seconds."""
        return image.pull_seconds * self.pull_jitter(node_name) * self.sim.time_scale

    def _resync(self, node: NodeSim) -> float:
        """When the pod worker syncs a pod again after an error: 10 s plus jitter, scaled."""
        return RESYNC_SECONDS * (0.5 + self.pull_jitter(node.name) / 2) * self.sim.time_scale

    def _land_images(self, node: NodeSim, now: float) -> None:
        """Write node.status.images once pulls are older than the node's status lag."""
        if not node.dirty:
            return
        visible: dict[str, Image] = {}
        lagging = False
        for image, at in node.images.values():
            if now - at >= node.status_lag:
                visible[f"{image.name}@{image.digest}"] = image
            else:
                lagging = True
        entries = [
            {"names": image_names(i, node.runtime), "sizeBytes": i.size_bytes}
            for i in visible.values()
        ] + list(node.static_images)
        entries.sort(key=lambda e: (-e["sizeBytes"], e["names"][0]))
        rendered = entries[: node.max_images]
        node.dirty = lagging
        if rendered != node.rendered:
            node.rendered = rendered

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


def _status(container: dict[str, Any], run: ContainerRun, *, init: bool) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": container["name"],
        "image": container["image"],
        "imageID": run.image_id,
        "restartCount": run.restarts,
        "ready": False,
        "started": False,
    }
    if run.state == "done" and init:
        status["state"] = {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": run.started_at,
                "finishedAt": run.started_at,
            }
        }
    elif run.state == "done":
        status["state"] = {"running": {"startedAt": run.started_at or now_iso()}}
        status["ready"] = status["started"] = True
    elif run.state == "crashed":
        status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": run.message}}
        status["lastState"] = {
            "terminated": {"exitCode": 128, "reason": "StartError", "message": run.message}
        }
    else:
        waiting = {"reason": run.reason or "PodInitializing"}
        if run.message:
            waiting["message"] = run.message
        status["state"] = {"waiting": waiting}
    return status

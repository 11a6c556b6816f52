"""A node's kubelet logic, free of any API server: how it syncs a pod (volumes, then init
containers one at a time, then containers), pulls images as pkg/kubelet/images/image_manager.go
does (present, Pulling, Pulled or Failed, the image back-off 10 s doubling to 300 s, the pod
worker's resync after an error), the real runtime texts (messages.py, failures.py), the pod
status it reports and node.status.images with the 50-image cap. Time is scaled by the world's
`time_scale`.

Used by both kubelets: the in-process one of the simulated API server (apiserver/controllers.py,
writing its store) and the HTTP one (kubelet.py, writing through the API like a real kubelet).
"""

from __future__ import annotations

import collections
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from simcluster.nodes import failures, messages
from simcluster.nodes.registry import Image, Ref, Registry, image_id, image_names, parse

SHELL_WORDS = ("/bin/sh", "sh", "/bin/bash", "bash", "sleep", "echo", "true", "cp", "/bin/true")
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff")
# The kubelet's image pull back-off (pkg/kubelet: backOffPeriod, MaxContainerBackOff) and how
# soon its pod worker syncs a pod again after an error; all scaled by the cluster's time_scale.
BACKOFF_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 300.0
RESYNC_SECONDS = 10.0


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class World(Protocol):
    """What a kubelet needs of the simulation around it: the registry, the injected pull
    failures and the time scale (SimCluster is one)."""

    registry: Registry
    time_scale: float

    def pull_failure(self, key: str, node: str) -> PullFailure | None: ...


# (pod, host, reason, message, warning, field_path): one kubelet event to record
EventSink = Callable[[dict[str, Any], str, str, str, bool, str], None]


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

    def preload(self, registry: Registry, refs: list[str], *, at: float) -> None:
        """`refs` already on the node since `at` (monotonic), by their key and their digest, as
        a node that registers with images holds them."""
        for ref in refs:
            image, parsed = registry.lookup(ref), parse(ref)
            if image is None or parsed is None:
                raise ValueError(f"invalid image {ref!r}")
            self.images[parsed.key] = (image, at)
            self.images[f"{image.name}@{image.digest}"] = (image, at)


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


def make_pull_failure(
    image: str,
    *,
    kind: str | None,
    reason: str,
    message: str | None,
    nodes: set[str] | None,
    times: int | None,
) -> PullFailure:
    """A pull failure as `SimCluster.fail_pull` and `NodeWorld.fail_pull` document it."""
    if kind is not None and kind not in failures.KINDS:
        raise ValueError(f"unknown pull failure kind {kind!r}; one of {sorted(failures.KINDS)}")
    if kind == "invalid-reference":
        reason = "InvalidImageName"
    if message is None and kind is None and reason != "InvalidImageName":
        kind = "tag-not-found"
    parsed = parse(image)
    return PullFailure(parsed.key if parsed else image, reason, message, nodes, times, kind)


def find_pull_failure(failures_: list[PullFailure], key: str, node: str) -> PullFailure | None:
    for failure in failures_:
        if (
            failure.image_key in (key, "*")
            and (failure.nodes is None or node in failure.nodes)
            and (failure.times is None or failure.times > 0)
        ):
            return failure
    return None


class PodWorker:
    """The kubelet's pod sync for any number of nodes: `run_pod` advances one pod by what has
    happened since its last call and returns the pod status to report."""

    def __init__(
        self,
        *,
        world: World,
        platform: Callable[[NodeSim], failures.Platform],
        events: EventSink | None,
    ) -> None:
        self.world = world
        self.platform = platform
        self.events = events
        self.runs: dict[str, dict[str, ContainerRun]] = {}  # pod uid -> container -> run
        self.volume_runs: dict[str, dict[str, ContainerRun]] = {}
        self.started: dict[str, str] = {}  # pod uid -> status.startTime
        self.pull_log: collections.deque[PullRecord] = collections.deque(maxlen=100_000)

    def forget(self, live: set[str]) -> None:
        """Drop what was kept for pods that are gone (uids not in `live`)."""
        for uid in [u for u in self.runs if u not in live]:
            self.runs.pop(uid, None)
            self.volume_runs.pop(uid, None)
        if any(uid not in live for uid in self.started):
            self.started = {uid: at for uid, at in self.started.items() if uid in live}

    def run_pod(self, pod: dict[str, Any], node: NodeSim, now: float) -> dict[str, Any]:
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
                self.pull(
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
            init_statuses.append(container_status(container, run, init=True))
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
            statuses.append(container_status(container, run, init=False))
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
        self.pull(
            run, image_ref, node, now, policy=container.get("imagePullPolicy") or "IfNotPresent"
        )
        if run.state != "done":
            return
        command = (container.get("command") or []) + (container.get("args") or [])
        image = self.world.registry.lookup(image_ref)
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

    def pull(self, run: ContainerRun, ref: str, node: NodeSim, now: float, *, policy: str) -> None:
        """One kubelet sync of a container's image, as pkg/kubelet/images/image_manager.go does
        it: present -> done; else Pulling, then Pulled or Failed; after a failure the pod is
        synced again only every ~10 s (scaled), and while the per-image back-off (10 s doubling
        to 300 s) runs, the sync says ImagePullBackOff. Events are queued on `run.events`."""
        if run.state == "done":
            return
        parsed = parse(ref)
        failure = self.world.pull_failure(parsed.key if parsed else ref, node.name)
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
        scale = self.world.time_scale
        run.events.append(("Pulling", messages.PULLING.message.format(image=ref), False))
        kind, error = self._pull_error(ref, parsed, node, now, failure)
        run.attempt_started = run.attempt_began = now
        run.attempt_error, run.attempt_kind = error, kind
        if error is not None:
            run.attempt_ends = now + failures.fail_after(kind) * scale
            return
        image = self.world.registry.lookup(ref)
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
        platform = self.platform(node)

        def said(kind: str) -> str:
            return failures.runtime_message(
                kind, runtime=node.runtime, image=ref, ref=parsed.key, platform=platform
            )

        if failure is not None:
            if failure.times is not None:
                failure.times -= 1
            return failure.kind, failure.message or said(failure.kind or "tag-not-found")
        outage = self.world.registry.outage(parsed, now)
        if outage is not None:
            return outage.kind, said(outage.kind)
        missing = self.world.registry.missing_kind(parsed)
        if missing is not None:
            return missing, said(missing)
        image = self.world.registry.lookup(ref)
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
            run.retry_at = now + backoff * self.world.time_scale
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
        image = self.world.registry.lookup(ref)
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
        if self.events is not None:
            for reason, message, warning in run.events:
                self.events(pod, node.name, reason, message, warning, field_path)
        run.events.clear()

    def pull_jitter(self, node_name: str) -> float:
        """Per node and repeatable: some nodes pull faster than others (0.75-1.24)."""
        return 0.75 + (zlib.crc32(node_name.encode()) % 50) / 100

    def pull_seconds(self, image: Image, node_name: str) -> float:
        """How long a pull of `image` takes on the node, in (scaled) seconds."""
        return image.pull_seconds * self.pull_jitter(node_name) * self.world.time_scale

    def _resync(self, node: NodeSim) -> float:
        """When the pod worker syncs a pod again after an error: 10 s plus jitter, scaled."""
        return RESYNC_SECONDS * (0.5 + self.pull_jitter(node.name) / 2) * self.world.time_scale

    def render_images(self, node: NodeSim, now: float) -> list[Any] | None:
        """node.status.images once pulls are older than the node's status lag: the new list
        when it changed since the last call, else None."""
        if not node.dirty:
            return None
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
        if rendered == node.rendered:
            return None
        node.rendered = rendered
        return rendered


def container_status(container: dict[str, Any], run: ContainerRun, *, init: bool) -> dict[str, Any]:
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

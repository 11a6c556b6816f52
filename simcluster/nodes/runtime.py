"""The pod runtime of the simulated cluster: a pod whose one container is the awaiter image,
started with the image's own entrypoint, runs the REAL image-awaiter CLI as a local process in
a sandbox (sandboxes.py: env, ServiceAccount kubeconfig, volumes, termination message file).

stdout and stderr become the pod log (appended as the process writes), the exit code and the
termination message the container's `terminated` state. Deleting the pod sends SIGTERM, then
SIGKILL after the grace period, as the kubelet does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from simcluster.nodes import sandboxes
from simcluster.nodes.pulling import ContainerRun, NodeSim, now_iso
from simcluster.nodes.registry import Registry, parse

# kubelet's limits, kubernetes pkg/kubelet/container/runtime.go:
# MaxContainerTerminationMessageLength = 1024 * 4 (the file),
# MaxContainerTerminationMessageLogLength = 1024 * 2 and
# MaxContainerTerminationMessageLogLines = 80 (FallbackToLogsOnError's tail of the log).
MESSAGE_FILE_LIMIT = 4096
MESSAGE_LOG_LIMIT = 2048
MESSAGE_LOG_LINES = 80
# The repository whose pods run the real CLI (the chart's image.repository), at any tag.
DEFAULT_AWAITER_IMAGE = "ghcr.io/image-awaiter/image-awaiter"
# The distroless Python base (~50 MB) plus the 19 MB application layer README measures.
AWAITER_IMAGE_BYTES = 70 * 1024**2

# A pod deleted with no grace period is gone from the API at once; its kubelet still stops the
# container with SIGTERM and gives it kuberuntime's minimum grace before SIGKILL
# (minimumGracePeriodInSeconds, pkg/kubelet/kuberuntime/kuberuntime_container.go).
FORCED_GRACE_SECONDS = 2.0

Pull = Callable[..., None]


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    sandbox: sandboxes.Sandbox
    reader: threading.Thread
    started_at: str
    signalled_at: float | None = None
    kill_at: float | None = None


@dataclass
class PodRun:
    pull: ContainerRun = field(default_factory=lambda: ContainerRun(reason="ContainerCreating"))
    process: Process | None = None
    terminated: dict[str, Any] | None = None
    events: set[str] = field(default_factory=set)  # reasons already recorded once
    pull_started: float | None = None


class Host(Protocol):
    """Where a runtime's pods live: the simulated API server's store (`StoreHost`) or any API
    server over HTTP (kubelet.ApiHost)."""

    @property
    def registry(self) -> Registry: ...

    @property
    def awaiter_image(self) -> str: ...

    @property
    def cluster(self) -> sandboxes.Cluster: ...

    def write_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None: ...

    def record(
        self, pod: dict[str, Any], *, reason: str, message: str, node: str, warning: bool,
        field_path: str,
    ) -> None: ...  # fmt: skip

    def remove(self, pod: dict[str, Any]) -> None:
        """The pod's containers are stopped: it goes (graceful deletion's end)."""

    def append_log(self, key: tuple[str, str], chunk: bytes) -> None: ...

    def log(self, key: tuple[str, str]) -> bytes: ...

    def wake(self) -> None:
        """Something changed that the kubelet loop should look at soon."""


class Runtime:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.runs: dict[str, PodRun] = {}  # pod uid -> run
        self.keys: dict[str, tuple[str, str]] = {}  # pod uid -> (namespace, name)
        self.stopping = False

    # ------------------------------------------------------------------ which pods

    def handles(self, pod: dict[str, Any]) -> bool:
        return runs_awaiter(pod, self.host.awaiter_image)

    # ------------------------------------------------------------------ the kubelet's sync

    def sync(self, pod: dict[str, Any], node: NodeSim, now: float, *, pull: Pull) -> None:
        """Advance one pod (called by the kubelet loop with the store lock held)."""
        uid = pod["metadata"]["uid"]
        run = self.runs.setdefault(uid, PodRun())
        self.keys[uid] = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        if run.terminated is not None:
            self._remove_if_deleting(pod)
            return
        if run.process is None:
            if "deletionTimestamp" in pod["metadata"]:
                self.host.remove(pod)
                return
            self._prepare(pod, run, node, now, pull=pull)
            return
        self._signal(pod, run.process, now)
        if run.process.popen.poll() is not None and not run.process.reader.is_alive():
            code = run.process.popen.returncode
            self._finish(pod, run, exit_code=code if code >= 0 else 128 - code)

    def _prepare(
        self, pod: dict[str, Any], run: PodRun, node: NodeSim, now: float, *, pull: Pull
    ) -> None:
        container = pod["spec"]["containers"][0]
        ref = container["image"]
        if not self.host.registry.known(ref):
            self.host.registry.add(
                ref, pull_seconds=0.2, size_bytes=AWAITER_IMAGE_BYTES, has_shell=False
            )
        parsed = parse(ref)
        if not run.events & {"Pulling", "Pulled"} and parsed and parsed.key not in node.images:
            run.pull_started = now
            self._event(pod, run, "Pulling", f'Pulling image "{ref}"', node=node.name)
        pull(run.pull, ref, node, now, policy=container.get("imagePullPolicy") or "IfNotPresent")
        if run.pull.state == "failing":
            message = (
                f'Back-off pulling image "{ref}"'
                if run.pull.reason == "ImagePullBackOff"
                else f'Failed to pull image "{ref}": {run.pull.message}'
            )
            reason = "BackOff" if run.pull.reason == "ImagePullBackOff" else "Failed"
            self._event(pod, run, reason, message, node=node.name, warning=True)
            self._write_status(pod, _pending(container, run.pull.reason, run.pull.message))
            return
        if run.pull.state != "done":
            self._write_status(pod, _pending(container, "ContainerCreating", ""))
            return
        if run.pull_started is None:
            self._event(
                pod,
                run,
                "Pulled",
                f'Container image "{ref}" already present on machine',
                node=node.name,
            )
        else:
            image = self.host.registry.lookup(ref)
            took = f"{(now - run.pull_started) * 1000:.0f}ms"
            size = image.size_bytes if image else 0
            self._event(
                pod,
                run,
                "Pulled",
                f'Successfully pulled image "{ref}" in {took} ({took} including waiting). '
                f"Image size: {size} bytes.",
                node=node.name,
            )
        try:
            run.process = self._start(pod)
        except sandboxes.MountError as error:
            self._event(pod, run, "FailedMount", str(error), node=node.name, warning=True)
            self._write_status(pod, _pending(container, "ContainerCreating", ""))
            return
        except sandboxes.ConfigError as error:
            self._event(pod, run, "Failed", f"Error: {error}", node=node.name, warning=True)
            self._write_status(pod, _pending(container, "CreateContainerConfigError", str(error)))
            return
        except (KeyError, TypeError, ValueError, OSError) as error:  # never the controller loop
            message = f"failed to create containerd task: {error!r}"
            self._event(pod, run, "Failed", f"Error: {message}", node=node.name, warning=True)
            self._write_status(pod, _pending(container, "RunContainerError", message))
            return
        name = container["name"]
        self._event(pod, run, "Created", f"Created container: {name}", node=node.name)
        self._event(pod, run, "Started", f"Started container {name}", node=node.name)
        self._write_status(pod, _running(container, run.process.started_at, run.pull.image_id))

    # ------------------------------------------------------------------ the process

    def _start(self, pod: dict[str, Any]) -> Process:
        meta = pod["metadata"]
        sandbox = sandboxes.build(self.host.cluster, pod)
        popen = subprocess.Popen(
            [sys.executable, "-m", "image_awaiter", *sandbox.argv],
            cwd=sandbox.root,
            env=sandbox.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        key = (meta["namespace"], meta["name"])
        reader = threading.Thread(
            target=self._read_log, args=(popen, key), name=f"sim-log-{meta['name']}", daemon=True
        )
        reader.start()
        return Process(popen, sandbox, reader, started_at=now_iso())

    def _read_log(self, popen: subprocess.Popen[bytes], key: tuple[str, str]) -> None:
        assert popen.stdout is not None
        fd = popen.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self.host.append_log(key, chunk)
        popen.stdout.close()
        self.host.wake()  # the kubelet loop may now finish the pod

    def _signal(self, pod: dict[str, Any], process: Process, now: float) -> None:
        """SIGTERM once the pod is being deleted, SIGKILL when its grace period is over."""
        meta = pod["metadata"]
        if "deletionTimestamp" not in meta or process.popen.poll() is not None:
            return
        if process.signalled_at is None:
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
            process.signalled_at, process.kill_at = now, now + float(grace)
            _send(process.popen, signal.SIGTERM if grace else signal.SIGKILL)
            name = pod["spec"]["containers"][0]["name"]
            self.host.record(
                pod,
                reason="Killing",
                message=f"Stopping container {name}",
                node=pod["spec"].get("nodeName", ""),
                warning=False,
                field_path=f"spec.containers{{{name}}}",
            )
        elif process.kill_at is not None and now >= process.kill_at:
            _send(process.popen, signal.SIGKILL)
            process.kill_at = None

    def _finish(
        self,
        pod: dict[str, Any],
        run: PodRun,
        *,
        exit_code: int,
    ) -> None:
        container = pod["spec"]["containers"][0]
        process = run.process
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": process.started_at if process else now_iso(),
            "finishedAt": now_iso(),
            "containerID": f"containerd://{pod['metadata']['uid'].replace('-', '')}",
        }
        if process is not None:
            message = self._message(pod, container, process, exit_code)
            if message:
                terminated["message"] = message
            process.sandbox.remove()
        run.terminated = terminated
        self._write_status(pod, _terminated(container, terminated, run.pull.image_id))
        self._remove_if_deleting(pod)

    def _message(
        self, pod: dict[str, Any], container: dict[str, Any], process: Process, exit_code: int
    ) -> str:
        """The termination message as the kubelet reads it (kuberuntime_container.go)."""
        with contextlib.suppress(OSError):
            with process.sandbox.message_file.open("rb") as handle:
                text = handle.read(MESSAGE_FILE_LIMIT)
            if text:
                return text.decode(errors="replace")
        fallback = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        if not fallback or exit_code == 0:
            return ""
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        log = self.host.log(key)
        tail = b"".join(log.splitlines(keepends=True)[-MESSAGE_LOG_LINES:])
        return tail[-MESSAGE_LOG_LIMIT:].decode(errors="replace")

    def running(self, key: tuple[str, str]) -> bool:
        """Whether the pod (namespace, name) has a process that may still write to its log."""
        return (
            any(
                k == key and self.runs.get(uid) is not None and self.runs[uid].terminated is None
                for uid, k in self.keys.items()
            )
            and not self.stopping
        )

    # ------------------------------------------------------------------ deletion

    def _remove_if_deleting(self, pod: dict[str, Any]) -> None:
        if "deletionTimestamp" in pod["metadata"]:
            self.host.remove(pod)

    def reap(self, live: set[str], now: float) -> None:
        """Processes whose pod is gone (garbage-collected, force-deleted) are stopped."""
        for uid in list(self.runs):
            if uid in live:
                continue
            run = self.runs[uid]
            process = run.process
            if process is None or run.terminated is not None:
                self.runs.pop(uid)
                self.keys.pop(uid, None)
                continue
            if process.signalled_at is None:
                process.signalled_at, process.kill_at = now, now + FORCED_GRACE_SECONDS
                _send(process.popen, signal.SIGTERM)
            elif process.kill_at is not None and now >= process.kill_at:
                _send(process.popen, signal.SIGKILL)
                process.kill_at = None
            if process.popen.poll() is not None:
                process.sandbox.remove()
                self.runs.pop(uid)
                self.keys.pop(uid, None)

    def stop_all(self, *, grace: float = 5.0) -> None:
        """SIGTERM every process, SIGKILL those still there after `grace` (SimCluster.stop)."""
        self.stopping = True
        self.host.wake()  # followers of logs end their streams
        processes = [r.process for r in list(self.runs.values()) if r.process is not None]
        for process in processes:
            _send(process.popen, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            if process.popen.poll() is None:
                _send(process.popen, signal.SIGKILL)
                process.popen.wait()
            process.reader.join(timeout=5)
            process.sandbox.remove()

    # ------------------------------------------------------------------ status and events

    def _write_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        status = {
            **status,
            "hostIP": "10.0.0.1",
            "hostIPs": [{"ip": "10.0.0.1"}],
            "podIP": "10.244.0.10",
            "podIPs": [{"ip": "10.244.0.10"}],
            "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
        }
        container_id = f"containerd://{meta['uid'].replace('-', '')}"
        for entry in status.get("containerStatuses") or []:
            if "waiting" not in entry["state"]:
                entry["containerID"] = container_id
        status["startTime"] = (pod.get("status") or {}).get("startTime") or now_iso()
        current = dict(pod.get("status") or {})
        if current == status:
            return
        self.host.write_status(pod, status)

    def _event(
        self,
        pod: dict[str, Any],
        run: PodRun,
        reason: str,
        message: str,
        *,
        node: str,
        warning: bool = False,
    ) -> None:
        if reason in run.events:
            return
        run.events.add(reason)
        container = pod["spec"]["containers"][0]["name"]
        self.host.record(
            pod,
            reason=reason,
            message=message,
            node=node,
            warning=warning,
            field_path=f"spec.containers{{{container}}}",
        )


# ---------------------------------------------------------------------------- pure helpers


def runs_awaiter(pod: dict[str, Any], awaiter_image: str) -> bool:
    """A pod (not a DaemonSet's) with one container: the awaiter image, its entrypoint."""
    owners = pod["metadata"].get("ownerReferences") or []
    if any(o.get("kind") == "DaemonSet" for o in owners):
        return False
    containers = (pod.get("spec") or {}).get("containers") or []
    if len(containers) != 1:
        return False
    container = containers[0]
    ours, theirs = parse(container.get("image") or ""), parse(awaiter_image)
    if ours is None or theirs is None or ours.name != theirs.name:
        return False
    command = tuple(container.get("command") or ())
    return not command or any(command[: len(e)] == e for e in sandboxes.ENTRYPOINTS)


def _send(popen: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        popen.send_signal(signum)


def _base_status(container: dict[str, Any], image: str = "") -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container["image"],
        "imageID": image,
        "restartCount": 0,
        "ready": False,
        "started": False,
    }


def _conditions(*, initialized: bool, ready: bool, reason: str = "") -> list[dict[str, Any]]:
    def condition(kind: str, value: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": kind, "status": str(value)}
        if not value and reason:
            entry["reason"] = reason
        return entry

    return [
        condition("PodReadyToStartContainers", initialized),
        condition("Initialized", True),
        condition("Ready", ready),
        condition("ContainersReady", ready),
        condition("PodScheduled", True),
    ]


def _pending(container: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
    waiting: dict[str, Any] = {"reason": reason}
    if message:
        waiting["message"] = message
    status = {**_base_status(container), "state": {"waiting": waiting}}
    return {
        "phase": "Pending",
        "conditions": _conditions(initialized=False, ready=False, reason="ContainersNotReady"),
        "containerStatuses": [status],
    }


def _running(container: dict[str, Any], started_at: str, image: str) -> dict[str, Any]:
    status = {
        **_base_status(container, image),
        "ready": True,
        "started": True,
        "state": {"running": {"startedAt": started_at}},
    }
    return {
        "phase": "Running",
        "conditions": _conditions(initialized=True, ready=True),
        "containerStatuses": [status],
    }


def _terminated(
    container: dict[str, Any], terminated: dict[str, Any], image: str
) -> dict[str, Any]:
    status = {**_base_status(container, image), "state": {"terminated": terminated}}
    return {
        "phase": "Succeeded" if terminated["exitCode"] == 0 else "Failed",
        "conditions": _conditions(initialized=False, ready=False, reason="PodCompleted"),
        "containerStatuses": [status],
    }

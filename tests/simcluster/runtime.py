"""The pod runtime of the simulated cluster: a pod whose one container is the awaiter image,
started with the image's own entrypoint, runs the REAL image-awaiter CLI as a local process.

What a kubelet and container runtime would give the container is rebuilt under a per-pod
temporary root:

- the container's env (explicit values with `$(VAR)` expansion, downward-API `fieldRef`s,
  ConfigMap/Secret key refs and `envFrom`) and args (`$(VAR)` expanded);
- the ServiceAccount's credentials, in-cluster style: token, namespace and a kubeconfig under
  `<root>/var/run/secrets/kubernetes.io/serviceaccount/`; the process gets KUBECONFIG (not
  KUBERNETES_SERVICE_HOST: the simulated API server is not at a service address);
- ConfigMap, Secret, emptyDir and projected-token volumes as files at `<root><mountPath>`.
  Paths are not remapped inside the process, so every arg or env value that starts with a
  mountPath is rewritten to the mapped path (the simplest faithful mapping for a CLI that only
  takes paths as arguments);
- the termination message file at `<root><terminationMessagePath>`, also named by
  IMAGE_AWAITER_TERMINATION_LOG so the CLI can write it there.

stdout and stderr become the pod log (appended as the process writes), the exit code the
container's `terminated` state. Deleting the pod sends SIGTERM, then SIGKILL after the grace
period, as the kubelet does.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.simcluster.controllers import ContainerRun, NodeSim
from tests.simcluster.registry import parse
from tests.simcluster.store import KINDS, now_iso

if TYPE_CHECKING:
    from tests.simcluster.cluster import SimCluster

# The image's ENTRYPOINT is `python3 -m image_awaiter` (Dockerfile.distroless); a container that
# names the CLI itself runs it too.
ENTRYPOINTS = (("python3", "-m", "image_awaiter"), ("image-awaiter",))
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# kubelet's limits, kubernetes pkg/kubelet/container/runtime.go:
# MaxContainerTerminationMessageLength = 1024 * 4 (the file),
# MaxContainerTerminationMessageLogLength = 1024 * 2 and
# MaxContainerTerminationMessageLogLines = 80 (FallbackToLogsOnError's tail of the log).
MESSAGE_FILE_LIMIT = 4096
MESSAGE_LOG_LIMIT = 2048
MESSAGE_LOG_LINES = 80
# The distroless Python base (~50 MB) plus the 19 MB application layer README measures.
AWAITER_IMAGE_BYTES = 70 * 1024**2
_VAR = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")

Pull = Callable[..., None]


class MountError(Exception):
    """A volume the container needs does not exist yet (the kubelet keeps retrying)."""


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    root: Path
    reader: threading.Thread
    message_file: Path
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


class Runtime:
    def __init__(self, sim: SimCluster) -> None:
        self.sim = sim
        self.runs: dict[str, PodRun] = {}  # pod uid -> run
        self.keys: dict[str, tuple[str, str]] = {}  # pod uid -> (namespace, name)

    # ------------------------------------------------------------------ which pods

    def handles(self, pod: dict[str, Any]) -> bool:
        """A pod (not a DaemonSet's) with one container: the awaiter image, its entrypoint."""
        owners = pod["metadata"].get("ownerReferences") or []
        if any(o.get("kind") == "DaemonSet" for o in owners):
            return False
        containers = (pod.get("spec") or {}).get("containers") or []
        if len(containers) != 1:
            return False
        container = containers[0]
        ours, theirs = parse(container.get("image") or ""), parse(self.sim.awaiter_image)
        if ours is None or theirs is None or ours.name != theirs.name:
            return False
        command = tuple(container.get("command") or ())
        return not command or any(command[: len(e)] == e for e in ENTRYPOINTS)

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
                self.sim.store.delete("pods", pod["metadata"]["name"], pod["metadata"]["namespace"])
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
        if not self.sim.registry.known(ref):
            self.sim.registry.add(
                ref, pull_seconds=0.2, size_bytes=AWAITER_IMAGE_BYTES, has_shell=False
            )
        parsed = parse(ref)
        if not run.events & {"Pulling", "Pulled"} and parsed and parsed.key not in node.images:
            run.pull_started = now
            self._event(pod, run, "Pulling", f'Pulling image "{ref}"', node=node.name)
        pull(run.pull, ref, node, now, policy=container.get("imagePullPolicy") or "IfNotPresent")
        if run.pull.state == "failing":
            self._event(pod, run, "Failed", run.pull.message, node=node.name, warning=True)
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
            image = self.sim.registry.lookup(ref)
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
        except MountError as error:
            self._event(pod, run, "FailedMount", str(error), node=node.name, warning=True)
            self._write_status(pod, _pending(container, "ContainerCreating", ""))
            return
        name = container["name"]
        self._event(pod, run, "Created", f"Created container: {name}", node=node.name)
        self._event(pod, run, "Started", f"Started container {name}", node=node.name)
        self._write_status(pod, _running(container, run.process.started_at, run.pull.image_id))

    # ------------------------------------------------------------------ the process

    def _start(self, pod: dict[str, Any]) -> Process:
        meta, spec = pod["metadata"], pod["spec"]
        container = spec["containers"][0]
        root = Path(tempfile.mkdtemp(prefix=f"sim-pod-{meta['name']}-"))
        try:
            mounts = self._materialise_volumes(pod, container, root)
            kubeconfig = self._service_account(pod, root)
            message_path = container.get("terminationMessagePath") or "/dev/termination-log"
            message_file = _under(root, message_path)
            message_file.parent.mkdir(parents=True, exist_ok=True)
            message_file.write_bytes(b"")
            env = self._environment(pod, container)
            env = {k: _map_paths(v, mounts) for k, v in env.items()}
            args = [_map_paths(_expand(a, env), mounts) for a in _argv(container)]
        except Exception:
            shutil.rmtree(root, ignore_errors=True)
            raise
        process_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root),
            "HOSTNAME": meta["name"],
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "KUBECONFIG": str(kubeconfig),
            "IMAGE_AWAITER_TERMINATION_LOG": str(message_file),
            **env,
        }
        popen = subprocess.Popen(
            [sys.executable, "-m", "image_awaiter", *args],
            cwd=root,
            env=process_env,
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
        return Process(popen, root, reader, message_file, started_at=now_iso())

    def _read_log(self, popen: subprocess.Popen[bytes], key: tuple[str, str]) -> None:
        assert popen.stdout is not None
        fd = popen.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            with self.sim.store.lock:
                self.sim.pod_logs[key] = self.sim.pod_logs.get(key, b"") + chunk
                self.sim.store.changed.notify_all()
        popen.stdout.close()
        with self.sim.store.lock:
            self.sim.store.changed.notify_all()  # the kubelet loop may now finish the pod

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
            record_event(
                self.sim,
                pod,
                reason="Killing",
                message=f"Stopping container {name}",
                component="kubelet",
                host=pod["spec"].get("nodeName", ""),
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
            shutil.rmtree(process.root, ignore_errors=True)
        run.terminated = terminated
        self._write_status(pod, _terminated(container, terminated, run.pull.image_id))
        self._remove_if_deleting(pod)

    def _message(
        self, pod: dict[str, Any], container: dict[str, Any], process: Process, exit_code: int
    ) -> str:
        """The termination message as the kubelet reads it (kuberuntime_container.go)."""
        with contextlib.suppress(OSError):
            with process.message_file.open("rb") as handle:
                text = handle.read(MESSAGE_FILE_LIMIT)
            if text:
                return text.decode(errors="replace")
        fallback = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        if not fallback or exit_code == 0:
            return ""
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        log = self.sim.pod_logs.get(key, b"")
        tail = b"".join(log.splitlines(keepends=True)[-MESSAGE_LOG_LINES:])
        return tail[-MESSAGE_LOG_LIMIT:].decode(errors="replace")

    # ------------------------------------------------------------------ deletion

    def graceful_delete(
        self, pod: dict[str, Any], options: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Mark a pod whose process runs as terminating (the runtime removes it once the process
        has exited); None when the pod can simply go."""
        run = self.runs.get(pod["metadata"]["uid"])
        if run is None or run.process is None or run.terminated is not None:
            return None
        grace = options.get("gracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        if "deletionTimestamp" in pod["metadata"]:
            return pod

        def mark(obj: dict[str, Any]) -> None:
            obj["metadata"]["deletionTimestamp"] = now_iso()
            obj["metadata"]["deletionGracePeriodSeconds"] = int(grace)

        meta = pod["metadata"]
        return self.sim.store.mutate("pods", meta["name"], meta["namespace"], mark)

    def _remove_if_deleting(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if "deletionTimestamp" in meta:
            self.sim.store.delete("pods", meta["name"], meta["namespace"])

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
                process.signalled_at, process.kill_at = now, now + 30.0
                _send(process.popen, signal.SIGTERM)
            elif process.kill_at is not None and now >= process.kill_at:
                _send(process.popen, signal.SIGKILL)
                process.kill_at = None
            if process.popen.poll() is not None:
                shutil.rmtree(process.root, ignore_errors=True)
                self.runs.pop(uid)
                self.keys.pop(uid, None)

    def stop_all(self, *, grace: float = 5.0) -> None:
        """SIGTERM every process, SIGKILL those still there after `grace` (SimCluster.stop)."""
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
            shutil.rmtree(process.root, ignore_errors=True)

    # ------------------------------------------------------------------ what the pod gets

    def _environment(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
        ns = pod["metadata"]["namespace"]
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix") or ""
            for key, value in self._source_data(ns, source).items():
                env[prefix + key] = value
        for var in container.get("env") or []:
            if "value" in var or "valueFrom" not in var:
                env[var["name"]] = _expand(var.get("value") or "", env)
                continue
            value = self._value_from(pod, var["valueFrom"])
            if value is not None:
                env[var["name"]] = value
        return env

    def _source_data(self, ns: str, source: dict[str, Any]) -> dict[str, str]:
        if "configMapRef" in source:
            ref = source["configMapRef"]
            obj = self.sim.store.get("configmaps", ref["name"], ns)
            return dict((obj or {}).get("data") or {})
        if "secretRef" in source:
            ref = source["secretRef"]
            obj = self.sim.store.get("secrets", ref["name"], ns)
            return {k: v.decode(errors="replace") for k, v in _secret_data(obj).items()}
        return {}

    def _value_from(self, pod: dict[str, Any], source: dict[str, Any]) -> str | None:
        ns = pod["metadata"]["namespace"]
        if "fieldRef" in source:
            return _field(pod, source["fieldRef"]["fieldPath"])
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            obj = self.sim.store.get("configmaps", ref["name"], ns)
            return ((obj or {}).get("data") or {}).get(ref["key"])
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            data = _secret_data(self.sim.store.get("secrets", ref["name"], ns))
            return data[ref["key"]].decode(errors="replace") if ref["key"] in data else None
        return None

    def _service_account(self, pod: dict[str, Any], root: Path) -> Path:
        ns = pod["metadata"]["namespace"]
        account = pod["spec"].get("serviceAccountName") or "default"
        directory = _under(root, SA_DIR)
        directory.mkdir(parents=True, exist_ok=True)
        user: dict[str, str] = {}
        if self._automount(pod):  # otherwise no token: the API answers 401, as in a real pod
            user["token"] = self._token(pod)
            (directory / "token").write_text(user["token"])
        (directory / "namespace").write_text(ns)
        cluster: dict[str, str] = {"server": self.sim.url}
        if self.sim.tls is not None:  # the API server's certificate, as ca.crt in a real pod
            (directory / "ca.crt").write_bytes(Path(self.sim.tls[0]).read_bytes())
            cluster["certificate-authority"] = str(directory / "ca.crt")
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "in-cluster",
            "clusters": [{"name": "in-cluster", "cluster": cluster}],
            "users": [{"name": account, "user": user}],
            "contexts": [
                {
                    "name": "in-cluster",
                    "context": {"cluster": "in-cluster", "user": account, "namespace": ns},
                }
            ],
        }
        kubeconfig = directory / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        return kubeconfig

    def _automount(self, pod: dict[str, Any]) -> bool:
        """automountServiceAccountToken: the pod's setting, else its ServiceAccount's."""
        if pod["spec"].get("automountServiceAccountToken") is not None:
            return bool(pod["spec"]["automountServiceAccountToken"])
        if "serviceaccounts" not in KINDS:
            return True
        account = self.sim.store.get(
            "serviceaccounts",
            pod["spec"].get("serviceAccountName") or "default",
            pod["metadata"]["namespace"],
        )
        return (account or {}).get("automountServiceAccountToken") is not False

    def _token(self, pod: dict[str, Any]) -> str:
        account = pod["spec"].get("serviceAccountName") or "default"
        issue = getattr(self.sim, "token_for_service_account", None)
        if issue is not None:
            return str(issue(pod["metadata"]["namespace"], account))
        # TODO(sim-api): the generic API issues ServiceAccount tokens; until it is merged the
        # pod acts with the admin token.
        from tests.simcluster.cluster import DEFAULT_TOKEN

        return DEFAULT_TOKEN

    def _materialise_volumes(
        self, pod: dict[str, Any], container: dict[str, Any], root: Path
    ) -> list[tuple[str, Path]]:
        """Write each mounted volume under `root`; returns (mountPath, mapped path) pairs."""
        ns = pod["metadata"]["namespace"]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        mounts = []
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"])
            target = _under(root, mount["mountPath"])
            if volume is None:
                continue
            files = self._volume_files(ns, pod, volume)
            if files is None:  # a directory volume (emptyDir and the like)
                target.mkdir(parents=True, exist_ok=True)
            elif mount.get("subPath"):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(files.get(mount["subPath"], b""))
            else:
                for relative, content in files.items():
                    path = target / relative
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(content)
                target.mkdir(parents=True, exist_ok=True)
            mounts.append((mount["mountPath"].rstrip("/") or "/", target))
        mounts.sort(key=lambda m: -len(m[0]))
        return mounts

    def _volume_files(
        self, ns: str, pod: dict[str, Any], volume: dict[str, Any]
    ) -> dict[str, bytes] | None:
        if "configMap" in volume:
            source = volume["configMap"]
            obj = self.sim.store.get("configmaps", source.get("name", ""), ns)
            if obj is None:
                if source.get("optional"):
                    return {}
                raise MountError(
                    f'MountVolume.SetUp failed for volume "{volume["name"]}" : '
                    f'configmap "{source.get("name", "")}" not found'
                )
            data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
            for key, value in (obj.get("binaryData") or {}).items():
                data[key] = base64.b64decode(value)
            return _pick(data, source.get("items"))
        if "secret" in volume:
            source = volume["secret"]
            obj = self.sim.store.get("secrets", source.get("secretName", ""), ns)
            if obj is None:
                if source.get("optional"):
                    return {}
                raise MountError(
                    f'MountVolume.SetUp failed for volume "{volume["name"]}" : '
                    f'secret "{source.get("secretName", "")}" not found'
                )
            return _pick(_secret_data(obj), source.get("items"))
        if "projected" in volume:
            files: dict[str, bytes] = {}
            for source in volume["projected"].get("sources") or []:
                if "serviceAccountToken" in source:
                    token = self._token(pod)
                    files[source["serviceAccountToken"].get("path", "token")] = token.encode()
                elif "configMap" in source:
                    inner = self._volume_files(ns, pod, {"name": volume["name"], **source})
                    files.update(inner or {})
                elif "downwardAPI" in source:
                    for item in source["downwardAPI"].get("items") or []:
                        value = _field(pod, (item.get("fieldRef") or {}).get("fieldPath", ""))
                        files[item["path"]] = (value or "").encode()
            return files
        return None

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
        self.sim.store.mutate(
            "pods", meta["name"], meta["namespace"], lambda o: o.__setitem__("status", status)
        )

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
        record_event(
            self.sim,
            pod,
            reason=reason,
            message=message,
            component="kubelet",
            host=node,
            warning=warning,
            field_path=f"spec.containers{{{container}}}",
        )


# ---------------------------------------------------------------------------- events


def record_event(
    sim: SimCluster,
    obj: dict[str, Any],
    *,
    reason: str,
    message: str,
    component: str,
    host: str = "",
    warning: bool = False,
    field_path: str = "",
) -> None:
    """A core/v1 Event about `obj`, as `kubectl describe` and `kubectl get events` read them."""
    meta = obj["metadata"]
    stamp = now_iso()
    involved = {
        "kind": obj.get("kind", ""),
        "namespace": meta.get("namespace", ""),
        "name": meta["name"],
        "uid": meta["uid"],
        "apiVersion": obj.get("apiVersion", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if field_path:
        involved["fieldPath"] = field_path
    source = {"component": component, **({"host": host} if host else {})}
    event = {
        # Named as the event recorder names them: the object's name, then the time in hex
        # nanoseconds; events of one object therefore list in the order they happened.
        "metadata": {
            "name": f"{meta['name']}.{_event_clock():x}",
            "namespace": meta.get("namespace"),
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "type": "Warning" if warning else "Normal",
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": host,
    }
    sim.store.create("events", event, meta.get("namespace") or "default")


_last_event_ns = 0


def _event_clock() -> int:
    global _last_event_ns
    _last_event_ns = max(time.time_ns(), _last_event_ns + 1)
    return _last_event_ns


# ---------------------------------------------------------------------------- pure helpers


def _argv(container: dict[str, Any]) -> list[str]:
    """The CLI's arguments: after the entrypoint the command names, then `args`."""
    command = list(container.get("command") or ())
    for entrypoint in ENTRYPOINTS:
        if tuple(command[: len(entrypoint)]) == entrypoint:
            command = command[len(entrypoint) :]
            break
    return [*command, *(container.get("args") or [])]


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` is a literal `$`,
    undefined references stay as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR.sub(replace, text)


def _map_paths(value: str, mounts: list[tuple[str, Path]]) -> str:
    """Rewrite a value that starts with a mountPath (or `--flag=` then one) to the mapped path."""
    prefix, sep, rest = value.partition("=") if value.startswith("-") else ("", "", value)
    for mount_path, target in mounts:
        if rest == mount_path or rest.startswith(mount_path.rstrip("/") + "/"):
            return f"{prefix}{sep}{target}{rest[len(mount_path.rstrip('/')) :]}"
    return value


def _under(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def _field(pod: dict[str, Any], path: str) -> str | None:
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.hostIP": status.get("hostIP") or "10.0.0.1",
        "status.podIP": status.get("podIP") or "10.244.0.10",
    }
    if path in simple:
        return simple[path]
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    return None


def _secret_data(obj: dict[str, Any] | None) -> dict[str, bytes]:
    if obj is None:
        return {}
    data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
    return data


def _pick(data: dict[str, bytes], items: list[dict[str, Any]] | None) -> dict[str, bytes]:
    if not items:
        return data
    return {item["path"]: data[item["key"]] for item in items if item["key"] in data}


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

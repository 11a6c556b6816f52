"""The sandbox of a pod the runtime runs (runtime.py): what a kubelet and container runtime
would give its container, rebuilt under a per-pod temporary root.

- env: explicit values with `$(VAR)` expansion, downward-API `fieldRef`s, ConfigMap/Secret key
  refs and `envFrom`; args with `$(VAR)` expanded;
- the ServiceAccount's credentials, in-cluster style: token, namespace, ca.crt and a kubeconfig
  under `<root>/var/run/secrets/kubernetes.io/serviceaccount/`; the process gets KUBECONFIG
  (not KUBERNETES_SERVICE_HOST: the simulated API server is not at a service address);
- ConfigMap, Secret, emptyDir and projected volumes as files at `<root><mountPath>`. Paths are
  not remapped inside the process, so every arg or env value that starts with a mountPath (or
  is `--flag=` then one) is rewritten to the mapped path: the simplest faithful mapping for a
  CLI that takes paths only as arguments;
- the termination message file at `<root><terminationMessagePath>`, also named by
  IMAGE_AWAITER_TERMINATION_LOG so the CLI writes it there.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml


class Cluster(Protocol):
    """What a sandbox reads of the cluster: objects, a ServiceAccount token for a pod, where
    the API server is and its CA (any API server, over HTTP: apihost.ApiCluster)."""

    server: str

    def get(self, resource: str, name: str, namespace: str) -> dict[str, Any] | None: ...

    def token(self, pod: dict[str, Any], account: str) -> str: ...

    def ca_pem(self) -> bytes | None: ...


# The image's ENTRYPOINT is `python3 -m image_awaiter` (Dockerfile.distroless); a container that
# names the CLI itself runs it too.
ENTRYPOINTS = (("python3", "-m", "image_awaiter"), ("image-awaiter",))
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_VAR = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


class MountError(Exception):
    """A volume the container needs does not exist yet (the kubelet keeps retrying)."""


class ConfigError(Exception):
    """The container's env names something missing: CreateContainerConfigError (retried)."""


@dataclass(frozen=True)
class Sandbox:
    root: Path
    argv: list[str]  # the CLI's arguments, paths mapped
    env: dict[str, str]  # the process's whole environment
    message_file: Path

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def build(cluster: Cluster, pod: dict[str, Any]) -> Sandbox:
    """Materialise the pod's one container; MountError when a volume's source is missing."""
    meta, container = pod["metadata"], pod["spec"]["containers"][0]
    root = Path(tempfile.mkdtemp(prefix=f"sim-pod-{meta['name']}-"))
    try:
        mounts = _materialise_volumes(cluster, pod, container, root)
        kubeconfig = _service_account(cluster, pod, root)
        message_path = container.get("terminationMessagePath") or "/dev/termination-log"
        message_file = _under(root, message_path)
        message_file.parent.mkdir(parents=True, exist_ok=True)
        message_file.write_bytes(b"")
        env = {k: _map_paths(v, mounts) for k, v in _environment(cluster, pod, container).items()}
        argv = [_map_paths(_expand(a, env), mounts) for a in _argv(container)]
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
    return Sandbox(root, argv, process_env, message_file)


def _environment(
    cluster: Cluster, pod: dict[str, Any], container: dict[str, Any]
) -> dict[str, str]:
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        for key, value in _source_data(cluster, ns, source).items():
            env[prefix + key] = value
    for var in container.get("env") or []:
        if "value" in var or "valueFrom" not in var:
            env[var["name"]] = _expand(var.get("value") or "", env)
            continue
        found = _value_from(cluster, pod, var["valueFrom"])
        if found is not None:
            env[var["name"]] = found
    return env


def _source_data(cluster: Cluster, ns: str, source: dict[str, Any]) -> dict[str, str]:
    if "configMapRef" in source:
        ref = source["configMapRef"]
        obj = _referenced(cluster, "configmaps", ns, ref)
        return dict((obj or {}).get("data") or {})
    if "secretRef" in source:
        ref = source["secretRef"]
        obj = _referenced(cluster, "secrets", ns, ref)
        return {k: v.decode(errors="replace") for k, v in _secret_data(obj).items()}
    return {}


def _value_from(cluster: Cluster, pod: dict[str, Any], source: dict[str, Any]) -> str | None:
    """An env var's valueFrom; ConfigError with the kubelet's text when a reference dangles
    (kubelet_pods.go, makeEnvironmentVariables)."""
    ns = pod["metadata"]["namespace"]
    if "fieldRef" in source:
        return _field(pod, source["fieldRef"]["fieldPath"])
    for field_name, resource, kind in (
        ("configMapKeyRef", "configmaps", "ConfigMap"),
        ("secretKeyRef", "secrets", "Secret"),
    ):
        if field_name not in source:
            continue
        ref = source[field_name]
        obj = _referenced(cluster, resource, ns, ref)
        if obj is None:
            return None
        data = (
            _secret_data(obj)
            if resource == "secrets"
            else {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        )
        if ref["key"] in data:
            return data[ref["key"]].decode(errors="replace")
        if ref.get("optional"):
            return None
        raise ConfigError(f"couldn't find key {ref['key']} in {kind} {ns}/{ref['name']}")
    return None


def _referenced(
    cluster: Cluster, resource: str, ns: str, ref: dict[str, Any]
) -> dict[str, Any] | None:
    obj = cluster.get(resource, ref.get("name", ""), ns)
    if obj is None and not ref.get("optional"):
        raise ConfigError(f'{resource.removesuffix("s")} "{ref.get("name", "")}" not found')
    return obj


def _service_account(cluster: Cluster, pod: dict[str, Any], root: Path) -> Path:
    ns = pod["metadata"]["namespace"]
    account = pod["spec"].get("serviceAccountName") or "default"
    directory = _under(root, SA_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    user: dict[str, str] = {}
    if _automount(cluster, pod):  # otherwise no token: the API answers 401, as in a real pod
        user["token"] = _token(cluster, pod)
        (directory / "token").write_text(user["token"])
    (directory / "namespace").write_text(ns)
    entry: dict[str, str] = {"server": cluster.server}
    ca = cluster.ca_pem()
    if ca is not None:  # the API server's CA, as ca.crt in a real pod
        (directory / "ca.crt").write_bytes(ca)
        entry["certificate-authority"] = str(directory / "ca.crt")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "in-cluster",
        "clusters": [{"name": "in-cluster", "cluster": entry}],
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


def _automount(cluster: Cluster, pod: dict[str, Any]) -> bool:
    """automountServiceAccountToken: the pod's setting, else its ServiceAccount's."""
    if pod["spec"].get("automountServiceAccountToken") is not None:
        return bool(pod["spec"]["automountServiceAccountToken"])
    account = cluster.get(
        "serviceaccounts",
        pod["spec"].get("serviceAccountName") or "default",
        pod["metadata"]["namespace"],
    )
    return (account or {}).get("automountServiceAccountToken") is not False


def _token(cluster: Cluster, pod: dict[str, Any]) -> str:
    account = pod["spec"].get("serviceAccountName") or "default"
    return cluster.token(pod, account)


def _materialise_volumes(
    cluster: Cluster, pod: dict[str, Any], container: dict[str, Any], root: Path
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
        files = _volume_files(cluster, ns, pod, volume)
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
    cluster: Cluster, ns: str, pod: dict[str, Any], volume: dict[str, Any]
) -> dict[str, bytes] | None:
    if "configMap" in volume:
        source = volume["configMap"]
        obj = cluster.get("configmaps", source.get("name", ""), ns)
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
        obj = cluster.get("secrets", source.get("secretName", ""), ns)
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
                token = _token(cluster, pod)
                files[source["serviceAccountToken"].get("path", "token")] = token.encode()
            elif "configMap" in source:
                inner = _volume_files(cluster, ns, pod, {"name": volume["name"], **source})
                files.update(inner or {})
            elif "downwardAPI" in source:
                for item in source["downwardAPI"].get("items") or []:
                    value = _field(pod, (item.get("fieldRef") or {}).get("fieldPath", ""))
                    files[item["path"]] = (value or "").encode()
        return files
    return None


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
        value: str | None = simple[path]
        return value
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

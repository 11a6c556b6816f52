"""Kubernetes access, configuration: load a kubeconfig or the in-cluster service account as
kubectl does, and make the one API client a run uses (its own retries off: ours apply).

The client's modules are imported by their own names, never through `kubernetes` or
`kubernetes.config` (lean.py keeps those packages' `__init__` from running): in a pod only the
in-cluster loader, elsewhere only the kubeconfig loader (and YAML with it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes.client.api_client import ApiClient
from kubernetes.client.configuration import Configuration
from kubernetes.config.config_exception import ConfigException

from image_awaiter.core.errors import UsageError


@dataclass(frozen=True, slots=True)
class Connection:
    client: ApiClient
    namespace: str
    in_cluster: bool


def connect(
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    in_cluster_namespace: str | None = None,
) -> Connection:
    """Load configuration as kubectl does: --kubeconfig, KUBECONFIG, ~/.kube/config, or the
    pod's service account when running in a cluster with neither given. `in_cluster_namespace`
    (POD_NAMESPACE or the service account's namespace file, read once into `Settings`) is the
    default namespace in a pod."""
    configuration = Configuration()
    in_cluster = (
        kubeconfig is None
        and context is None
        and "KUBECONFIG" not in os.environ
        and "KUBERNETES_SERVICE_HOST" in os.environ
    )
    if kubeconfig is not None and not Path(kubeconfig).is_file():
        raise UsageError(
            f"kubeconfig file not found: {kubeconfig}",
            hint="give an existing file to --kubeconfig or KUBECONFIG",
        )
    try:
        if in_cluster:
            from kubernetes.config.incluster_config import load_incluster_config

            load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            default_namespace = in_cluster_namespace or "default"
        else:
            from kubernetes.config.kube_config import (
                KUBE_CONFIG_DEFAULT_LOCATION,
                _get_kube_config_loader,
            )

            # load_kube_config(persist_config=False)'s own two steps, keeping its loader: the
            # active context names the namespace without reading the file a second time.
            files = kubeconfig if kubeconfig is not None else KUBE_CONFIG_DEFAULT_LOCATION
            loader = _get_kube_config_loader(  # type: ignore[no-untyped-call]
                filename=files, active_context=context, persist_config=False
            )
            loader.load_and_set(configuration)
            if os.pathsep in files:  # several files merged: the first one's context, as before
                default_namespace = _first_file_namespace(files, context)
            else:
                default_namespace = _namespace(loader.current_context)
    except (ConfigException, OSError, ValueError, TypeError) as error:
        raise UsageError(
            f"cannot load Kubernetes configuration: {_first_line(error)}",
            hint="pass --kubeconfig/--context, set KUBECONFIG, or run inside a pod",
        ) from None
    configuration.retries = False  # one retry policy: ours
    client = ApiClient(configuration=configuration)
    client.user_agent = "image-awaiter"
    return Connection(
        client=client, namespace=namespace or default_namespace, in_cluster=in_cluster
    )


def _first_file_namespace(files: str, context: str | None) -> str:
    from kubernetes.config.kube_config import list_kube_config_contexts

    contexts, current = list_kube_config_contexts(  # type: ignore[no-untyped-call]
        config_file=files.split(os.pathsep)[0]
    )
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    return _namespace(chosen)


def _namespace(context: dict[str, Any] | None) -> str:
    return str(((context or {}).get("context") or {}).get("namespace") or "default")


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]

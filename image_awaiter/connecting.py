"""Kubernetes access, configuration: load a kubeconfig or the in-cluster service account as
kubectl does, and make the one API client a run uses (its own retries off: ours apply)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kubernetes import config as kube_config
from kubernetes.client.api_client import ApiClient
from kubernetes.client.configuration import Configuration
from kubernetes.config.config_exception import ConfigException

from image_awaiter.errors import UsageError


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
        raise UsageError(f"kubeconfig file not found: {kubeconfig}")
    try:
        if in_cluster:
            kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            default_namespace = in_cluster_namespace or "default"
        else:
            kube_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
            default_namespace = _context_namespace(kubeconfig, context)
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


def _context_namespace(kubeconfig: str | None, context: str | None) -> str:
    files = kubeconfig or os.environ.get("KUBECONFIG") or None
    contexts, current = kube_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
        config_file=files.split(os.pathsep)[0] if files else None
    )
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]

"""`pods/NAME/log` (`kubectl logs`): an awaiter pod's output, as its process writes it
(`SimCluster.pod_logs`, from the kubelets' runtime), an empty log for any other started pod;
`tailLines` honoured; `follow` streams until the process ends. Refusals as kube-apiserver's: a
container not in the pod, a container waiting to start."""

from __future__ import annotations

import functools
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

from simcluster.apiserver import rest
from simcluster.apiserver.kinds import Kind
from simcluster.apiserver.responses import (
    RequestRecord,
    end_chunked,
    send_bytes,
    start_chunked,
    write_chunk,
)
from simcluster.apiserver.store import StoreError
from simcluster.nodes.logview import LogError, log_view

if TYPE_CHECKING:
    from simcluster.cluster import SimCluster


def serve_log(
    sim: SimCluster,
    handler: BaseHTTPRequestHandler,
    record: RequestRecord,
    *,
    kind: Kind,
    namespace: str | None,
    name: str,
    query: dict[str, str],
) -> None:
    pod = sim.store.get("pods", name, namespace)
    if pod is None:
        raise rest.not_found(kind, name)
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    container = query.get("container") or (containers[0] if containers else "")
    tail = query.get("tailLines") or ""
    try:
        data, whole = log_view(
            pod,
            container=container,
            data=sim.pod_logs.get((namespace or "", name)),
            tail_lines=int(tail) if tail.isdigit() else None,
        )
    except LogError as error:
        raise StoreError(int(error.status), "BadRequest", error.message) from None
    if query.get("follow") in ("true", "1"):
        _follow(sim, handler, record, key=(namespace or "", name), data=data, sent=whole)
        return
    send_bytes(handler, record, 200, data, content_type="text/plain")


def _follow(
    sim: SimCluster,
    handler: BaseHTTPRequestHandler,
    record: RequestRecord,
    *,
    key: tuple[str, str],
    data: bytes,
    sent: int,
) -> None:
    """`kubectl logs -f`: what the log holds, then what the process writes, until it ends
    (pod runtime, runtime.py)."""
    start_chunked(handler, record, content_type="text/plain")
    try:
        if data:
            write_chunk(handler, record, data)

        def grown(offset: int) -> bool:
            return len(sim.pod_logs.get(key, b"")) > offset or not sim.pod_running(key)

        while True:
            with sim.store.lock:
                sim.store.changed.wait_for(functools.partial(grown, sent), timeout=1.0)
                log, running = sim.pod_logs.get(key, b""), sim.pod_running(key)
            if len(log) > sent:
                write_chunk(handler, record, log[sent:])
                sent = len(log)
            if not running:
                break
        end_chunked(handler)
    except OSError:
        handler.close_connection = True

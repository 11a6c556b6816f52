"""The gate's Prometheus metrics, `/healthz` and `/readyz` on `--metrics-addr`.

The text exposition format (version 0.0.4) written by hand with the standard library's
`http.server`: the five metrics need counters, a gauge and one histogram, which is 80 lines,
against a dependency (prometheus_client) that would add its import time to every start of
`await` as well and a package to the image. Served from a daemon thread; the loop updates the
values under one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog

log = structlog.get_logger("image_awaiter.output.metrics")

PREFIX = "image_awaiter_gate_"
# name -> (type, help)
METRICS: dict[str, tuple[str, str]] = {
    "nodes_pending": ("gauge", "Nodes carrying the gate taint, not yet released."),
    "nodes_released_total": (
        "counter",
        "Nodes released, by reason (ImagesPresent, NoImagesForNode, MaxWaitExceeded).",
    ),
    "release_seconds": ("histogram", "Seconds from a node's creation to its release."),
    "image_pulls_total": ("counter", "Images found on a released node, by image."),
    "image_pull_failures_total": ("counter", "Pull failures seen on gated nodes, by image."),
    "leader": ("gauge", "1 while this replica holds the lease and writes."),
}


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in pairs
    )
    return "{" + inner + "}"


class Metrics:
    def __init__(self, *, buckets: Sequence[float]) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._buckets = tuple(buckets)
        self._counts = [0] * (len(self._buckets) + 1)
        self._sum = 0.0

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = value

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def observe(self, seconds: float) -> None:
        with self._lock:
            index = next((i for i, b in enumerate(self._buckets) if seconds <= b), -1)
            self._counts[index] += 1
            self._sum += seconds

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, (kind, text) in METRICS.items():
                full = PREFIX + name
                lines += [f"# HELP {full} {text}", f"# TYPE {full} {kind}"]
                if kind == "histogram":
                    lines += self._histogram(full)
                    continue
                for (metric, labels), value in sorted(self._values.items()):
                    if metric == name:
                        lines.append(f"{full}{_labels(labels)} {value:g}")
        return "\n".join(lines) + "\n"

    def _histogram(self, full: str) -> list[str]:
        lines, running = [], 0
        for bound, count in zip(self._buckets, self._counts, strict=False):
            running += count
            lines.append(f'{full}_bucket{{le="{bound:g}"}} {running}')
        total = sum(self._counts)
        return [
            *lines,
            f'{full}_bucket{{le="+Inf"}} {total}',
            f"{full}_sum {self._sum:g}",
            f"{full}_count {total}",
        ]


def serve(
    address: str, *, metrics: Metrics, healthy: Callable[[], bool], ready: Callable[[], bool]
) -> ThreadingHTTPServer:
    """Serve `/metrics`, `/healthz` and `/readyz` on `HOST:PORT` (`:PORT` for every address)
    in a daemon thread; the caller shuts it down."""
    host, _, port = address.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, metrics.render(), "text/plain; version=0.0.4")
            elif path in ("/healthz", "/livez"):
                ok = healthy()
                self._answer(200 if ok else 503, "ok\n" if ok else "stalled\n")
            elif path == "/readyz":
                ok = ready()
                self._answer(200 if ok else 503, "ok\n" if ok else "not synced\n")
            else:
                self._answer(404, "not found\n")

        def _answer(self, status: int, text: str, kind: str = "text/plain") -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # scrapes every few seconds are not worth a log line

    server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("gate.metrics_serving", address=f"{host or '0.0.0.0'}:{server.server_port}")
    return server

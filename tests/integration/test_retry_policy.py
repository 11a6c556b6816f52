"""The one retry policy, as a table, against a scripted HTTP server: which statuses and faults
are retried, Retry-After honoured and capped, and whether the per-request budget or the run's
deadline ends the retries (an exhausted budget is an API failure; a reached deadline is a
timeout, which --on-timeout decides about)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes.client.api_client import ApiClient
from kubernetes.client.configuration import Configuration

from image_awaiter.core.errors import ApiError, DeadlineReached, Forbidden, NotFound
from image_awaiter.kube.client import Kube
from image_awaiter.kube.resources import NODES

OK = (200, {}, {"kind": "NodeList", "metadata": {"resourceVersion": "1"}, "items": []})
Response = tuple[int, dict[str, str], dict[str, Any]]


class ScriptedServer:
    """Answers each request with the next scripted response, then with OK."""

    def __init__(self) -> None:
        self.script: list[Response] = []
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                status, headers, body = server.script.pop(0) if server.script else OK
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    thread = threading.Thread(target=scripted.httpd.serve_forever, daemon=True)
    thread.start()
    yield scripted
    scripted.httpd.shutdown()
    scripted.httpd.server_close()


def kube_for(url: str, *, deadline: float | None = None) -> Kube:
    configuration = Configuration()
    configuration.host = url
    configuration.retries = False
    return Kube(ApiClient(configuration=configuration), deadline=deadline)


def status(code: int) -> dict[str, Any]:
    return {"kind": "Status", "code": code, "message": f"scripted {code}", "reason": "R"}


@pytest.mark.parametrize("code", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_until_an_answer_comes(
    server: ScriptedServer, code: int
) -> None:
    server.script = [(code, {}, status(code)), (code, {}, status(code))]
    assert kube_for(server.url).request("GET", NODES.address())["kind"] == "NodeList"
    assert server.hits == 3


@pytest.mark.parametrize(
    ("code", "error"), [(400, ApiError), (403, Forbidden), (404, NotFound), (422, ApiError)]
)
def test_permanent_statuses_fail_at_once(
    server: ScriptedServer, code: int, error: type[ApiError]
) -> None:
    server.script = [(code, {}, status(code))]
    with pytest.raises(error):
        kube_for(server.url).request("GET", NODES.address())
    assert server.hits == 1


def test_retry_after_is_honoured(server: ScriptedServer) -> None:
    server.script = [(429, {"Retry-After": "1"}, status(429))]
    started = time.monotonic()
    kube_for(server.url).request("GET", NODES.address())
    assert time.monotonic() - started >= 0.9
    assert server.hits == 2


def test_a_long_retry_after_is_cut_to_the_budget(server: ScriptedServer) -> None:
    server.script = [(429, {"Retry-After": "3600"}, status(429))] * 5
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        kube_for(server.url).request("GET", NODES.address(), budget=1.0)
    assert time.monotonic() - started < 5
    assert not isinstance(caught.value, DeadlineReached)
    assert "kept failing" in caught.value.message


def test_a_refused_connection_is_retried_until_the_budget_is_spent(
    server: ScriptedServer,
) -> None:
    url = server.url
    server.httpd.shutdown()
    server.httpd.server_close()
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        kube_for(url).request("GET", NODES.address(), budget=1.0)
    assert 0.9 <= time.monotonic() - started < 5
    assert not isinstance(caught.value, DeadlineReached)


def test_a_deadline_before_the_budget_ends_the_retries_as_a_timeout(
    server: ScriptedServer,
) -> None:
    server.script = [(503, {}, status(503))] * 100
    kube = kube_for(server.url, deadline=time.monotonic() + 1.0)
    started = time.monotonic()
    with pytest.raises(DeadlineReached) as caught:
        kube.request("GET", NODES.address(), budget=30.0)
    assert time.monotonic() - started < 5
    assert "until the deadline" in caught.value.message

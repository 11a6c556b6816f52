"""The fault-injecting proxy in front of the real API server: each rule of the simulated API
server's vocabulary does to a real request what it does there, and what passes is untouched."""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from simcluster.apiclient import UNREACHABLE, Api
from simcluster.apiserver.faults import Fault, Faults
from simcluster.controlplane import binaries
from simcluster.controlplane.certificates import Identity
from simcluster.controlplane.endpoints import Endpoint
from simcluster.controlplane.faultproxy import FaultProxy


@pytest.fixture
def faults() -> Faults:
    return Faults(seed=1)


@pytest.fixture
def proxy(control_plane: Endpoint, faults: Faults, tmp_path: Path) -> Iterator[FaultProxy]:
    """A proxy that acts as the admin for requests without credentials of their own."""
    with FaultProxy.in_front_of(control_plane, rules=faults, directory=tmp_path / "proxy") as up:
        yield up


def _through(proxy: FaultProxy, control_plane: Endpoint) -> Api:
    return Api.from_files(proxy.url, ca=control_plane.ca_cert)


def _watch(
    proxy: FaultProxy, control_plane: Endpoint, path: str
) -> tuple[list[dict[str, Any]], str]:
    """Read a watch through the proxy with urllib3, as the awaiter's client does: the events,
    and how the stream ended ("ended" cleanly, "broken" mid-way, or "still streaming")."""
    pool = urllib3.PoolManager(ca_certs=str(control_plane.ca_cert))
    response = pool.request(
        "GET", proxy.url + path, headers={"Accept": "application/json"}, preload_content=False,
        timeout=30,
    )  # fmt: skip
    events: list[dict[str, Any]] = []
    try:
        for chunk in response.read_chunked():
            events += [json.loads(line) for line in chunk.splitlines() if line.strip()]
            if len(events) >= 3:  # enough to tell a cut from a passing stream
                return events, "still streaming"
    except urllib3.exceptions.ProtocolError:
        return events, "broken"
    finally:
        response.release_conn()
        pool.clear()
    return events, "ended"


def _config_maps(admin: Api, namespace: str, count: int) -> str:
    """Create `count` ConfigMaps; the resourceVersion before the first."""
    listed = admin.get(f"/api/v1/namespaces/{namespace}/configmaps")
    for index in range(count):
        admin.create(
            f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": f"c{index}"}}
        )
    return str(listed["metadata"]["resourceVersion"])


def test_a_request_with_no_rule_passes_through_with_the_clients_own_token(
    control_plane: Endpoint, namespace: str, proxy: FaultProxy
) -> None:
    admin = control_plane.admin
    admin.create(f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "robot"}})
    token = admin.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/robot/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )["status"]["token"]
    robot = Api.from_files(proxy.url, ca=control_plane.ca_cert, token=token)
    review = robot.create(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:robot"
    status, _ = robot.request("GET", "/api/v1/nodes")
    assert status == 403  # the token's identity decides, not the proxy's upstream identity


@pytest.mark.parametrize(
    ("code", "reason"),
    [(500, "InternalError"), (503, "ServiceUnavailable"), (504, "Timeout")],
)
def test_a_status_rule_answers_that_status_as_many_times_as_asked(
    control_plane: Endpoint,
    namespace: str,
    proxy: FaultProxy,
    faults: Faults,
    code: int,
    reason: str,
) -> None:
    faults.add(Fault(method="GET", path=f"/namespaces/{namespace}$", status=code, times=2))
    client = _through(proxy, control_plane)
    answers = [client.request("GET", f"/api/v1/namespaces/{namespace}") for _ in range(3)]
    assert [status for status, _ in answers] == [code, code, 200]
    assert answers[0][1]["kind"] == "Status" and answers[0][1]["reason"] == reason
    assert answers[2][1]["metadata"]["name"] == namespace


def test_a_429_rule_sends_retry_after(
    control_plane: Endpoint, proxy: FaultProxy, faults: Faults
) -> None:
    faults.add(Fault(path="/api/v1/nodes", status=429, retry_after=2))
    context = ssl.create_default_context(cafile=str(control_plane.ca_cert))
    host, port = proxy.url.removeprefix("https://").split(":")
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
    connection.request("GET", "/api/v1/nodes")
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert (response.status, response.getheader("Retry-After")) == (429, "2")
    assert (body["reason"], body["details"]["retryAfterSeconds"]) == ("TooManyRequests", 2)


def test_a_reset_rule_resets_the_connection(
    control_plane: Endpoint, proxy: FaultProxy, faults: Faults
) -> None:
    faults.add(Fault(path="/api/v1/namespaces", reset=True))
    client = _through(proxy, control_plane)
    with pytest.raises(UNREACHABLE):
        client.request("GET", "/api/v1/namespaces")
    assert client.request("GET", "/api/v1/namespaces")[0] == 200
    assert [e.outcome for e in proxy.exchanges] == ["reset", "forwarded 200"]


def test_a_delay_rule_stalls_the_request_then_answers_it(
    control_plane: Endpoint, proxy: FaultProxy, faults: Faults
) -> None:
    faults.add(Fault(path="/version", status=0, delay=1.0))
    client = _through(proxy, control_plane)
    started = time.monotonic()
    status, version = client.request("GET", "/version")
    assert status == 200 and version["gitVersion"] == control_plane.version
    assert time.monotonic() - started >= 1.0


def test_a_watch_passes_its_events_through(
    control_plane: Endpoint, namespace: str, proxy: FaultProxy
) -> None:
    since = _config_maps(control_plane.admin, namespace, 3)
    events, end = _watch(
        proxy,
        control_plane,
        f"/api/v1/namespaces/{namespace}/configmaps?watch=1&resourceVersion={since}",
    )
    assert end == "still streaming"
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "c0"),
        ("ADDED", "c1"),
        ("ADDED", "c2"),
    ]


def test_a_watch_cut_after_two_events_breaks_mid_stream(
    control_plane: Endpoint, namespace: str, proxy: FaultProxy, faults: Faults
) -> None:
    since = _config_maps(control_plane.admin, namespace, 3)
    faults.add(Fault(path="/configmaps", watch=True, status=0, cut_after_events=2))
    events, end = _watch(
        proxy,
        control_plane,
        f"/api/v1/namespaces/{namespace}/configmaps?watch=1&resourceVersion={since}",
    )
    assert [e["object"]["metadata"]["name"] for e in events] == ["c0", "c1"]
    assert end == "broken"


@pytest.mark.parametrize("after", [0, 1])
def test_a_410_watch_rule_ends_the_stream_with_the_real_expired_status(
    control_plane: Endpoint, namespace: str, proxy: FaultProxy, faults: Faults, after: int
) -> None:
    since = _config_maps(control_plane.admin, namespace, 2)
    faults.add(Fault(path="/configmaps", watch=True, status=410, cut_after_events=after))
    events, end = _watch(
        proxy,
        control_plane,
        f"/api/v1/namespaces/{namespace}/configmaps?watch=1&resourceVersion={since}",
    )
    assert end == "ended"
    assert [e["type"] for e in events] == ["ADDED"] * after + ["ERROR"]
    status = events[-1]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert status["message"].startswith(f"too old resource version: {since}")


def test_real_kubectl_works_through_the_proxy_and_honours_its_retry_after(
    control_plane: Endpoint, namespace: str, proxy: FaultProxy, faults: Faults, tmp_path: Path
) -> None:
    admin = control_plane.admin
    admin.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "viewer"}}
    )
    token = admin.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/viewer/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )["status"]["token"]
    kubeconfig = control_plane.write_kubeconfig(
        tmp_path / "kubeconfig", namespace=namespace, token=token, server=proxy.url
    )
    faults.add(Fault(method="POST", path="/selfsubjectreviews", status=429, retry_after=1))
    kubectl = str(binaries.require()["kubectl"])
    shown = subprocess.run(
        [kubectl, "--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"]["userInfo"]["username"].endswith(":viewer")
    outcomes = [e.outcome for e in proxy.exchanges if e.path.endswith("/selfsubjectreviews")]
    assert outcomes == ["injected 429", "forwarded 201"]  # client-go honoured Retry-After


def _whoami(kubeconfig: Path) -> dict[str, Any]:
    kubectl = str(binaries.require()["kubectl"])
    shown = subprocess.run(
        [kubectl, "--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    user_info: dict[str, Any] = json.loads(shown.stdout)["status"]["userInfo"]
    return user_info


def test_the_admin_kubeconfig_works_through_the_proxy_by_changing_only_its_server(
    control_plane: Endpoint, proxy: FaultProxy, tmp_path: Path
) -> None:
    kubeconfig = control_plane.write_kubeconfig(tmp_path / "kubeconfig", server=proxy.url)
    user = _whoami(kubeconfig)
    assert user["username"] == "kubernetes-admin"
    assert "system:masters" in user["groups"]


def test_a_certificate_user_is_impersonated_so_rbac_decides_for_it(
    control_plane: Endpoint, namespace: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    name = f"system:node:{namespace}-node"
    pair = control_plane.identity(Identity(name, ("system:nodes",)), directory=tmp_path)
    node = Api.from_files(proxy.url, ca=control_plane.ca_cert, cert=pair.cert, key=pair.key)
    review = node.create(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert review["status"]["userInfo"]["username"] == name
    status, denied = node.request("GET", f"/api/v1/namespaces/{namespace}/secrets")
    assert (status, denied["reason"]) == (403, "Forbidden")


def test_a_large_list_passes_intact_and_a_watch_rule_leaves_it_alone(
    control_plane: Endpoint, proxy: FaultProxy, faults: Faults
) -> None:
    faults.add(Fault(path="/serviceaccounts", status=0, cut_after_events=1, times=None))
    path = "/api/v1/namespaces/kube-system/serviceaccounts"
    direct = control_plane.admin.get(path)
    status, proxied = _through(proxy, control_plane).request("GET", path)
    assert status == 200
    assert len(json.dumps(proxied)) > 4096  # past Go's buffer: the API server sends it chunked
    names = sorted(item["metadata"]["name"] for item in proxied["items"])
    assert names == sorted(item["metadata"]["name"] for item in direct["items"])

"""`--pull-method auto` against the simulated server (issue 19): image volumes only where the
server's `/version` and every target node's `containerRuntimeVersion` support them, said in a
log line and in the report."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from simcluster.apiserver import discovery

APP = "quay.io/org/app:1"


def set_runtime(sim: Any, node: str, runtime: str) -> None:
    def change(obj: dict[str, Any]) -> None:
        obj["status"]["nodeInfo"]["containerRuntimeVersion"] = runtime

    sim.store.mutate("nodes", node, None, change)


def chosen(result: Any) -> tuple[str, str]:
    [line] = [json.loads(x) for x in result.stderr.splitlines() if '"pull_method.chosen"' in x]
    assert result.report is not None
    assert result.report["pullMethod"] == {"method": line["method"], "reason": line["reason"]}
    return line["method"], line["reason"]


def pod_spec(result: Any) -> dict[str, Any]:
    [daemonset] = [d for d in yaml.safe_load_all(result.stdout) if d]
    return dict(daemonset["spec"]["template"]["spec"])


@pytest.fixture
def version(monkeypatch: pytest.MonkeyPatch) -> Any:
    def serve(git_version: str) -> None:
        monkeypatch.setitem(discovery.VERSION, "gitVersion", git_version)

    return serve


def test_auto_keeps_init_containers_on_a_server_before_1_35(
    sim: Any, run_cli: Any, version: Any
) -> None:
    version("v1.33.0-sim")  # the simulated server says v1.36.3 unless told otherwise
    sim.add_node("a")
    result = run_cli("await", "--image", APP, "--pull-method", "auto", "--dry-run", "-o", "yaml")
    assert result.code == 1, result.output
    assert chosen(result) == (
        "initContainers",
        "Kubernetes v1.33.0-sim has image volumes off by default (on from 1.35)",
    )
    assert "initContainers" in pod_spec(result)


def test_auto_chooses_image_volumes_where_server_and_every_runtime_support_them(
    sim: Any, run_cli: Any, version: Any
) -> None:
    version("v1.35.0")
    for node in ("a", "b"):
        sim.add_node(node)
        set_runtime(sim, node, "containerd://2.0.4")
    result = run_cli("await", "--image", APP, "--pull-method", "auto", "--dry-run", "-o", "yaml")
    assert result.code == 1, result.output
    assert chosen(result) == (
        "imageVolumes",
        "Kubernetes v1.35.0 and every target node's runtime (containerd://2.0.4) support them",
    )
    spec = pod_spec(result)
    assert "initContainers" not in spec
    assert [v["image"]["reference"] for v in spec["volumes"]] == [APP]


def test_one_node_with_an_older_runtime_keeps_init_containers_and_is_named(
    sim: Any, run_cli: Any, version: Any
) -> None:
    version("v1.35.0")
    sim.add_node("new")
    set_runtime(sim, "new", "containerd://2.0.4")
    sim.add_node("old")
    set_runtime(sim, "old", "containerd://1.7.22")  # simulated nodes say containerd://2.1.4
    result = run_cli("await", "--image", APP, "--pull-method", "auto", "--interval", "200ms")
    assert result.code == 0, result.output
    assert chosen(result) == (
        "initContainers",
        "node old runs containerd://1.7.22; image volumes need containerd 2 or CRI-O 1.30+",
    )

"""The namespace a run uses when none is given: the kubeconfig's context's, as kubectl's
(connecting.py reads it from the loader that loaded the configuration, the file parsed once)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import TOKEN


def two_context_kubeconfig(sim: Any, path: Path) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "one",
        "clusters": [{"name": "sim", "cluster": {"server": sim.url}}],
        "users": [{"name": "sim-user", "user": {"token": TOKEN}}],
        "contexts": [
            {"name": "one", "context": {"cluster": "sim", "user": "sim-user", "namespace": "a"}},
            {"name": "two", "context": {"cluster": "sim", "user": "sim-user", "namespace": "b"}},
            {"name": "three", "context": {"cluster": "sim", "user": "sim-user"}},
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def started_namespace(result: Any) -> str:
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    [started] = [e for e in events if e["event"] == "run.started"]
    return str(started["namespace"])


def test_the_namespace_is_the_current_or_chosen_contexts_else_default(
    sim: Any, run_cli: Any, tmp_path: Path
) -> None:
    for name in ("a", "b"):
        sim.add_namespace(name)
    sim.add_node("node-a", images=["busybox:1.36"])
    kubeconfig = str(two_context_kubeconfig(sim, tmp_path / "two-contexts"))
    namespaces = []
    for context in ((), ("--context", "two"), ("--context", "three")):
        result = run_cli(
            "check", "--image", "busybox:1.36", "--kubeconfig", kubeconfig, *context, kube=False
        )
        assert result.code == 0, result.output
        namespaces.append(started_namespace(result))
    assert namespaces == ["a", "b", "default"]


def test_an_unknown_context_is_one_line_and_exit_2(sim: Any, run_cli: Any, tmp_path: Path) -> None:
    kubeconfig = str(two_context_kubeconfig(sim, tmp_path / "two-contexts"))
    result = run_cli(
        "check", "--image", "busybox", "--kubeconfig", kubeconfig, "--context", "four", kube=False
    )
    assert result.code == 2
    assert result.last_line.startswith("image-awaiter: cannot load Kubernetes configuration:")
    assert "Traceback" not in result.output

"""The real image-awaiter CLI against both API servers, with the same simulated nodes: what a
Helm hook or a CI gate sees must not depend on which server answers. Its puller DaemonSet
selects this test's nodes only (the real control plane is shared by the run)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import cli_command, cli_env
from tests.differential.conftest import ROOT, RUN_LABEL, Backend

PAUSE = "registry.k8s.io/pause:3.10"
WANTED = "quay.io/differential/notebook:1"
MISSING = "quay.io/differential/no-such-notebook:1"


def _await(backend: Backend, tmp_path: Path, *images: str) -> tuple[int, str, dict[str, Any]]:
    """`image-awaiter await --daemonset-spec` with a puller for `images` on the test's nodes."""
    spec = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "prepuller"},
        "spec": {
            "selector": {"matchLabels": {"app": "prepuller"}},
            "template": {
                "metadata": {"labels": {"app": "prepuller"}},
                "spec": {
                    "nodeSelector": {RUN_LABEL: backend.run},
                    "initContainers": [
                        {"name": f"pull-{i}", "image": image} for i, image in enumerate(images)
                    ],
                    "containers": [{"name": "pause", "image": PAUSE}],
                },
            },
        },
    }
    manifest, report = tmp_path / "puller.json", tmp_path / "report.json"
    manifest.write_text(json.dumps(spec))
    args = [
        "await", "--daemonset-spec", str(manifest), "--kubeconfig", str(backend.kubeconfig),
        "-n", backend.namespace, "--interval", "200ms", "--timeout", "90s",
        "--report", str(report), "--log-format", "json",
    ]  # fmt: skip
    done = subprocess.run(
        cli_command(args), capture_output=True, text=True, timeout=150, env=cli_env(), cwd=ROOT
    )
    return done.returncode, done.stderr, json.loads(report.read_text())


def test_the_awaiter_pulls_onto_every_eligible_node_and_cleans_up(
    backend: Backend, tmp_path: Path
) -> None:
    for image in (PAUSE, WANTED):
        backend.world.registry.add(image, pull_seconds=3.0)
    nodes = {backend.add_node("a"), backend.add_node("b")}
    code, stderr, report = _await(backend, tmp_path, WANTED)
    assert code == 0, stderr
    assert {n["name"]: n["status"] for n in report["nodes"]} == dict.fromkeys(nodes, "done")
    assert backend.api.call("GET", backend.path("daemonsets"))["items"] == []


def test_a_missing_image_fails_the_awaiter_with_exit_4_naming_node_and_runtime_text(
    backend: Backend, tmp_path: Path
) -> None:
    backend.world.registry.add(PAUSE, pull_seconds=0.1)
    backend.world.fail_pull(MISSING, kind="tag-not-found")
    node = backend.add_node("a")
    code, stderr, report = _await(backend, tmp_path, MISSING)
    assert code == 4, stderr
    [verdict] = report["nodes"]
    assert verdict["name"] == node
    assert verdict["status"] != "done"
    assert f"{MISSING}: not found" in json.dumps(verdict)
    assert backend.api.call("GET", backend.path("daemonsets"))["items"] == []

"""The REAL kubectl against the simulated cluster, as an operator watching a pre-pull would use
it: apply a puller DaemonSet, then see one pod per node and the DaemonSet's counts.

Not repeated here: tests/simulated_api/test_kubectl.py covers `get nodes -o wide`, apply
(created, configured, server-side), `get ds -o wide` columns, `describe node`, `get events` and
`logs`; test_helm_lifecycle.py's test_kubectl_shows_why_the_hook_failed_in_describe_logs_and...
covers `describe`, `logs` and `get events` of a failed hook pod."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.helm.conftest import BASE, NAMESPACE, Cluster

PULLER = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "base-puller", "labels": {"app": "base-puller"}},
    "spec": {
        "selector": {"matchLabels": {"app": "base-puller"}},
        "template": {
            "metadata": {"labels": {"app": "base-puller"}},
            "spec": {
                "containers": [
                    {"name": "pull", "image": BASE, "command": ["/bin/true"]},
                ],
            },
        },
    },
}


def table(text: str) -> list[dict[str, str]]:
    """kubectl's table output as rows keyed by column header (columns split on 2+ spaces)."""
    lines = [line for line in text.splitlines() if line.strip()]
    headers = re.split(r"\s{2,}", lines[0].strip())
    return [
        dict(zip(headers, re.split(r"\s{2,}", line.strip()), strict=False)) for line in lines[1:]
    ]


def test_kubectl_get_pods_wide_shows_one_puller_pod_per_node_after_apply(
    cluster: Cluster, tmp_path: Path
) -> None:
    manifest = tmp_path / "puller.yaml"
    manifest.write_text(yaml.safe_dump(PULLER))
    mark = cluster.mark()

    applied = cluster.kubectl("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "daemonset.apps/base-puller created"
    again = cluster.kubectl("apply", "-f", str(manifest))
    assert again.stdout.strip() == "daemonset.apps/base-puller unchanged", again.stderr
    writes = [
        (e.verb, e.code)
        for e in cluster.audit_since(mark)
        if e.resource == "daemonsets" and e.verb in ("create", "patch", "update")
    ]
    assert writes == [("create", 201)], writes  # client-side apply: unchanged sends no patch

    def pulled_everywhere(sim: object) -> bool:
        return all(BASE in names for names in cluster.node_images().values())

    assert cluster.sim.wait_for(pulled_everywhere, timeout=30)

    pods = table(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide").stdout)
    assert sorted(p["NODE"] for p in pods) == ["user-0", "user-1"]
    assert all(p["NAME"].startswith("base-puller-") and p["STATUS"] == "Running" for p in pods), (
        pods
    )

    [ds] = table(cluster.kubectl("get", "ds", "-o", "wide").stdout)
    assert (ds["NAME"], ds["DESIRED"], ds["CURRENT"], ds["IMAGES"]) == (
        "base-puller",
        "2",
        "2",
        BASE,
    )

    reads = {(e.verb, e.resource, e.code) for e in cluster.audit_since(mark) if e.verb == "list"}
    assert {("list", "pods", 200), ("list", "daemonsets", 200)} <= reads

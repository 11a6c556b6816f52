"""The REAL kubectl against the simulated cluster, as an operator watching a pre-pull would use
it: apply a DaemonSet, then read nodes, pods and DaemonSets. (describe, logs and events of a
hook pod: test_helm_lifecycle's test_kubectl_shows_why_the_hook_failed_in_describe_logs_and...)"""

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


def test_kubectl_applies_a_daemonset_and_reads_its_pods_nodes_and_events(
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

    nodes = table(cluster.kubectl("get", "nodes", "-o", "wide").stdout)
    assert {(n["NAME"], n["STATUS"]) for n in nodes} == {("user-0", "Ready"), ("user-1", "Ready")}
    assert all(n["INTERNAL-IP"] and n["CONTAINER-RUNTIME"] for n in nodes), nodes

    pods = table(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide").stdout)
    assert sorted(p["NODE"] for p in pods) == ["user-0", "user-1"]
    assert all(p["NAME"].startswith("base-puller-") for p in pods), pods

    [ds] = table(cluster.kubectl("get", "ds", "-o", "wide").stdout)
    assert (ds["NAME"], ds["DESIRED"], ds["IMAGES"]) == ("base-puller", "2", BASE)

    reads = {(e.verb, e.resource, e.code) for e in cluster.audit_since(mark) if e.verb == "list"}
    assert {("list", "nodes", 200), ("list", "pods", 200), ("list", "daemonsets", 200)} <= reads

"""The chart and the real `helm`/`kubectl` against the real control plane: a copy of the chart
(optionally without one of its RBAC rules), rendered by the real `helm template`, applied by
the real `kubectl`, and the identity of its ServiceAccount as a token kubeconfig."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from simcluster.controlplane import binaries
from simcluster.controlplane.endpoints import Endpoint

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart"
TOOLS = ROOT / ".tools" / "bin"
# A rule in role.yaml / clusterrole.yaml: `  - apiGroups: [...]` and its indented lines.
RULE = re.compile(r"^  - apiGroups:.*\n(?:    .*\n)+", re.MULTILINE)
RBAC_TEMPLATES = ("role.yaml", "clusterrole.yaml")
IDENTITY_TEMPLATES = ("serviceaccount.yaml", *RBAC_TEMPLATES, "rolebinding.yaml",
                      "clusterrolebinding.yaml")  # fmt: skip


def rules() -> list[tuple[str, str]]:
    """(template, rule text) for every rule the chart grants the awaiter."""
    found = []
    for template in RBAC_TEMPLATES:
        text = (CHART / "templates" / template).read_text()
        found += [(template, match.group(0)) for match in RULE.finditer(text)]
    return found


def rule_id(case: tuple[str, str]) -> str:
    resources = re.search(r"resources: \[(.*)\]", case[1])
    assert resources is not None, case
    return f"{case[0]}:{resources.group(1).replace(chr(34), '')}"


def chart_without(case: tuple[str, str] | None, directory: Path) -> Path:
    """A copy of the chart, with one rule taken out (or none)."""
    chart = directory / "image-awaiter"
    shutil.copytree(CHART, chart)
    if case is not None:
        template, rule = case
        path = chart / "templates" / template
        path.write_text(path.read_text().replace(rule, "", 1))
        assert rule not in path.read_text()
    return chart


def run(argv: list[str], *, stdin: str | None = None, timeout: float = 120) -> str:
    done = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(argv[:3])}: {done.stderr}"
    return done.stdout


def kubectl(control_plane: Endpoint, *args: str, stdin: str | None = None) -> str:
    """The real kubectl of the control plane's release, as the admin."""
    command = [str(binaries.require()["kubectl"]), "--kubeconfig", str(control_plane.kubeconfig)]
    return run([*command, *args], stdin=stdin)


def apply_identity(control_plane: Endpoint, *, chart: Path, release: str, namespace: str) -> str:
    """The chart's ServiceAccount, Role, ClusterRole and bindings, rendered by the real helm
    4 for `release` and applied by kubectl; the ServiceAccount's name."""
    shown = [arg for template in IDENTITY_TEMPLATES for arg in ("-s", f"templates/{template}")]
    rendered = run(
        [str(TOOLS / "helm"), "template", release, str(chart), "--namespace", namespace,
         "--set", "images={quay.io/example/model:1}", *shown]
    )  # fmt: skip
    kubectl(control_plane, "apply", "--namespace", namespace, "-f", "-", stdin=rendered)
    account = re.search(r"kind: ServiceAccount\nmetadata:\n  name: (\S+)", rendered)
    assert account is not None, rendered
    return account.group(1)


def token_kubeconfig(control_plane: Endpoint, *, account: str, namespace: str, path: Path) -> Path:
    """A kubeconfig holding a token of the ServiceAccount (TokenRequest, as a pod's projected
    token), for the awaiter to run with exactly the chart's permissions."""
    issued = control_plane.admin.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    return control_plane.write_kubeconfig(
        path, namespace=namespace, token=issued["status"]["token"]
    )

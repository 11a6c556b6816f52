"""Start-up (issue 13): what a `check` process imports, read from its own `sys.modules` at exit.

Structural, not timed: each module named here cost start-up time every run (measured with
`python -X importtime`, README "Image size"), and a change that brings one back fails here
whatever the machine's load. The process is the real entry point (`image_awaiter.entry.main`,
as `image-awaiter` and `python -m image_awaiter` start it) against the simulated cluster.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, cli_env

IMAGE = "registry.example.com/app:1"

# Run the entry point with an atexit hook (entry.main runs atexit handlers before os._exit)
# that writes the names in sys.modules.
DUMP_MODULES_AT_EXIT = (
    "import atexit, json, sys\n"
    "out = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(out, 'w').write(json.dumps(sorted(sys.modules))))\n"
    "from image_awaiter.entry import main\n"
    "main()\n"
)

# What a check never uses, and who imported it before.
NEVER_IMPORTED = {
    "rich": "structlog's pretty tracebacks (the live view imports it on a terminal only)",
    "pygments": "rich",
    "asyncio": "structlog's and tenacity's async methods",
    "pydantic": "the client's ApiResponse and SecretStr",
    "requests": "the client's OIDC token refresh",
    "requests_oauthlib": "the client's OIDC token refresh",
    "oauthlib.oauth2": "the client's OIDC token refresh",
    "dateutil.parser": "the client's typed models",
    "multiprocessing.pool": "the client's async_req",
    "importlib.metadata": "urllib3's h2 version check",
    "kubernetes.dynamic": "kubernetes/__init__",
    "kubernetes.watch": "kubernetes/__init__",
    "kubernetes.stream": "kubernetes/__init__",
    "kubernetes.leaderelection": "kubernetes/__init__",
    "kubernetes.informer": "kubernetes/__init__",
    "kubernetes.utils.create_from_yaml": "kubernetes/utils/__init__",
    "kubernetes.config.incluster_config": "kubernetes/config/__init__, outside a pod",
    "jsonschema": "kubernetes.dynamic",
    "websocket": "kubernetes.stream",
    "docker_image": "references.py, for the common forms refsplit.py splits",
    "image_awaiter.spec.manifests": "settings.py, for --from-manifests only",
    "image_awaiter.spec.groups": "settings.py, for --from-manifests only",
    "image_awaiter.core.pullevents": "pullerrors.py and pullfacts.py, for kubelet events only",
    "statistics": "pullfacts.py, for a pull report's median only",
    "regex": "docker_image",
}


def check_modules(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    out = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", DUMP_MODULES_AT_EXIT, str(out), *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    return result, set(json.loads(out.read_text()))


def test_a_check_that_passes_imports_none_of_what_it_never_uses(
    sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    sim.add_node("node-a", images=[IMAGE])
    result, modules = check_modules(
        tmp_path, "check", "--image", IMAGE, "--kubeconfig", str(kubeconfig), "-q"
    )
    assert result.returncode == 0, result.stderr
    imported = {name: why for name, why in NEVER_IMPORTED.items() if name in modules}
    assert imported == {}
    typed = ("kubernetes.client.models.", "kubernetes.client.api.")
    assert [m for m in modules if m.startswith(typed)] == []
    # What it does use is there: the transport and the kubeconfig loader.
    assert {"kubernetes.client.api_client", "kubernetes.config.kube_config"} <= modules


def test_help_imports_neither_the_kubernetes_client_nor_yaml(tmp_path: Path) -> None:
    result, modules = check_modules(tmp_path, "check", "--help")
    assert result.returncode == 0, result.stderr
    assert "--image" in result.stdout
    assert sorted(m for m in modules if m.split(".")[0] in ("kubernetes", "urllib3", "yaml")) == []

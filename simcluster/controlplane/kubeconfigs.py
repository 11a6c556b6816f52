"""Kubeconfig files for the control plane's clients: kubectl, helm, the awaiter, the
controller manager and the scheduler. Certificates are embedded, so a file works alone."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any


def _data(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write(
    path: Path,
    *,
    server: str,
    ca: Path | None,
    cert: Path | None = None,
    key: Path | None = None,
    token: str | None = None,
    user: str = "admin",
    namespace: str = "default",
) -> Path:
    """A one-context kubeconfig (JSON is YAML). No `ca`: TLS verification is skipped."""
    cluster: dict[str, Any] = {"server": server}
    if ca is None:
        cluster["insecure-skip-tls-verify"] = True
    else:
        cluster["certificate-authority-data"] = _data(ca)
    credentials: dict[str, Any] = {}
    if cert is not None and key is not None:
        credentials["client-certificate-data"] = _data(cert)
        credentials["client-key-data"] = _data(key)
    if token is not None:
        credentials["token"] = token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "control-plane", "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {
                "name": "control-plane",
                "context": {"cluster": "control-plane", "user": user, "namespace": namespace},
            }
        ],
        "current-context": "control-plane",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path

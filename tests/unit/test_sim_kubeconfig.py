"""How the simulated kubelets read a kubeconfig (simcluster/apiclient.py): credentials as
inline data or as files relative to the kubeconfig, the current or a named context."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from simcluster.apiclient import Credentials, load_kubeconfig


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _write(folder: Path, *, user: dict[str, str], cluster: dict[str, object]) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "clusters": [
            {"name": "c", "cluster": {"server": "https://127.0.0.1:6443/", **cluster}},
            {"name": "other", "cluster": {"server": "http://127.0.0.1:8080"}},
        ],
        "users": [{"name": "u", "user": user}, {"name": "nobody", "user": {}}],
        "contexts": [
            {"name": "main", "context": {"cluster": "c", "user": "u"}},
            {"name": "plain", "context": {"cluster": "other", "user": "nobody"}},
        ],
    }
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("user", "cluster", "expected"),
    [
        (
            {"client-certificate-data": _b64(b"CERT"), "client-key-data": _b64(b"KEY")},
            {"certificate-authority-data": _b64(b"CA")},
            Credentials("https://127.0.0.1:6443", b"CA", b"CERT", b"KEY"),
        ),
        (
            {"client-certificate": "pki/client.crt", "client-key": "pki/client.key"},
            {"certificate-authority": "pki/ca.crt"},
            Credentials("https://127.0.0.1:6443", b"ca-file", b"cert-file", b"key-file"),
        ),
        (
            {"token": "s3cr3t"},
            {"insecure-skip-tls-verify": True},
            Credentials("https://127.0.0.1:6443", token="s3cr3t", insecure=True),
        ),
    ],
    ids=["inline data", "files relative to the kubeconfig", "token, no verification"],
)
def test_a_kubeconfig_gives_the_current_contexts_server_and_credentials(
    tmp_path: Path, user: dict[str, str], cluster: dict[str, object], expected: Credentials
) -> None:
    (tmp_path / "pki").mkdir()
    for name, content in (
        ("ca.crt", "ca-file"),
        ("client.crt", "cert-file"),
        ("client.key", "key-file"),
    ):
        (tmp_path / "pki" / name).write_text(content)
    assert load_kubeconfig(_write(tmp_path, user=user, cluster=cluster)) == expected


def test_a_named_context_is_read_instead_of_the_current_one(tmp_path: Path) -> None:
    path = _write(tmp_path, user={"token": "t"}, cluster={})
    assert load_kubeconfig(path, context="plain") == Credentials("http://127.0.0.1:8080")

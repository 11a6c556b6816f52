"""`Endpoint`: what another process needs to use a running control plane (its address, CA,
the admin's credentials and kubeconfig, the audit log, the process ids), as one JSON file, so
that pytest's workers, `serve` and a developer's shell share one control plane."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from simcluster.apiclient import Api
from simcluster.controlplane import certificates, kubeconfigs
from simcluster.controlplane.certificates import Identity, KeyPair
from simcluster.nodes.kubeletserver import ServingTls


@dataclass(frozen=True)
class Endpoint:
    server: str
    kubeconfig: Path
    ca_cert: Path
    ca_key: Path
    admin_cert: Path
    admin_key: Path
    audit_log: Path
    workdir: Path
    version: str
    pids: dict[str, int]

    @property
    def admin(self) -> Api:
        return Api.from_files(
            self.server, ca=self.ca_cert, cert=self.admin_cert, key=self.admin_key
        )

    def client(self, *, token: str) -> Api:
        """A client with a bearer token (a ServiceAccount's) instead of the admin certificate."""
        return Api.from_files(self.server, ca=self.ca_cert, token=token)

    def identity(self, identity: Identity, *, directory: Path) -> KeyPair:
        """A client certificate for another user (a node: `system:node:NAME`, `system:nodes`)."""
        ca = KeyPair(self.ca_cert, self.ca_key)
        directory.mkdir(parents=True, exist_ok=True)
        return certificates.issue(ca=ca, directory=directory, identity=identity)

    def serving_certificate(self, *, directory: Path, name: str = "fault-proxy") -> KeyPair:
        """A serving certificate from the cluster CA, for a proxy in front of the API server."""
        directory.mkdir(parents=True, exist_ok=True)
        return certificates.serving(
            ca=KeyPair(self.ca_cert, self.ca_key), directory=directory, name=name
        )

    def kubelet_tls(self, *, directory: Path) -> ServingTls:
        """For the simulated kubelets' server (`Kubelets(serving=...)`): a serving certificate
        from the cluster CA, which the API server verifies, and that CA for the certificate the
        API server shows (`--kubelet-client-certificate`)."""
        pair = self.serving_certificate(directory=directory, name="kubelet")
        return ServingTls(cert=pair.cert, key=pair.key, client_ca=self.ca_cert)

    def write_kubeconfig(
        self,
        path: Path,
        *,
        namespace: str = "default",
        token: str | None = None,
        server: str | None = None,
    ) -> Path:
        """An admin kubeconfig (or, with `token`, that token's), optionally for another server
        (a fault proxy in front of this one: it serves a certificate from the same CA)."""
        cert, key = (None, None) if token else (self.admin_cert, self.admin_key)
        return kubeconfigs.write(
            path,
            server=server or self.server,
            ca=self.ca_cert,
            cert=cert,
            key=key,
            token=token,
            namespace=namespace,
        )

    def to_json(self) -> str:
        return json.dumps(
            {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        )

    @classmethod
    def from_json(cls, text: str) -> Endpoint:
        raw: dict[str, Any] = json.loads(text)
        paths = {
            "kubeconfig",
            "ca_cert",
            "ca_key",
            "admin_cert",
            "admin_key",
            "audit_log",
            "workdir",
        }
        fields: dict[str, Any] = {k: Path(v) if k in paths else v for k, v in raw.items()}
        return cls(**fields)

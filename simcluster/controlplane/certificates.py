"""The control plane's keys and certificates, made with the `openssl` command: a cluster CA,
the API server's serving certificate (loopback and the in-cluster names), a client certificate
per identity (the admin in `system:masters`, the controller manager, the scheduler, the API
server's to the kubelets), a kubelet serving certificate on request, and the
ServiceAccount token signing key pair."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "3650"
SERVER_NAMES = (
    "IP:127.0.0.1",
    "IP:10.96.0.1",  # the `kubernetes` Service's cluster IP in --service-cluster-ip-range
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Identity:
    """A client certificate's subject: the user name and its groups."""

    user: str
    groups: tuple[str, ...] = ()

    @property
    def subject(self) -> str:
        return "".join(f"/O={group}" for group in self.groups) + f"/CN={self.user}"


ADMIN = Identity("kubernetes-admin", ("system:masters",))
CONTROLLER_MANAGER = Identity("system:kube-controller-manager")
SCHEDULER = Identity("system:kube-scheduler")
# kube-apiserver's own identity to kubelets (`--kubelet-client-certificate`), as kubeadm's
KUBELET_CLIENT = Identity("kube-apiserver-kubelet-client", ("system:masters",))


@dataclass(frozen=True)
class Certificates:
    ca: KeyPair
    server: KeyPair
    clients: dict[str, KeyPair]  # by user name
    service_account_key: Path
    service_account_public: Path

    def client(self, identity: Identity) -> KeyPair:
        return self.clients[identity.user]


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the control plane needs the `openssl` command to make its certificates")
    subprocess.run([openssl, *args], check=True, capture_output=True)


def _ec_key(path: Path) -> None:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)
    )


def _signed(*, ca: KeyPair, pair: KeyPair, subject: str, extensions: list[str]) -> None:
    _ec_key(pair.key)
    extra = [arg for ext in extensions for arg in ("-addext", ext)]
    _openssl(
        "req", "-new", "-x509", "-key", str(pair.key), "-out", str(pair.cert), "-days", DAYS,
        "-subj", subject, "-CA", str(ca.cert), "-CAkey", str(ca.key), *extra,
    )  # fmt: skip


def make(directory: Path, *, identities: tuple[Identity, ...]) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    ca = KeyPair(directory / "ca.crt", directory / "ca.key")
    _ec_key(ca.key)
    _openssl(
        "req", "-new", "-x509", "-key", str(ca.key), "-out", str(ca.cert), "-days", DAYS,
        "-subj", "/CN=image-awaiter-control-plane-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    server = serving(ca=ca, directory=directory, name="kube-apiserver")
    clients = {
        identity.user: issue(ca=ca, directory=directory, identity=identity)
        for identity in identities
    }
    sa_key, sa_public = directory / "sa.key", directory / "sa.pub"
    _openssl(
        "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(sa_key)
    )
    _openssl("pkey", "-in", str(sa_key), "-pubout", "-out", str(sa_public))
    return Certificates(ca, server, clients, sa_key, sa_public)


def issue(*, ca: KeyPair, directory: Path, identity: Identity) -> KeyPair:
    """A client certificate for `identity`, signed by the cluster CA: a node's
    (`system:node:NAME` in `system:nodes`) or any other user's."""
    stem = identity.user.replace(":", "-")
    pair = KeyPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    _signed(
        ca=ca,
        pair=pair,
        subject=identity.subject,
        extensions=["extendedKeyUsage=clientAuth", "basicConstraints=critical,CA:FALSE"],
    )
    return pair


def serving(*, ca: KeyPair, directory: Path, name: str) -> KeyPair:
    """A serving certificate for loopback and the API server's in-cluster names, signed by the
    cluster CA: the API server's own, or a proxy's in front of it (clients verify both)."""
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    _signed(
        ca=ca,
        pair=pair,
        subject=f"/CN={name}",
        extensions=[
            "subjectAltName=" + ",".join(SERVER_NAMES),
            "extendedKeyUsage=serverAuth",
            "basicConstraints=critical,CA:FALSE",
        ],
    )
    return pair

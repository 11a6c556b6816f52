"""`ControlPlane`: etcd, kube-apiserver, kube-controller-manager and kube-scheduler on loopback,
as a real cluster runs them (TLS, Node+RBAC authorization, ServiceAccount tokens and admission,
every default controller, an audit log), in a temporary directory; ready when `/readyz` passes
and the controllers have given the `default` namespace its ServiceAccount and root CA."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import tempfile
import time
import urllib.request
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from simcluster.apiclient import UNREACHABLE, Api
from simcluster.controlplane import binaries, certificates, kubeconfigs
from simcluster.controlplane.endpoints import Endpoint
from simcluster.controlplane.processes import Process, spawn, wait_until

SERVICE_CIDR = "10.96.0.0/12"
ISSUER = "https://kubernetes.default.svc.cluster.local"
API_QPS, API_BURST = "500", "1000"
START_ATTEMPTS = 3
PROBE_TIMEOUT = 2.0  # a readiness probe; a port that accepts but never answers is not ready
PORT_TAKEN = "address already in use"
# One line per request, written when it completes, as the simulated API server's audit log.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [{"level": "Metadata"}],
}


class ControlPlaneError(RuntimeError):
    """The control plane did not start; the message carries the tail of each process's log."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Ports:
    etcd_client: int = field(default_factory=free_port)
    etcd_peer: int = field(default_factory=free_port)
    apiserver: int = field(default_factory=free_port)
    controller_manager: int = field(default_factory=free_port)
    scheduler: int = field(default_factory=free_port)


class ControlPlane:
    """Start with `start()` (or `with ControlPlane() as cp:`), stop with `stop()`.

    `kubeconfig` is the admin's (client certificate in `system:masters`); `admin` a small JSON
    client; `timings` how long each start phase took; `rss()` each process's resident memory.
    """

    def __init__(
        self,
        *,
        workdir: Path | None = None,
        audit_log: Path | None = None,
        kubeconfig: Path | None = None,
        port: int | None = None,
        keep: bool = False,
    ) -> None:
        """`port`: the API server's (the others are always free ones); `keep`: leave the work
        directory (logs, certificates, etcd data) after `stop()`."""
        self.binaries = binaries.require()
        self.binaries_version = binaries.kubernetes_version()
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="control-plane-"))
        self.logs = self.workdir / "logs"
        self.audit_log = audit_log or self.workdir / "audit.jsonl"
        self.kubeconfig = kubeconfig or self.workdir / "admin.kubeconfig"
        self.keep = keep
        self.fixed_port = port
        self.ports = Ports() if port is None else Ports(apiserver=port)
        self.server = f"https://127.0.0.1:{self.ports.apiserver}"
        self.processes: list[Process] = []
        self.timings: dict[str, float] = {}
        self.certs: certificates.Certificates | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, *, timeout: float = 90.0) -> None:
        """Start everything; a port another process took between choosing and binding it
        (several control planes starting at once) is retried with fresh ports."""
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start(timeout=timeout, started=time.monotonic())
                return
            except BaseException as error:
                logs = self.log_tails()
                self._stop_processes()
                expected = isinstance(error, (TimeoutError, ControlPlaneError))
                if expected and PORT_TAKEN in logs and attempt < START_ATTEMPTS:
                    self._fresh_ports()
                    continue
                self.stop()
                if expected:
                    raise ControlPlaneError(
                        f"control plane did not start: {error}\n{logs}"
                    ) from error
                raise

    def _fresh_ports(self) -> None:
        self.ports = Ports() if self.fixed_port is None else Ports(apiserver=self.fixed_port)
        self.server = f"https://127.0.0.1:{self.ports.apiserver}"
        shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
        shutil.rmtree(self.logs, ignore_errors=True)

    def _start(self, *, timeout: float, started: float) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.certs = certificates.make(
            self.workdir / "pki",
            identities=(
                certificates.ADMIN,
                certificates.CONTROLLER_MANAGER,
                certificates.SCHEDULER,
                certificates.KUBELET_CLIENT,
            ),
        )
        self._write_kubeconfigs()
        self._spawn_etcd()
        self._wait(self._etcd_healthy, timeout=timeout, what="etcd /health", started=started)
        self.timings["etcd"] = time.monotonic() - started
        self._spawn_apiserver()
        self._wait(
            self._apiserver_ready, timeout=timeout, what="kube-apiserver /readyz", started=started
        )
        self.timings["readyz"] = time.monotonic() - started
        self._spawn_controller_manager()
        self._spawn_scheduler()
        for name, port in (
            ("kube-controller-manager", self.ports.controller_manager),
            ("kube-scheduler", self.ports.scheduler),
        ):
            self._wait(
                lambda p=port: _healthz(p),
                timeout=timeout,
                what=f"{name} /healthz",
                started=started,
            )
        self.timings["components"] = time.monotonic() - started
        self._wait(
            self._default_namespace_ready,
            timeout=timeout,
            what="ServiceAccount default and ConfigMap kube-root-ca.crt in namespace default",
            started=started,
        )
        self.timings["ready"] = time.monotonic() - started
        (self.workdir / "endpoint.json").write_text(self.endpoint().to_json())

    def stop(self) -> None:
        """Stop every process, last started first; remove the work directory unless `keep`."""
        self._stop_processes()
        if self._owns_workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_processes(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    # ------------------------------------------------------------------ what others read

    def endpoint(self) -> Endpoint:
        """What other processes need to use this control plane (also in `endpoint.json`)."""
        certs = self._certs()
        admin = certs.client(certificates.ADMIN)
        return Endpoint(
            server=self.server,
            kubeconfig=self.kubeconfig,
            ca_cert=certs.ca.cert,
            ca_key=certs.ca.key,
            admin_cert=admin.cert,
            admin_key=admin.key,
            audit_log=self.audit_log,
            workdir=self.workdir,
            version=self.binaries_version,
            pids={process.name: process.pid for process in self.processes},
        )

    @property
    def admin(self) -> Api:
        return self.endpoint().admin

    def rss(self) -> dict[str, int]:
        """Resident memory of each process, in bytes."""
        return {process.name: process.rss_bytes() for process in self.processes}

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(
            f"--- {p.name} ({p.log}), last {lines} lines:\n{p.tail(lines)}" for p in self.processes
        )

    # ------------------------------------------------------------------ the processes

    def _certs(self) -> certificates.Certificates:
        if self.certs is None:
            raise ControlPlaneError("the control plane is not started")
        return self.certs

    def _kubeconfig_for(self, identity: certificates.Identity) -> Path:
        return self.workdir / f"{identity.user.replace(':', '-')}.kubeconfig"

    def _write_kubeconfigs(self) -> None:
        certs = self._certs()
        admin = certs.client(certificates.ADMIN)
        kubeconfigs.write(
            self.kubeconfig, server=self.server, ca=certs.ca.cert, cert=admin.cert, key=admin.key
        )
        for identity in (certificates.CONTROLLER_MANAGER, certificates.SCHEDULER):
            pair = certs.client(identity)
            kubeconfigs.write(
                self._kubeconfig_for(identity), server=self.server, ca=certs.ca.cert,
                cert=pair.cert, key=pair.key, user=identity.user,
            )  # fmt: skip

    def _spawn(self, name: str, *argv: str) -> None:
        self.processes.append(
            spawn(name=name, argv=[str(self.binaries[name]), *argv], logs=self.logs)
        )

    def _spawn_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.ports.etcd_client}"
        peer = f"http://127.0.0.1:{self.ports.etcd_peer}"
        self._spawn(
            "etcd",
            "--name=control-plane",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=control-plane={peer}",
            "--unsafe-no-fsync=true",  # a test cluster: speed over durability
            "--log-level=warn",
        )

    def _spawn_apiserver(self) -> None:
        certs = self._certs()
        policy = self.workdir / "audit-policy.json"
        policy.write_text(json.dumps(AUDIT_POLICY))
        self.audit_log.parent.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports.apiserver}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={certs.server.cert}",
            f"--tls-private-key-file={certs.server.key}",
            f"--client-ca-file={certs.ca.cert}",
            # as kubeadm: the controller manager and scheduler read these for delegated authn
            f"--requestheader-client-ca-file={certs.ca.cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            # the `kubernetes` Service's endpoints would be 127.0.0.1, which Endpoints refuse
            "--endpoint-reconciler-type=none",
            "--authorization-mode=Node,RBAC",
            # `kubectl logs`: the simulated kubelets' server (nodes/kubeletserver.py) is on
            # loopback, which their nodes advertise as an InternalDNS address `localhost`; the
            # API server verifies its certificate and shows it its own, both from the cluster CA
            "--kubelet-preferred-address-types=InternalDNS,Hostname,InternalIP,ExternalDNS,"
            "ExternalIP",
            f"--kubelet-certificate-authority={certs.ca.cert}",
            f"--kubelet-client-certificate={certs.client(certificates.KUBELET_CLIENT).cert}",
            f"--kubelet-client-key={certs.client(certificates.KUBELET_CLIENT).key}",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={certs.service_account_public}",
            f"--service-account-signing-key-file={certs.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            f"--audit-log-path={self.audit_log}",
            f"--audit-policy-file={policy}",
            "--audit-log-mode=blocking",
            "--profiling=false",
        )

    def _spawn_controller_manager(self) -> None:
        certs = self._certs()
        kubeconfig = self._kubeconfig_for(certificates.CONTROLLER_MANAGER)
        self._spawn(
            "kube-controller-manager",
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports.controller_manager}",
            f"--cert-dir={self.workdir / 'controller-manager-certs'}",
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={certs.service_account_key}",
            f"--root-ca-file={certs.ca.cert}",
            f"--cluster-signing-cert-file={certs.ca.cert}",
            f"--cluster-signing-key-file={certs.ca.key}",
            f"--kube-api-qps={API_QPS}",
            f"--kube-api-burst={API_BURST}",
            "--leader-elect=false",
            "--profiling=false",
        )

    def _spawn_scheduler(self) -> None:
        kubeconfig = self._kubeconfig_for(certificates.SCHEDULER)
        config = self.workdir / "scheduler-config.json"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": {
                        "kubeconfig": str(kubeconfig),
                        "qps": int(API_QPS),
                        "burst": int(API_BURST),
                    },
                    "leaderElection": {"leaderElect": False},
                }
            )
        )
        self._spawn(
            "kube-scheduler",
            f"--config={config}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports.scheduler}",
            f"--cert-dir={self.workdir / 'scheduler-certs'}",
        )

    # ------------------------------------------------------------------ readiness

    def _wait(self, condition: object, *, timeout: float, what: str, started: float) -> None:
        assert callable(condition)

        def holds() -> bool:
            dead = [p.name for p in self.processes if not p.alive()]
            if dead:
                raise ControlPlaneError(f"{', '.join(dead)} exited while waiting for {what}")
            return bool(condition())

        wait_until(holds, timeout=max(1.0, timeout - (time.monotonic() - started)), what=what)

    def _etcd_healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.ports.etcd_client}/health"
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as response:
                return bool(json.load(response).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _apiserver_ready(self) -> bool:
        with closing(Api(self.admin.credentials, timeout=PROBE_TIMEOUT)) as probe:
            try:
                status, _ = probe.request("GET", "/readyz")
            except UNREACHABLE:
                return False
        return status == 200

    def _default_namespace_ready(self) -> bool:
        admin = self.admin
        return admin.exists("/api/v1/namespaces/default/serviceaccounts/default") and admin.exists(
            "/api/v1/namespaces/default/configmaps/kube-root-ca.crt"
        )


def _healthz(port: int) -> bool:
    """A component's /healthz on its secure port (self-signed certificate, no client auth), with
    the standard library: not an API server, and urllib3 would warn of every unverified request."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    url = f"https://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT, context=unverified) as response:
            return bool(response.status == 200)
    except OSError:  # refused, reset, timed out, or an error status (urllib's HTTPError)
        return False

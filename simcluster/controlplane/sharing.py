"""One control plane per test run, shared by pytest's parallel workers, started only when a
test first asks for it.

The controlling process (pytest's, or xdist's controller) runs a `Broker`: a thread listening
on a UNIX socket. A worker that needs the control plane connects and reads one JSON line back:
the `Endpoint` (or the error that kept it from starting, e.g. binaries not built). The broker's
thread starts the control plane on the first request and keeps living until `close()`, which
stops it: its processes die with that thread (PR_SET_PDEATHSIG), so a killed test run leaves
none behind either."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from pathlib import Path

from simcluster.controlplane.endpoints import Endpoint
from simcluster.controlplane.running import ControlPlane

START_TIMEOUT = 180.0


class Broker:
    def __init__(self, *, socket_path: Path, audit_log: Path | None = None) -> None:
        self.socket_path = socket_path
        self.audit_log = audit_log
        self.control_plane: ControlPlane | None = None
        self._answer: dict[str, str] | None = None
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(socket_path))
        self._listener.listen(64)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="control-plane", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                break
            with connection:
                answer = self._start_once()
                with contextlib.suppress(OSError):
                    connection.sendall(json.dumps(answer).encode() + b"\n")
        self._stop()  # the processes must not outlive this thread's knowledge of them

    def _start_once(self) -> dict[str, str]:
        if self._answer is None:
            try:
                control_plane = ControlPlane(audit_log=self.audit_log)
                self.control_plane = control_plane
                control_plane.start()
                self._answer = {"endpoint": control_plane.endpoint().to_json()}
            except Exception as error:  # every worker gets the same failure, started once
                self._answer = {"error": str(error)}
        return self._answer

    def _stop(self) -> None:
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=60)
        with contextlib.suppress(OSError):
            os.unlink(self.socket_path)


class Unavailable(RuntimeError):
    """The control plane could not be had; the message says why (and how to build it)."""


def request(socket_path: Path, *, timeout: float = START_TIMEOUT) -> Endpoint:
    """Ask the broker for the control plane, starting it if no one has yet."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(str(socket_path))
        reply = connection.makefile("rb").readline()
    if not reply:
        raise Unavailable("the control plane broker closed without an answer")
    answer: dict[str, str] = json.loads(reply)
    if "error" in answer:
        raise Unavailable(answer["error"])
    return Endpoint.from_json(answer["endpoint"])

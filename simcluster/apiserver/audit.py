"""The audit log: one JSON line per request (time, user, verb, resource, namespace, name, code,
the client's User-Agent), kept in memory for tests and appended to a file when the cluster was
given one. As in a real one, the kubelets' requests are there too (`user_agent` "kubelet/...":
`clients()` leaves them out)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    time: str
    user: str
    verb: str
    resource: str  # with the subresource, 'pods/log'; '' for a non-resource path
    namespace: str
    name: str
    code: int
    uri: str
    group: str = ""
    user_agent: str = ""

    @property
    def by_kubelet(self) -> bool:
        return self.user_agent.startswith("kubelet/")


class AuditLog:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.entries: list[Entry] = []
        self._lock = threading.Condition(threading.RLock())
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()

    def add(
        self,
        *,
        user: str,
        verb: str,
        resource: str,
        namespace: str,
        name: str,
        code: int,
        uri: str,
        group: str = "",
        user_agent: str = "",
    ) -> None:
        entry = Entry(
            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            user,
            verb,
            resource,
            namespace,
            name,
            code,
            uri,
            group,
            user_agent,
        )
        with self._lock:
            self.entries.append(entry)
            if self.path is not None:
                with self.path.open("a") as out:
                    out.write(json.dumps(asdict(entry)) + "\n")
            self._lock.notify_all()

    def by(self, user: str) -> list[Entry]:
        with self._lock:
            return [e for e in self.entries if e.user == user]

    def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait for `condition` to hold of the entries: a request's entry is written once its
        response has gone out, so a client can see the answer before the entry is there."""
        with self._lock:
            return self._lock.wait_for(condition, timeout=timeout)

    def clients(self) -> list[Entry]:
        """Every request but the kubelets'."""
        with self._lock:
            return [e for e in self.entries if not e.by_kubelet]

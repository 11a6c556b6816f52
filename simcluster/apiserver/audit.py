"""The audit log: one JSON line per request (time, user, verb, resource, namespace, name, code),
kept in memory for tests and appended to a file when the cluster was given one."""

from __future__ import annotations

import json
import threading
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


class AuditLog:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.entries: list[Entry] = []
        self._lock = threading.Lock()
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
        )
        with self._lock:
            self.entries.append(entry)
            if self.path is not None:
                with self.path.open("a") as out:
                    out.write(json.dumps(asdict(entry)) + "\n")

    def by(self, user: str) -> list[Entry]:
        with self._lock:
            return [e for e in self.entries if e.user == user]

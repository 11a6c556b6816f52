"""The simulated API server's object store: uids, a global resourceVersion (as etcd keeps),
per-resource event history for watches, and label/field selectors.

Objects are plain dicts; every write bumps the resourceVersion, caches the object's JSON bytes
(so that a 5,000-node list is served by concatenation) and wakes everyone waiting on `changed`.
"""

from __future__ import annotations

import contextvars
import copy
import json
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from simcluster.apiserver.kinds import SERVED

# Server-side dry run (`?dryRun=All`): set for one request's thread, every write of the store
# is checked and answered as if made, and nothing is stored, as the real API server's dry run.
DRY_RUN: contextvars.ContextVar[bool] = contextvars.ContextVar("dry_run", default=False)

CLUSTER_SCOPED = frozenset(k.resource for k in SERVED if not k.namespaced)
# resource -> (kind, apiVersion, group): the shape older callers index by position
KINDS = {k.resource: (k.kind, k.api_version, k.group) for k in SERVED}


class StoreError(Exception):
    def __init__(self, code: int, reason: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


@dataclass
class Event:
    rv: int
    type: str
    resource: str
    namespace: str
    obj: dict[str, Any]
    data: bytes


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def group_resource(resource: str) -> str:
    group = KINDS[resource][2]
    return f"{resource}.{group}" if group else resource


class Store:
    def __init__(self, *, seed: int = 0, history_limit: int = 10_000) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = 1
        self._rng = random.Random(seed)
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in KINDS}
        self._bytes: dict[str, dict[tuple[str, str], bytes]] = {r: {} for r in KINDS}
        self.history: dict[str, deque[Event]] = {r: deque() for r in KINDS}
        self.floor: dict[str, int] = dict.fromkeys(KINDS, 0)
        # The newest event dropped from each history: a watch that had not sent it yet must end
        # rather than go on with the next one (an established watch never skips an event).
        self.dropped: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.history_limit = history_limit
        self.uids: set[str] = set()
        self.generation = 0  # bumps on every write; cheap change detection for controllers
        self.versions: dict[str, int] = dict.fromkeys(KINDS, 0)  # writes per resource

    # ------------------------------------------------------------------ reads

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        with self.lock:
            obj = self._objects[resource].get((namespace or "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def peek(self, resource: str) -> dict[tuple[str, str], dict[str, Any]]:
        """The live dict of objects: only for controllers holding `lock`, never to mutate."""
        return self._objects[resource]

    def items(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(o)
                for (ns, _), o in sorted(self._objects[resource].items())
                if namespace is None or ns == namespace
            ]

    def raw_items(
        self, resource: str, namespace: str | None, keep: Callable[[dict[str, Any]], bool]
    ) -> tuple[list[bytes], int]:
        with self.lock:
            out = [
                self._bytes[resource][key]
                for key, o in sorted(self._objects[resource].items())
                if (namespace is None or key[0] == namespace) and keep(o)
            ]
            return out, self.rv

    def exists_uid(self, uid: str) -> bool:
        return uid in self.uids

    # ------------------------------------------------------------------ writes

    def create(
        self,
        resource: str,
        obj: dict[str, Any],
        namespace: str | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                suffix = "".join(self._rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                meta["name"] = meta["generateName"] + suffix
            name = meta.get("name")
            if not name:
                raise StoreError(
                    422,
                    "Invalid",
                    f'{KINDS[resource][0]} "" is invalid: '
                    "metadata.name: Required value: name or generateName is required",
                )
            ns = "" if resource in CLUSTER_SCOPED else (namespace or meta.get("namespace") or "")
            if ns:
                meta["namespace"] = ns
            if (ns, name) in self._objects[resource]:
                raise StoreError(
                    409,
                    "AlreadyExists",
                    f'{group_resource(resource)} "{name}" already exists',
                    name=name,
                    kind=resource,
                    group=KINDS[resource][2],
                )
            meta["uid"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            meta["creationTimestamp"] = now_iso()
            if resource == "daemonsets":
                meta["generation"] = 1
            kind, api_version, _ = KINDS[resource]
            obj["kind"], obj["apiVersion"] = kind, api_version
            if DRY_RUN.get():
                return obj
            self.uids.add(meta["uid"])
            self._write(resource, (ns, name), obj, "ADDED")
            return copy.deepcopy(obj)

    def mutate(
        self,
        resource: str,
        name: str,
        namespace: str | None,
        change: Callable[[dict[str, Any]], bool | None],
    ) -> dict[str, Any] | None:
        """Apply `change` to the stored object; it returns False when nothing changed."""
        with self.lock:
            key = ("" if resource in CLUSTER_SCOPED else namespace or "", name)
            current = self._objects[resource].get(key)
            if current is None:
                return None
            updated = copy.deepcopy(current)
            if change(updated) is False:
                return current
            if resource == "daemonsets" and updated.get("spec") != current.get("spec"):
                updated["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
            if DRY_RUN.get():
                return updated
            self._write(resource, key, updated, "MODIFIED")
            return copy.deepcopy(updated)

    def delete(
        self,
        resource: str,
        name: str,
        namespace: str | None = None,
    ) -> dict[str, Any] | None:
        with self.lock:
            key = ("" if resource in CLUSTER_SCOPED else namespace or "", name)
            if DRY_RUN.get():
                found = self._objects[resource].get(key)
                return copy.deepcopy(found) if found is not None else None
            obj = self._objects[resource].pop(key, None)
            if obj is None:
                return None
            self._bytes[resource].pop(key, None)
            self.uids.discard(obj["metadata"]["uid"])
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._record(resource, key[0], obj, "DELETED")
            return obj

    def compact(self) -> None:
        with self.lock:
            for resource in KINDS:
                if self.history[resource]:
                    self.dropped[resource] = self.history[resource][-1].rv
                self.history[resource].clear()
                self.floor[resource] = self.rv

    def _write(self, resource: str, key: tuple[str, str], obj: dict[str, Any], kind: str) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._objects[resource][key] = obj
        self._bytes[resource][key] = json.dumps(obj, separators=(",", ":")).encode()
        self._record(resource, key[0], obj, kind)

    def _record(self, resource: str, namespace: str, obj: dict[str, Any], kind: str) -> None:
        data = (
            self._bytes[resource].get((namespace, obj["metadata"]["name"]))
            if kind != "DELETED"
            else json.dumps(obj, separators=(",", ":")).encode()
        )
        history = self.history[resource]
        history.append(Event(self.rv, kind, resource, namespace, obj, data or b"{}"))
        while len(history) > self.history_limit:
            self.floor[resource] = self.dropped[resource] = history.popleft().rv
        self.generation += 1
        self.versions[resource] += 1
        self.changed.notify_all()

    def events_since(self, resource: str, rv: int) -> Iterable[Event]:
        return [e for e in self.history[resource] if e.rv > rv]


# ---------------------------------------------------------------------------- selectors


def parse_label_selector(text: str) -> Callable[[dict[str, str]], bool]:
    """Equality, set-based and existence requirements, comma-joined (commas inside () kept)."""
    parts, depth, current = [], 0, ""
    for char in text or "":
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current:
        parts.append(current)
    checks = [_requirement(p.strip()) for p in parts if p.strip()]
    return lambda labels: all(check(labels) for check in checks)


def _requirement(text: str) -> Callable[[dict[str, str]], bool]:
    lowered = text.replace("\t", " ")
    for op in (" notin ", " in "):
        if op in lowered:
            key, _, rest = lowered.partition(op)
            values = {v.strip() for v in rest.strip().strip("()").split(",")}
            key = key.strip()
            if op == " in ":
                return lambda labels: labels.get(key) in values
            return lambda labels: labels.get(key) not in values
    if "!=" in text:
        key, _, value = text.partition("!=")
        return lambda labels: labels.get(key.strip()) != value.strip()
    if "==" in text or "=" in text:
        key, _, value = text.partition("==") if "==" in text else text.partition("=")
        return lambda labels: labels.get(key.strip()) == value.strip()
    if text.startswith("!"):
        return lambda labels: text[1:] not in labels
    return lambda labels: text in labels


FIELDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "metadata.name": lambda o: o["metadata"].get("name", ""),
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
    "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", "") or "",
    "status.phase": lambda o: (o.get("status") or {}).get("phase", "") or "",
}


def _involved(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda o: str((o.get("involvedObject") or {}).get(key, ""))


# Events' own field selectors (kubectl describe finds an object's events by involvedObject.*),
# as pkg/apis/core/v1/conversion.go registers them.
FIELDS.update(
    {
        f"involvedObject.{key}": _involved(key)
        for key in (
            "kind",
            "namespace",
            "name",
            "uid",
            "apiVersion",
            "resourceVersion",
            "fieldPath",
        )
    }
)
FIELDS.update(
    {
        "reason": lambda o: str(o.get("reason") or ""),
        "type": lambda o: str(o.get("type") or ""),
        "reportingComponent": lambda o: str(o.get("reportingComponent") or ""),
        "source": lambda o: str((o.get("source") or {}).get("component") or ""),
    }
)


def parse_field_selector(text: str) -> Callable[[dict[str, Any]], bool]:
    checks = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        negate = "!=" in part
        key, _, value = (
            part.partition("!=")
            if negate
            else (part.partition("==") if "==" in part else part.partition("="))
        )
        getter = FIELDS.get(key.strip())
        if getter is None:
            raise StoreError(400, "BadRequest", f'"{key.strip()}" is not a known field selector')
        checks.append((getter, value.strip(), negate))
    return lambda obj: all((g(obj) != v) if n else (g(obj) == v) for g, v, n in checks)

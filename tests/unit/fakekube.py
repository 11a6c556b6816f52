"""A small in-memory implementation of the client interface (`kube.api.KubeApi`:
`request`, `request_decoded`, `stream`, `bounded`, `deadline`), for unit tests of run/ without a
server. Not a mock: it keeps objects by path, numbers every change with a resourceVersion,
serves lists and watches from them (label selectors by equality), applies JSON patches (`test`,
`replace`: a failed `test` is the API's 422), and raises the client's own typed errors. What a
cluster does by itself (kubelets pulling, controllers) the test does with `put` and `delete`."""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Callable, Generator, Mapping
from typing import Any, TypeVar

from image_awaiter.core.errors import Conflict, InvalidObject, NamespaceNotFound, NotFound
from image_awaiter.kube.resources import Address, Resource

T = TypeVar("T")
QUIET = 0.05  # a watch with nothing to say ends after this long (the watcher resumes it)


class FakeKube:
    def __init__(self, *, namespaces: tuple[str, ...] = ("default",)) -> None:
        self.deadline: float | None = None
        self.requests: list[tuple[str, str]] = []  # (method, path), in order
        self._objects: dict[str, dict[str, dict[str, Any]]] = {}  # collection path -> name -> obj
        self._changes: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, path, type, obj)
        self._version = itertools.count(1)
        self._changed = threading.Condition()
        for namespace in namespaces:
            self._objects.setdefault("/api/v1/namespaces", {})[namespace] = {
                "metadata": {"name": namespace}
            }

    # ------------------------------------------------------------------ what the test does

    def put(self, resource: Resource, obj: dict[str, Any]) -> None:
        """Create or replace `obj` (its metadata names it), as the cluster would."""
        metadata = obj.setdefault("metadata", {})
        metadata.setdefault("uid", str(uuid.uuid4()))
        address = resource.address(namespace=metadata.get("namespace"))
        kind = "MODIFIED" if metadata["name"] in self._collection(address) else "ADDED"
        self._change(address, kind, obj)

    def delete(self, resource: Resource, *, name: str, namespace: str | None = None) -> None:
        address = resource.address(namespace=namespace)
        obj = self._collection(address).get(name)
        if obj is not None:
            self._change(address, "DELETED", obj)

    def objects(self, resource: Resource, *, namespace: str | None = None) -> list[dict[str, Any]]:
        return list(self._collection(resource.address(namespace=namespace)).values())

    def wait_for(self, predicate: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """Until `predicate` holds after some change (a request, an object stored)."""
        with self._changed:
            if not self._changed.wait_for(predicate, timeout=timeout):
                raise AssertionError("the fake cluster never reached the awaited state")

    # ------------------------------------------------------------------ the client interface

    def bounded(self, deadline: float) -> FakeKube:
        return self

    def request(
        self,
        method: str,
        address: Address,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        **_: Any,
    ) -> dict[str, Any]:
        self.requests.append((method, address.path))
        collection = self._collection(_collection_of(address))
        if method == "GET" and address.name is None:
            return self._list(address, query or {})
        if method == "GET":
            if address.name not in collection:
                raise self._not_found(address)
            return collection[address.name]
        if method == "POST":
            return self._create(address, body)
        if method == "PATCH" and isinstance(body, list):
            return self._json_patch(address, body)
        if method == "DELETE":
            obj = collection.get(address.name or "")
            if obj is None:
                raise self._not_found(address)
            wanted = ((body or {}).get("preconditions") or {}).get("uid")
            if wanted is not None and wanted != obj["metadata"]["uid"]:
                raise Conflict("precondition failed: uid", status=409)
            self._change(_collection_of(address), "DELETED", obj)
            return obj
        raise AssertionError(f"the fake serves no {method}")

    def request_decoded(
        self,
        method: str,
        address: Address,
        *,
        decode: Callable[[bytes], T],
        query: Mapping[str, str | int] | None = None,
        **_: Any,
    ) -> T:
        self.requests.append((method, address.path))
        return decode(json.dumps(self._list(address, query or {})).encode())

    def stream(
        self, address: Address, *, query: Mapping[str, str | int], read_timeout: Any
    ) -> Generator[bytes, None, None]:
        """A watch: with `sendInitialEvents`, every object and the bookmark that ends them;
        then the changes after the resourceVersion, until it has been quiet for a moment."""
        self.requests.append(("WATCH", address.path))
        selector = str(query.get("labelSelector", ""))
        if query.get("sendInitialEvents") == "true":
            with self._changed:
                version, items = self._latest(), self._selected(address, selector)
            for obj in items:
                yield _line("ADDED", obj)
            end = {
                "metadata": {
                    "resourceVersion": str(version),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                }
            }
            yield _line("BOOKMARK", end)
        else:
            version = int(query.get("resourceVersion") or 0)
        while True:
            with self._changed:
                news = self._since(version, address.path)
                if not news and not self._changed.wait(QUIET):
                    return
                news = news or self._since(version, address.path)
            for rv, _, kind, obj in news:
                version = rv
                if _matches(obj, selector):
                    yield _line(kind, obj)

    # ------------------------------------------------------------------ the store

    def _collection(self, address: Address) -> dict[str, dict[str, Any]]:
        return self._objects.setdefault(address.path, {})

    def _latest(self) -> int:
        return self._changes[-1][0] if self._changes else 0

    def _since(self, version: int, path: str) -> list[tuple[int, str, str, dict[str, Any]]]:
        return [c for c in self._changes if c[0] > version and c[1] == path]

    def _selected(self, address: Address, selector: str) -> list[dict[str, Any]]:
        return [o for o in self._collection(address).values() if _matches(o, selector)]

    def _list(self, address: Address, query: Mapping[str, str | int]) -> dict[str, Any]:
        with self._changed:
            items = self._selected(address, str(query.get("labelSelector", "")))
            return {"metadata": {"resourceVersion": str(self._latest())}, "items": items}

    def _create(self, address: Address, body: dict[str, Any]) -> dict[str, Any]:
        metadata = body.setdefault("metadata", {})
        if metadata["name"] in self._collection(address):
            raise Conflict(f"{metadata['name']} already exists", status=409)
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("namespace", address.namespace)
        self._change(address, "ADDED", body)
        return body

    def _json_patch(self, address: Address, patch: list[dict[str, Any]]) -> dict[str, Any]:
        with self._changed:
            obj = self._collection(_collection_of(address)).get(address.name or "")
            if obj is None:
                raise self._not_found(address)
            obj = json.loads(json.dumps(obj))
            for op in patch:
                *parents, last = op["path"].strip("/").split("/")
                target = obj
                for key in parents:
                    target = target.setdefault(key, {})
                if op["op"] == "test" and target.get(last) != op["value"]:
                    raise InvalidObject(f"the test of {op['path']} failed", status=422)
                if op["op"] == "replace":
                    target[last] = op["value"]
                elif op["op"] != "test":
                    raise AssertionError(f"the fake applies no {op['op']}")
            self._change(_collection_of(address), "MODIFIED", obj)
            return obj

    def _change(self, address: Address, kind: str, obj: dict[str, Any]) -> None:
        with self._changed:
            version = next(self._version)
            obj["metadata"]["resourceVersion"] = str(version)
            collection = self._collection(address)
            if kind == "DELETED":
                collection.pop(obj["metadata"]["name"], None)
            else:
                collection[obj["metadata"]["name"]] = obj
            self._changes.append((version, address.path, kind, json.loads(json.dumps(obj))))
            self._changed.notify_all()

    def _not_found(self, address: Address) -> NotFound:
        if address.resource.plural == "namespaces":
            return NamespaceNotFound(f"namespace {address.name!r} not found", status=404)
        return NotFound(f"{address} not found", status=404)


def _collection_of(address: Address) -> Address:
    return address.resource.address(namespace=address.namespace)


def _matches(obj: Mapping[str, Any], selector: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    pairs = [term.partition("=") for term in selector.split(",") if term]
    return all(labels.get(key) == value for key, _, value in pairs)


def _line(kind: str, obj: Mapping[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode()

"""Walking the served OpenAPI schemas: which lists merge by which key (strategic merge patch and
server-side apply read the same `x-kubernetes-*` extensions the real apiserver does)."""

from __future__ import annotations

import functools
import json
from typing import Any

from simcluster.apiserver import discovery
from simcluster.apiserver.kinds import Kind

Node = dict[str, Any]


@functools.cache
def _schemas() -> dict[str, Node]:
    out: dict[str, Node] = {}
    for gv in discovery.openapi_root()["paths"]:
        doc = json.loads(discovery.openapi_document(gv) or b"{}")
        out.update(doc.get("components", {}).get("schemas", {}))
    return out


def _resolve(node: Node | None) -> Node:
    node = node or {}
    while True:
        if "$ref" in node:
            node = _schemas().get(node["$ref"].rsplit("/", 1)[-1], {})
        elif "allOf" in node and len(node["allOf"]) == 1:
            node = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
        else:
            return node


def for_kind(kind: Kind) -> Node:
    for schema in _schemas().values():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            if (gvk.get("group"), gvk.get("version"), gvk.get("kind")) == (
                kind.group,
                kind.version,
                kind.kind,
            ):
                return schema
    return {}


def field(node: Node, name: str) -> Node:
    """The schema of `name` under `node`, keeping the extensions written beside the $ref."""
    raw = (_resolve(node).get("properties") or {}).get(name)
    if raw is None:
        additional = _resolve(node).get("additionalProperties")
        return additional if isinstance(additional, dict) else {}
    return {**_resolve(raw), **{k: v for k, v in raw.items() if k.startswith("x-kubernetes")}}


def items(node: Node) -> Node:
    return _resolve(_resolve(node).get("items"))


def list_keys(node: Node) -> list[str] | None:
    """Map-list keys (SSA `x-kubernetes-list-map-keys`, else the patch merge key); None for
    atomic lists; [] for sets of scalars."""
    if node.get("x-kubernetes-list-type") == "map":
        return list(node.get("x-kubernetes-list-map-keys") or [])
    if node.get("x-kubernetes-list-type") == "set":
        return []
    if "merge" in (node.get("x-kubernetes-patch-strategy") or "").split(","):
        key = node.get("x-kubernetes-patch-merge-key")
        return [key] if key else []
    return None

"""PATCH bodies applied to stored objects: JSON merge patch (RFC 7386), JSON patch (RFC 6902),
strategic merge patch (list merge keys from the served OpenAPI schema) and server-side apply with
field ownership recorded in metadata.managedFields and conflicts reported as the real apiserver
reports them ("Apply failed with 1 conflict: conflict with \"m\" using apps/v1: .spec.x")."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from simcluster.apiserver import schemas
from simcluster.apiserver.store import StoreError

Obj = dict[str, Any]
Path = tuple[str, ...]  # 'f:spec', 'k:{"name":"a"}', 'v:"x"'
UNOWNED = {"apiVersion", "kind"}
UNOWNED_META = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "selfLink",
}


class ApplyConflict(StoreError):
    def __init__(self, paths: set[Path], message: str, causes: list[Obj]) -> None:
        super().__init__(409, "Conflict", message, causes=causes)
        self.paths = paths


def bad_request(message: str) -> StoreError:
    return StoreError(400, "BadRequest", message)


# ---------------------------------------------------------------------------- merge patch


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# ---------------------------------------------------------------------------- JSON patch


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f'json patch path "{path}" must start with /')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    for part in parts[:-1]:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc, parts[-1]


def json_patch(doc: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        kind, parts = op.get("op"), _pointer(op.get("path", ""))
        try:
            if kind in ("add", "replace"):
                parent, key = _parent(doc, parts)
                value = copy.deepcopy(op.get("value"))
                if isinstance(parent, list):
                    index = len(parent) if key == "-" else int(key)
                    if kind == "add":
                        parent.insert(index, value)
                    else:
                        parent[index] = value
                else:
                    if kind == "replace" and key not in parent:
                        raise bad_request(
                            "replace operation does not apply: doc is missing key: "
                            f"{op.get('path')}"
                        )
                    parent[key] = value
            elif kind == "remove":
                parent, key = _parent(doc, parts)
                del parent[int(key) if isinstance(parent, list) else key]
            elif kind == "test":
                parent, key = _parent(doc, parts)
                found = parent[int(key)] if isinstance(parent, list) else parent.get(key)
                if found != op.get("value"):
                    raise StoreError(422, "Invalid", f"testing value {op.get('path')} failed")
            elif kind in ("move", "copy"):
                source_parent, source_key = _parent(doc, _pointer(op.get("from", "")))
                value = source_parent[
                    int(source_key) if isinstance(source_parent, list) else source_key
                ]
                if kind == "move":
                    del source_parent[
                        int(source_key) if isinstance(source_parent, list) else source_key
                    ]
                doc = json_patch(doc, [{"op": "add", "path": op.get("path"), "value": value}])
            else:
                raise bad_request(f"Unexpected kind: {kind}")
        except (KeyError, IndexError, ValueError, TypeError):
            raise StoreError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {op}",
            ) from None
    return doc


# ---------------------------------------------------------------------------- strategic merge


def strategic_merge(target: Any, patch: Any, schema: schemas.Node) -> Any:
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return copy.deepcopy(_strip(patch))
    if patch.get("$patch") == "replace":
        return _strip({k: v for k, v in patch.items() if k != "$patch"})
    if patch.get("$patch") == "delete":
        return None
    out = copy.deepcopy(target)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            out[name] = [v for v in out.get(name) or [] if v not in value]
            continue
        child = schemas.field(schema, key)
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            merged = strategic_merge(out[key], value, child)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = _merge_list(out[key], value, child)
        else:
            out[key] = _strip(copy.deepcopy(value))
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_list(current: list[Any], patch: list[Any], schema: schemas.Node) -> list[Any]:
    keys = schemas.list_keys(schema)
    if keys is None:
        stripped: list[Any] = _strip(copy.deepcopy(patch))
        return stripped
    if keys == [] or not all(isinstance(p, dict) for p in patch):
        return current + [p for p in patch if p not in current]
    if len(patch) == 1 and patch[0].get("$patch") == "replace":
        return []
    out = copy.deepcopy(current)
    item_schema = schemas.items(schema)
    for item in patch:
        match = next((i for i, c in enumerate(out) if _same(c, item, keys)), None)
        if item.get("$patch") == "delete":
            if match is not None:
                out.pop(match)
        elif match is None:
            out.append(_strip(copy.deepcopy(item)))
        else:
            out[match] = strategic_merge(out[match], item, item_schema)
    return out


def _same(a: Any, b: Any, keys: list[str]) -> bool:
    return isinstance(a, dict) and all(a.get(k) == b.get(k) for k in keys)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


# ---------------------------------------------------------------------------- server-side apply


def leaf_paths(obj: Any, schema: schemas.Node, prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every owned leaf of `obj` with its value; list elements by key, atomic lists whole."""
    if isinstance(obj, dict):
        if not obj and prefix:
            yield prefix, obj
        for key, value in obj.items():
            if (not prefix and key in UNOWNED) or (
                prefix == ("f:metadata",) and key in UNOWNED_META
            ):
                continue
            yield from leaf_paths(value, schemas.field(schema, key), (*prefix, f"f:{key}"))
    elif isinstance(obj, list):
        keys = schemas.list_keys(schema)
        if keys is None or not obj:
            yield prefix, obj
            return
        item_schema = schemas.items(schema)
        for item in obj:
            if keys and isinstance(item, dict):
                element = f"k:{json.dumps({k: item.get(k) for k in keys}, separators=(',', ':'))}"
                yield (*prefix, element, "."), None
                yield from leaf_paths(item, item_schema, (*prefix, element))
            else:
                yield (*prefix, f"v:{json.dumps(item)}"), item
    else:
        yield prefix, obj


def value_at(obj: Any, path: Path) -> Any:
    for part in path:
        if part == ".":
            return obj is not None
        if obj is None:
            return None
        kind, _, rest = part.partition(":")
        if kind == "f":
            obj = obj.get(rest) if isinstance(obj, dict) else None
        elif kind == "k":
            key = json.loads(rest)
            obj = next((i for i in obj or [] if _same(i, key, list(key))), None)
        else:
            value = json.loads(rest)
            return value in (obj or [])
    return obj


def remove_at(obj: Any, path: Path) -> None:
    parent = obj
    for part in path[:-1]:
        parent = value_at(parent, (part,))
        if parent is None:
            return
    last = path[-1]
    kind, _, rest = last.partition(":")
    if last == ".":
        return
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif kind == "k" and isinstance(parent, list):
        key = json.loads(rest)
        parent[:] = [i for i in parent if not _same(i, key, list(key))]
    elif kind == "v" and isinstance(parent, list):
        value = json.loads(rest)
        parent[:] = [i for i in parent if i != value]


def to_fields(paths: set[Path]) -> Obj:
    trie: Obj = {}
    for path in sorted(paths):
        node = trie
        for part in path:
            node = node.setdefault(part, {})
    return trie


def from_fields(trie: Obj, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for part, child in trie.items():
        if part == ".":
            out.add((*prefix, "."))
        elif child:
            out |= from_fields(child, (*prefix, part))
        else:
            out.add((*prefix, part))
    return out


def owners(obj: Obj) -> dict[tuple[str, str, str], set[Path]]:
    """(manager, operation, subresource) -> owned paths, from metadata.managedFields."""
    out: dict[tuple[str, str, str], set[Path]] = {}
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        key = (entry.get("manager", ""), entry.get("operation", ""), entry.get("subresource", ""))
        out[key] = from_fields(entry.get("fieldsV1") or {})
    return out


def record(
    obj: Obj,
    table: dict[tuple[str, str, str], set[Path]],
    *,
    api_version: str,
    now: str,
    touched: tuple[str, str, str] | None,
) -> None:
    entries = []
    previous = {
        (e.get("manager", ""), e.get("operation", ""), e.get("subresource", "")): e
        for e in (obj.get("metadata") or {}).get("managedFields") or []
    }
    for key, paths in table.items():
        if not paths:
            continue
        manager, operation, subresource = key
        entry: Obj = {
            "manager": manager,
            "operation": operation,
            "apiVersion": api_version,
            "time": now if key == touched else previous.get(key, {}).get("time", now),
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields(paths),
        }
        if subresource:
            entry["subresource"] = subresource
        entries.append(entry)
    obj.setdefault("metadata", {})["managedFields"] = entries


def display(path: Path) -> str:
    out = ""
    for part in path:
        if part == ".":
            continue
        kind, _, rest = part.partition(":")
        if kind == "f":
            out += f".{rest}"
        elif kind == "k":
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(rest).items()) + "]"
        else:
            out += f"[={rest}]"
    return out


def apply(
    live: Obj | None,
    applied: Obj,
    *,
    manager: str,
    force: bool,
    schema: schemas.Node,
    api_version: str,
    now: str,
) -> Obj:
    """The object after `manager` applies `applied` (a full intent) onto `live`."""
    base = copy.deepcopy(live) if live is not None else {}
    table = owners(base) if live is not None else {}
    mine = (manager, "Apply", "")
    wanted = {p: v for p, v in leaf_paths(applied, schema)}
    conflicts: dict[str, list[Path]] = {}
    for path, value in wanted.items():
        if (path[-1] != "." and value_at(base, path) not in (None, value)) or (
            path[-1] != "." and value_at(base, path) is None and False
        ):
            for key, paths in table.items():
                if key != mine and path in paths:
                    conflicts.setdefault(key[0], []).append(path)
    if conflicts and not force:
        raise _conflict(conflicts, api_version)
    for key, paths in table.items():
        if key != mine:
            paths -= set(wanted) if force else set()
    others = set().union(*(p for k, p in table.items() if k != mine)) if table else set()
    for path in sorted(table.get(mine, set()) - set(wanted) - others, key=len, reverse=True):
        remove_at(base, path)
    merged: dict[str, Any] = strategic_merge(base, applied, schema)
    table[mine] = set(wanted)
    record(merged, table, api_version=api_version, now=now, touched=mine)
    return merged


def _conflict(conflicts: dict[str, list[Path]], api_version: str) -> ApplyConflict:
    count = sum(len(p) for p in conflicts.values())
    lines = []
    causes = []
    for manager, paths in conflicts.items():
        if len(paths) == 1:
            lines.append(f'conflict with "{manager}" using {api_version}: {display(paths[0])}')
        else:
            shown = "\n".join(f"- {display(p)}" for p in paths)
            lines.append(f'conflicts with "{manager}" using {api_version}:\n{shown}')
        for path in paths:
            causes.append(
                {
                    "reason": "FieldManagerConflict",
                    "message": f'conflict with "{manager}" using {api_version}',
                    "field": display(path),
                }
            )
    plural = "" if count == 1 else "s"
    return ApplyConflict(
        {p for paths in conflicts.values() for p in paths},
        f"Apply failed with {count} conflict{plural}: " + "\n".join(lines),
        causes,
    )


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def apply_as_kubectl(live: Obj, applied: Obj, *, schema: schemas.Node, **options: Any) -> Obj:
    """The apiserver's lastAppliedManager: `kubectl apply --server-side` after client-side apply
    takes over the fields its last-applied-configuration names instead of conflicting."""
    try:
        return apply(live, applied, schema=schema, **options)
    except ApplyConflict as conflict:
        text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
        if options.get("manager") != "kubectl" or not text:
            raise
        try:
            allowed = {p for p, _ in leaf_paths(json.loads(text), schema)}
        except ValueError:
            raise conflict from None
        if not conflict.paths <= allowed:
            raise
        return apply(live, applied, schema=schema, **{**options, "force": True})


def track_update(
    old: Obj,
    new: Obj,
    *,
    manager: str,
    subresource: str,
    schema: schemas.Node,
    api_version: str,
    now: str,
) -> None:
    """Give `manager` the fields a PUT/PATCH changed, as operation Update (starting from the
    managedFields the request carries: kubectl rewrites them when it moves to server-side)."""
    table = owners(new)
    before = dict(leaf_paths(old, schema))
    changed = {p for p, v in leaf_paths(new, schema) if before.get(p, object()) != v}
    if not changed and not table:
        return
    key = (manager, "Update", subresource)
    for other, paths in table.items():
        if other != key:
            paths -= changed
    table[key] = table.get(key, set()) | changed
    present = set(dict(leaf_paths(new, schema)))
    for paths in table.values():
        paths &= present
    record(new, table, api_version=api_version, now=now, touched=key if changed else None)

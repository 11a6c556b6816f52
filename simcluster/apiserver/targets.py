"""What a resource request names, read from its path (the apiserver's RequestInfo): the kind,
namespace, name and subresource, and the verb its method and `?watch` make of it."""

from __future__ import annotations

from dataclasses import dataclass

from simcluster.apiserver.kinds import Kind, lookup


@dataclass(frozen=True)
class Target:
    """What a resource request names (the apiserver's RequestInfo, less the verb)."""

    kind: Kind
    namespace: str | None
    name: str | None
    subresource: str
    watch_path: bool


def parse_target(path: str) -> Target | None:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        prefix, rest_ = "/api/v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        prefix, rest_ = f"/apis/{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    watch = rest_[:1] == ["watch"]
    rest_ = rest_[1:] if watch else rest_
    namespace = None
    if len(rest_) >= 3 and rest_[0] == "namespaces":
        inner = lookup(prefix, rest_[2])
        if inner is not None and inner.namespaced:
            namespace, rest_ = rest_[1], rest_[2:]
    if not rest_ or len(rest_) > 3:
        return None
    kind = lookup(prefix, rest_[0])
    if kind is None:
        return None
    name = rest_[1] if len(rest_) > 1 else None
    sub = rest_[2] if len(rest_) > 2 else ""
    if sub and sub not in kind.subresources:
        return None
    return Target(kind, namespace, name, sub, watch)


def verb_of(method: str, target: Target, watch: bool) -> str:
    if method == "GET":
        if watch or target.watch_path:
            return "watch"
        return "get" if target.name else "list"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def named_by_fields(target: Target, verb: str, query: dict[str, str]) -> Target:
    """A list or watch of one object by `fieldSelector=metadata.name=X` names that object (for
    RBAC's `resourceNames` and the audit log), as kube-apiserver's RequestInfo does."""
    if verb in ("list", "watch") and not target.name:
        named = _name_from_fields(query.get("fieldSelector", ""))
        if named:
            return Target(target.kind, target.namespace, named, "", target.watch_path)
    return target


def _name_from_fields(text: str) -> str:
    for part in (text or "").split(","):
        key, _, value = part.partition("=")
        if key.strip() == "metadata.name" and not key.endswith("!"):
            return value.strip().lstrip("=")
    return ""

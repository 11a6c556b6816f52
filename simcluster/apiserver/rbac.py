"""Authentication (bearer tokens) and RBAC authorisation as the real apiserver decides it:
the admin may do anything; a ServiceAccount may do only what the Roles and ClusterRoles bound to
it (by name or by one of its groups) grant. Pure functions over plain dicts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ADMIN = "kubernetes-admin"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return "system:masters" in self.groups


ADMIN_USER = User(ADMIN, ("kubeadm:cluster-admins", "system:masters", "system:authenticated"))


def service_account_user(namespace: str, name: str) -> User:
    return User(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, as the apiserver's RequestInfo describes it."""

    verb: str
    group: str
    resource: str  # with the subresource: 'pods/log'
    namespace: str
    name: str


def _bound(subject: dict[str, Any], user: User, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{subject.get('name')}"
    if kind == "User":
        return user.name == subject.get("name")
    if kind == "Group":
        return subject.get("name") in user.groups
    return False


def _allows(rule: dict[str, Any], request: Attributes) -> bool:
    def has(values: Iterable[str] | None, value: str) -> bool:
        values = list(values or [])
        return "*" in values or value in values

    resources = list(rule.get("resources") or [])
    sub = request.resource.partition("/")[2]
    resource_ok = (
        "*" in resources or request.resource in resources or (bool(sub) and f"*/{sub}" in resources)
    )
    names = rule.get("resourceNames") or []
    return (
        has(rule.get("verbs"), request.verb)
        and has(rule.get("apiGroups"), request.group)
        and resource_ok
        and (not names or request.name in names)
    )


def allowed(
    user: User,
    request: Attributes,
    *,
    roles: dict[tuple[str, str], dict[str, Any]],
    cluster_roles: dict[tuple[str, str], dict[str, Any]],
    role_bindings: dict[tuple[str, str], dict[str, Any]],
    cluster_role_bindings: dict[tuple[str, str], dict[str, Any]],
) -> bool:
    """True when any rule of a role bound to `user` grants `request` (RBAC has no denies)."""
    if user.is_admin:
        return True

    def rules(ref: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
        if ref.get("kind") == "ClusterRole":
            role = cluster_roles.get(("", ref.get("name", "")))
        else:
            role = roles.get((namespace, ref.get("name", "")))
        return list((role or {}).get("rules") or [])

    bindings = [("", b) for b in cluster_role_bindings.values()]
    if request.namespace:
        bindings += [(ns, b) for (ns, _), b in role_bindings.items() if ns == request.namespace]
    return any(
        any(_bound(s, user, ns) for s in binding.get("subjects") or [])
        and any(_allows(r, request) for r in rules(binding.get("roleRef") or {}, ns))
        for ns, binding in bindings
    )


# What every authenticated user may do whatever is bound to it: the default ClusterRoles
# system:basic-user (review itself) and system:discovery / system:public-info-viewer.
BASIC_RULES = [
    {
        "verbs": ["create"],
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
    },
    {
        "verbs": ["create"],
        "apiGroups": ["authentication.k8s.io"],
        "resources": ["selfsubjectreviews"],
    },
]
DISCOVERY_URLS = [
    "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
    "/readyz", "/version", "/version/",
]  # fmt: skip


def rules_for(
    user: User,
    namespace: str,
    *,
    roles: dict[tuple[str, str], dict[str, Any]],
    cluster_roles: dict[tuple[str, str], dict[str, Any]],
    role_bindings: dict[tuple[str, str], dict[str, Any]],
    cluster_role_bindings: dict[tuple[str, str], dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(resource rules, non-resource rules) granted to `user` in `namespace`: what a
    SelfSubjectRulesReview (`kubectl auth can-i --list`) answers."""
    if user.is_admin:
        return (
            [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, *BASIC_RULES],
            [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
        )
    found: list[dict[str, Any]] = list(BASIC_RULES)
    bindings = [("", b) for b in cluster_role_bindings.values()]
    bindings += [(ns, b) for (ns, _), b in role_bindings.items() if ns == namespace]
    for ns, binding in bindings:
        if not any(_bound(s, user, ns) for s in binding.get("subjects") or []):
            continue
        ref = binding.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole":
            role = cluster_roles.get(("", ref.get("name", "")))
        else:
            role = roles.get((ns, ref.get("name", "")))
        found += [r for r in (role or {}).get("rules") or [] if "nonResourceURLs" not in r]
    return found, [{"verbs": ["get"], "nonResourceURLs": DISCOVERY_URLS}]


def forbidden_message(user: User, request: Attributes) -> str:
    """The apiserver's text, e.g. `pods is forbidden: User "system:serviceaccount:ns:sa" cannot
    list resource "pods" in API group "" in the namespace "ns"` (staging/src/k8s.io/apiserver/
    pkg/endpoints/handlers/responsewriters/errors.go, forbiddenMessage)."""
    base = request.resource.partition("/")[0]
    group_resource = f"{base}.{request.group}" if request.group else base
    named = f' "{request.name}"' if request.name else ""
    scope = (
        f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    )
    return (
        f'{group_resource}{named} is forbidden: User "{user.name}" cannot {request.verb} '
        f'resource "{request.resource}" in API group "{request.group}" {scope}'
    )

"""What a request may do: the test's `forbidden` rules, then administrators, then the stored
Roles, ClusterRoles and their bindings (`rbac.allowed`); and the two reviews that ask the same
decision, SelfSubjectAccessReview (`kubectl auth can-i`) and SelfSubjectRulesReview
(`kubectl auth can-i --list`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simcluster.apiserver import rbac
from simcluster.apiserver.authentication import ANONYMOUS
from simcluster.apiserver.kinds import CREATE_ONLY
from simcluster.apiserver.store import Store, StoreError
from simcluster.apiserver.targets import Target

if TYPE_CHECKING:
    from simcluster.cluster import SimCluster


def authorise(sim: SimCluster, user: rbac.User | None, verb: str, target: Target) -> None:
    kind = target.kind
    resource = kind.resource + (f"/{target.subresource}" if target.subresource else "")
    request = rbac.Attributes(verb, kind.group, resource, target.namespace or "", target.name or "")
    user = user or ANONYMOUS
    for rule_verb, rule_resource, rule_ns in sim.forbidden:
        if (
            rule_verb == verb
            and rule_resource == kind.resource
            and rule_ns
            in (
                None,
                target.namespace,
            )
        ):
            raise _forbidden(user, request)
    if user.is_admin or (kind.resource in CREATE_ONLY and user.name != "system:anonymous"):
        return  # every authenticated user may review itself (ClusterRole system:basic-user)
    if not granted(sim.store, user, request):
        raise _forbidden(user, request)


def granted(store: Store, user: rbac.User, request: rbac.Attributes) -> bool:
    """What the stored Roles, ClusterRoles and their bindings grant `user`."""
    with store.lock:
        return rbac.allowed(
            user,
            request,
            roles=store.peek("roles"),
            cluster_roles=store.peek("clusterroles"),
            role_bindings=store.peek("rolebindings"),
            cluster_role_bindings=store.peek("clusterrolebindings"),
        )


def _forbidden(user: rbac.User, request: rbac.Attributes) -> StoreError:
    return StoreError(
        403,
        "Forbidden",
        rbac.forbidden_message(user, request),
        name=request.name,
        group=request.group,
        kind=request.resource.partition("/")[0],
    )


def access_review(
    sim: SimCluster, user: rbac.User | None, review: dict[str, Any]
) -> dict[str, Any]:
    """A SelfSubjectAccessReview answered by the same RBAC decision requests get."""
    attributes = (review.get("spec") or {}).get("resourceAttributes")
    allowed = True
    if attributes is not None:
        resource = attributes.get("resource", "")
        if attributes.get("subresource"):
            resource += "/" + attributes["subresource"]
        request = rbac.Attributes(
            attributes.get("verb", ""),
            attributes.get("group", ""),
            resource,
            attributes.get("namespace", ""),
            attributes.get("name", ""),
        )
        allowed = granted(sim.store, user or rbac.User("system:anonymous", ()), request)
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": review.get("spec") or {},
        "status": {"allowed": allowed},
    }


def rules_review(sim: SimCluster, user: rbac.User | None, review: dict[str, Any]) -> dict[str, Any]:
    """A SelfSubjectRulesReview (`kubectl auth can-i --list`): the rules bound to the user
    in the namespace, from the same stored roles requests are decided by."""
    namespace = (review.get("spec") or {}).get("namespace") or ""
    store = sim.store
    with store.lock:
        resource_rules, other_rules = rbac.rules_for(
            user or ANONYMOUS,
            namespace,
            roles=store.peek("roles"),
            cluster_roles=store.peek("clusterroles"),
            role_bindings=store.peek("rolebindings"),
            cluster_role_bindings=store.peek("clusterrolebindings"),
        )
    return {
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"namespace": namespace},
        "status": {
            "resourceRules": resource_rules,
            "nonResourceRules": other_rules,
            "incomplete": False,
        },
    }

"""Who a request is: its bearer token (an administrator's, a kubelet's, or a ServiceAccount's
while the account exists), then `Impersonate-User`/`Impersonate-Group`; and the two APIs about
identity, SelfSubjectReview (`kubectl auth whoami`) and TokenRequest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import TYPE_CHECKING, Any

from simcluster.apiserver import bodies, rbac, rest
from simcluster.apiserver.kinds import Kind
from simcluster.apiserver.store import StoreError

if TYPE_CHECKING:
    from simcluster.cluster import SimCluster

UNAUTHENTICATED_PATHS = ("/version", "/healthz", "/livez", "/readyz")
ANONYMOUS = rbac.User("system:anonymous", ("system:unauthenticated",))


def authenticate(sim: SimCluster, headers: Message, path: str) -> rbac.User | None:
    scheme, _, token = (headers.get("Authorization") or "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if path in UNAUTHENTICATED_PATHS and not token:
        return None
    sim.token_uses[token] += 1
    if token in sim.tokens or token in sim.kubelet_tokens:
        return impersonated(rbac.ADMIN_USER, headers)
    account = sim.service_account_tokens.get(token)
    if account is not None and sim.store.get("serviceaccounts", account[1], account[0]):
        return impersonated(rbac.service_account_user(*account), headers)
    raise StoreError(401, "Unauthorized", "Unauthorized")


def impersonated(user: rbac.User, headers: Message) -> rbac.User:
    """`Impersonate-User` (kubectl --as) and `Impersonate-Group` (--as-group): the request
    then acts as that user; only an administrator may impersonate here (the `impersonate`
    verb is not granted to anyone else)."""
    name = headers.get("Impersonate-User")
    if not name:
        return user
    if not user.is_admin:
        raise StoreError(
            403,
            "Forbidden",
            f'users "{name}" is forbidden: User "{user.name}" cannot impersonate resource '
            '"users" in API group "" at the cluster scope',
            name=name,
            kind="users",
        )
    groups = tuple(headers.get_all("Impersonate-Group") or ())
    prefix = "system:serviceaccount:"
    if name.startswith(prefix) and name.count(":") == 3 and not groups:
        namespace, account = name[len(prefix) :].split(":")
        return rbac.service_account_user(namespace, account)
    return rbac.User(name, (*groups, "system:authenticated"))


def who_am_i(user: rbac.User | None) -> dict[str, Any]:
    """A SelfSubjectReview (`kubectl auth whoami`): the user the request authenticated as."""
    user = user or ANONYMOUS
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": {"username": user.name, "groups": list(user.groups)}},
    }


def token_request(
    sim: SimCluster, kind: Kind, *, namespace: str, name: str, body: bytes, content_type: str
) -> dict[str, Any]:
    """The TokenRequest API (`serviceaccounts/<name>/token`), as the kubelet asks it for a
    pod's projected token: a token that authenticates as the account while it exists."""
    if sim.store.get("serviceaccounts", name, namespace) is None:
        raise rest.not_found(kind, name)
    request = bodies.decode(body, content_type=content_type) if body else {}
    spec = dict(request.get("spec") or {})
    seconds = int(spec.get("expirationSeconds") or 3607)
    spec["expirationSeconds"] = seconds
    expires = datetime.now(UTC) + timedelta(seconds=seconds)
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
        "spec": spec,
        "status": {
            "token": sim.token_for_service_account(namespace, name),
            "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }

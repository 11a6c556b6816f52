"""The Kubernetes resources the awaiter reads and writes, as data that builds API paths.

A request carries its `Address` (resource, namespace, name), so the RBAC hint of a 403 (verb,
resource, namespace to grant) comes from data, never from parsing a path back. This is the only
module that spells API paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

VERBS_BY_METHOD = {"POST": "create", "DELETE": "delete", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True, slots=True)
class Resource:
    """One kind of object served by the API: `group` is "" for the core group."""

    group: str
    version: str
    plural: str
    namespaced: bool

    @property
    def qualified(self) -> str:
        """The name RBAC rules use: `daemonsets.apps`, or `nodes` in the core group."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def address(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> Address:
        """An object (with `name`, and maybe its `subresource`) or a collection; a namespace on
        a cluster-scoped kind is refused, since the API would answer 404 for a path that cannot
        exist."""
        if namespace is not None and not self.namespaced:
            raise ValueError(f"{self.qualified} is cluster-scoped; it has no namespace")
        return Address(resource=self, namespace=namespace, name=name, subresource=subresource)


@dataclass(frozen=True, slots=True)
class Address:
    """What one request is about: a collection (no name) or one object."""

    resource: Resource
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None  # `status`: nodes/status
    raw_path: str | None = None  # a non-resource URL (`/version`)

    @property
    def path(self) -> str:
        if self.raw_path is not None:
            return self.raw_path
        resource = self.resource
        root = (
            f"/apis/{resource.group}/{resource.version}"
            if resource.group
            else f"/api/{resource.version}"
        )
        scope = f"/namespaces/{self.namespace}" if self.namespace is not None else ""
        name = f"/{self.name}" if self.name is not None else ""
        sub = f"/{self.subresource}" if self.subresource else ""
        return f"{root}{scope}/{resource.plural}{name}{sub}"

    def verb(self, method: str, query: Mapping[str, str | int] | None = None) -> str:
        """The RBAC verb of `method` on this address (`WATCH` is a GET with watch=true)."""
        if method in VERBS_BY_METHOD:
            return VERBS_BY_METHOD[method]
        if method == "WATCH" or (query or {}).get("watch") in ("true", "1", 1):
            return "watch"
        return "get" if self.name is not None else "list"

    def __str__(self) -> str:
        return self.path


NAMESPACES = Resource(group="", version="v1", plural="namespaces", namespaced=False)
NODES = Resource(group="", version="v1", plural="nodes", namespaced=False)
PODS = Resource(group="", version="v1", plural="pods", namespaced=True)
DAEMONSETS = Resource(group="apps", version="v1", plural="daemonsets", namespaced=True)
DEPLOYMENTS = Resource(group="apps", version="v1", plural="deployments", namespaced=True)
EVENTS = Resource(group="", version="v1", plural="events", namespaced=True)
LEASES = Resource(group="coordination.k8s.io", version="v1", plural="leases", namespaced=True)
# Not a resource: the server's build, which every client may read (system:public-info-viewer).
SERVER_VERSION = Address(
    resource=Resource(group="", version="", plural="version", namespaced=False),
    raw_path="/version",
)

"""The kinds the simulated API server serves, as data: one row per resource with its group,
version, scope, short names, status subresource and the name rule its API validation applies."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    resource: str
    kind: str
    group: str
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    name_rule: str = "subdomain"  # subdomain | label | path (RBAC kinds, as the real server)
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else "/api/v1"

    @property
    def group_resource(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def singular(self) -> str:
        return self.kind.lower()


_ALL = ("all",)
SERVED: tuple[Kind, ...] = (
    Kind("namespaces", "Namespace", "", "v1", False, ("ns",), ("status",), "label"),
    Kind("nodes", "Node", "", "v1", False, ("no",), ("status",)),
    Kind("pods", "Pod", "", "v1", True, ("po",), ("status", "log"), categories=_ALL),
    Kind("configmaps", "ConfigMap", "", "v1", True, ("cm",)),
    Kind("secrets", "Secret", "", "v1", True),
    Kind("serviceaccounts", "ServiceAccount", "", "v1", True, ("sa",)),
    Kind("events", "Event", "", "v1", True, ("ev",)),
    Kind("daemonsets", "DaemonSet", "apps", "v1", True, ("ds",), ("status",), categories=_ALL),
    Kind("jobs", "Job", "batch", "v1", True, (), ("status",), categories=_ALL),
    Kind("roles", "Role", "rbac.authorization.k8s.io", "v1", True, (), (), "path"),
    Kind("rolebindings", "RoleBinding", "rbac.authorization.k8s.io", "v1", True, (), (), "path"),
    Kind("clusterroles", "ClusterRole", "rbac.authorization.k8s.io", "v1", False, (), (), "path"),
    Kind(
        "clusterrolebindings",
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io",
        "v1",
        False,
        (),
        (),
        "path",
    ),
    Kind("priorityclasses", "PriorityClass", "scheduling.k8s.io", "v1", False, ("pc",)),
    Kind("leases", "Lease", "coordination.k8s.io", "v1", True),
    # create-only and never stored: `kubectl auth can-i` asks RBAC through it
    Kind(
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        "authorization.k8s.io",
        "v1",
        False,
    ),
)
CREATE_ONLY = frozenset({"selfsubjectaccessreviews"})
BY_RESOURCE: dict[str, Kind] = {k.resource: k for k in SERVED}


def lookup(group_version_path: str, resource: str) -> Kind | None:
    kind = BY_RESOURCE.get(resource)
    if kind is None or kind.group_version_path != group_version_path:
        return None
    return kind


def group_versions() -> dict[str, list[Kind]]:
    """'/apis/apps/v1' -> its kinds, in a stable order ('/api/v1' first)."""
    out: dict[str, list[Kind]] = {}
    for kind in SERVED:
        out.setdefault(kind.group_version_path, []).append(kind)
    return out

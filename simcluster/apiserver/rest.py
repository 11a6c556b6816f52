"""The REST verbs as the apiserver runs them on stored objects: defaulting, validation (422),
optimistic concurrency (409), status subresources, PATCH in its four content types, server-side
apply, and deletion with propagationPolicy (dependents found by ownerReferences)."""

from __future__ import annotations

import base64
import copy
import json
from typing import TYPE_CHECKING, Any

import yaml

from simcluster.apiserver import patching, podgrace, schemas, validation
from simcluster.apiserver.kinds import BY_RESOURCE, Kind
from simcluster.apiserver.store import DRY_RUN, StoreError, now_iso

if TYPE_CHECKING:
    from simcluster.cluster import SimCluster

Obj = dict[str, Any]
STATUS_KINDS = {"pods", "daemonsets", "jobs", "namespaces"}  # status is reset on create/update
APPLY = "application/apply-patch+yaml"


def not_found(kind: Kind, name: str) -> StoreError:
    return StoreError(
        404,
        "NotFound",
        f'{kind.group_resource} "{name}" not found',
        name=name,
        group=kind.group,
        kind=kind.resource,
    )


def _conflict(kind: Kind, name: str) -> StoreError:
    return StoreError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {kind.group_resource} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        name=name,
        group=kind.group,
        kind=kind.resource,
    )


def _invalid(kind: Kind, name: str, errors: list[validation.FieldError]) -> StoreError:
    body = validation.status(kind, name, errors)
    return StoreError(422, "Invalid", body["message"], **body["details"])


# ---------------------------------------------------------------------------- defaulting


def _default_pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for part in ("containers", "initContainers"):
        for container in spec.get(part) or []:
            image = container.get("image") or ""
            tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
            container.setdefault(
                "imagePullPolicy", "IfNotPresent" if tagged or "@" in image else "Always"
            )
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("resources", {})


def default(kind: Kind, obj: Obj) -> None:
    """The defaults the apiserver fills in on create (pkg/apis/*/v1/defaults.go, a subset)."""
    meta = obj.setdefault("metadata", {})
    spec = obj.get("spec")
    if kind.resource == "pods" and isinstance(spec, dict):
        _default_pod_spec(spec)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})
    elif kind.resource in ("daemonsets", "jobs") and isinstance(spec, dict):
        template = spec.get("template")
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            _default_pod_spec(template["spec"])
        if kind.resource == "daemonsets":
            spec.setdefault("revisionHistoryLimit", 10)
            strategy = spec.setdefault("updateStrategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                rolling.setdefault("maxUnavailable", 1)
                rolling.setdefault("maxSurge", 0)
    elif kind.resource == "namespaces":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
    elif kind.resource == "secrets":
        obj.setdefault("type", "Opaque")
    if kind.resource == "secrets" and "stringData" in obj:
        data = obj.setdefault("data", {})
        for key, value in (obj.pop("stringData") or {}).items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _default_job(obj: Obj, uid: str) -> None:
    """batch/v1 Job PrepareForCreate: a generated selector on the controller-uid label."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for key, value in (
        ("completions", 1),
        ("parallelism", 1),
        ("backoffLimit", 6),
        ("completionMode", "NonIndexed"),
        ("suspend", False),
        ("manualSelector", None),
    ):
        if value is not None:
            spec.setdefault(key, value)
    if spec.get("manualSelector"):
        return
    name = obj["metadata"]["name"]
    labels = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)


# ---------------------------------------------------------------------------- verbs


def create(
    sim: SimCluster, kind: Kind, body: Obj, namespace: str | None, *, manager: str = ""
) -> Obj:
    obj = copy.deepcopy(body)
    meta = obj.setdefault("metadata", {})
    if kind.namespaced:
        if meta.get("namespace") and namespace and meta["namespace"] != namespace:
            raise StoreError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the "
                "request",
            )
        namespace = namespace or meta.get("namespace") or "default"
    if kind.resource in STATUS_KINDS - {"namespaces"}:
        obj.pop("status", None)
    default(kind, obj)
    name = meta.get("name") or ""
    if not name and meta.get("generateName"):
        meta["name"] = meta["generateName"] + "xxxxx"  # validated as the real name would be
    errors = validation.check(kind, obj)
    if not name:
        meta.pop("name", None)
    if errors:
        raise _invalid(kind, name or meta.get("generateName", ""), errors)
    with sim.store.lock:
        if kind.namespaced and sim.store.get("namespaces", namespace or "") is None:
            raise StoreError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                name=namespace,
                kind="namespaces",
            )
        if manager:
            patching.track_update(
                {},
                obj,
                manager=manager,
                subresource="",
                schema=schemas.for_kind(kind),
                api_version=kind.api_version,
                now=now_iso(),
            )
        created = sim.store.create(kind.resource, obj, namespace)
        if kind.resource == "namespaces":
            populate_namespace(sim, created["metadata"]["name"])
        if kind.resource == "jobs":

            def job_defaults(o: Obj) -> None:
                _default_job(o, o["metadata"]["uid"])

            created = (
                sim.store.mutate("jobs", created["metadata"]["name"], namespace, job_defaults)
                or created
            )
        return created


def populate_namespace(sim: SimCluster, namespace: str) -> None:
    """What the ServiceAccount controller does for every new namespace (pods that name no
    account run as `default`, and ServiceAccount admission refuses pods whose account is
    missing) and, once `SimCluster.publish_root_ca` is on, the root CA publisher."""
    sim.store.create("serviceaccounts", {"metadata": {"name": "default"}}, namespace)
    if sim.root_ca is not None:
        config_map = {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": sim.root_ca}}
        sim.store.create("configmaps", config_map, namespace)


def _commit(
    sim: SimCluster,
    kind: Kind,
    name: str,
    namespace: str | None,
    current: Obj,
    new: Obj,
    *,
    subresource: str,
    manager: str,
) -> Obj:
    """Store `new` in place of `current` after the checks every update passes."""
    meta = new.setdefault("metadata", {})
    if meta.get("name", name) != name:
        raise StoreError(
            400,
            "BadRequest",
            f"the name of the object ({meta.get('name')}) does not match the name on the URL "
            f"({name})",
        )
    wanted_rv = meta.get("resourceVersion")
    if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
        raise _conflict(kind, name)
    if subresource == "status":
        merged = copy.deepcopy(current)
        merged["status"] = new.get("status")
        new = merged
    elif kind.resource in STATUS_KINDS and "status" in current:
        new["status"] = current["status"]
    for key in ("uid", "creationTimestamp", "namespace", "name", "generation", "deletionTimestamp"):
        if key in current["metadata"]:
            new["metadata"][key] = current["metadata"][key]
    new["kind"], new["apiVersion"] = kind.kind, kind.api_version
    if subresource != "status":
        default(kind, new) if kind.resource != "namespaces" else None
        errors = validation.check(kind, new, current)
        if errors:
            raise _invalid(kind, name, errors)
    if "managedFields" not in meta and subresource != "status":
        new["metadata"]["managedFields"] = current["metadata"].get("managedFields") or []
    if manager:
        patching.track_update(
            current,
            new,
            manager=manager,
            subresource=subresource,
            schema=schemas.for_kind(kind),
            api_version=kind.api_version,
            now=now_iso(),
        )
    if _same_content(current, new):
        return current

    def replace(obj: Obj) -> None:
        obj.clear()
        obj.update(new)

    return sim.store.mutate(kind.resource, name, namespace, replace) or new


def _same_content(a: Obj, b: Obj) -> bool:
    def strip(o: Obj) -> Obj:
        c = copy.deepcopy(o)
        c["metadata"].pop("resourceVersion", None)
        for entry in c["metadata"].get("managedFields") or []:
            entry.pop("time", None)
        return c

    return strip(a) == strip(b)


def update(
    sim: SimCluster,
    kind: Kind,
    name: str,
    namespace: str | None,
    body: Obj,
    *,
    subresource: str = "",
    manager: str = "",
) -> Obj:
    with sim.store.lock:
        current = sim.store.get(kind.resource, name, namespace)
        if current is None:
            raise not_found(kind, name)
        return _commit(
            sim,
            kind,
            name,
            namespace,
            current,
            copy.deepcopy(body),
            subresource=subresource,
            manager=manager,
        )


def patch(
    sim: SimCluster,
    kind: Kind,
    name: str,
    namespace: str | None,
    data: bytes,
    content_type: str,
    *,
    subresource: str = "",
    manager: str = "",
    force: bool = False,
) -> tuple[Obj, bool]:
    """(the patched object, whether it was created: server-side apply creates)."""
    content_type = content_type.split(";")[0].strip()
    try:
        body = yaml.safe_load(data) if content_type == APPLY else json.loads(data or b"{}")
    except (ValueError, yaml.YAMLError) as error:
        raise StoreError(400, "BadRequest", f"error decoding patch: {error}") from None
    schema = schemas.for_kind(kind)
    if subresource == "status":
        schema = {"properties": {"status": schemas.field(schema, "status")}}
    with sim.store.lock:
        current = sim.store.get(kind.resource, name, namespace)
        if content_type == APPLY:
            if not manager:
                raise StoreError(
                    400,
                    "BadRequest",
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                    "required for apply patch",
                )
            if not isinstance(body, dict):
                raise StoreError(400, "BadRequest", "apply patch must be an object")
            if current is None:
                applied = patching.apply(
                    None,
                    body,
                    manager=manager,
                    force=force,
                    schema=schema,
                    api_version=kind.api_version,
                    now=now_iso(),
                )
                applied.setdefault("metadata", {})["name"] = name
                return create(sim, kind, applied, namespace), True
            new = patching.apply_as_kubectl(
                current,
                body,
                manager=manager,
                force=force,
                schema=schema,
                api_version=kind.api_version,
                now=now_iso(),
            )
            new["metadata"].pop("resourceVersion", None)
            return _commit(
                sim, kind, name, namespace, current, new, subresource=subresource, manager=""
            ), False
        if current is None:
            raise not_found(kind, name)
        if content_type == "application/json-patch+json":
            new = patching.json_patch(current, body)
        elif content_type == "application/strategic-merge-patch+json":
            new = patching.strategic_merge(current, body, schema)
        elif content_type == "application/merge-patch+json":
            new = patching.merge_patch(current, body)
        else:
            raise StoreError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, "
                "application/apply-patch+yaml, application/strategic-merge-patch+json",
            )
        if not isinstance(body, dict) or "resourceVersion" not in (body.get("metadata") or {}):
            new.setdefault("metadata", {})["resourceVersion"] = current["metadata"][
                "resourceVersion"
            ]
        return _commit(
            sim, kind, name, namespace, current, new, subresource=subresource, manager=manager
        ), False


def dependents(sim: SimCluster, uid: str) -> list[tuple[Kind, str, str]]:
    out = []
    for kind in BY_RESOURCE.values():
        for (ns, name), obj in list(sim.store.peek(kind.resource).items()):
            if any(o.get("uid") == uid for o in obj["metadata"].get("ownerReferences") or []):
                out.append((kind, ns, name))
    return out


def delete(sim: SimCluster, kind: Kind, name: str, namespace: str | None, options: Obj) -> Obj:
    with sim.store.lock:
        current = sim.store.get(kind.resource, name, namespace)
        if current is None:
            raise not_found(kind, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
            raise StoreError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                f"{current['metadata']['uid']}",
                name=name,
                kind=kind.resource,
            )
        if (
            pre.get("resourceVersion")
            and pre["resourceVersion"] != current["metadata"]["resourceVersion"]
        ):
            raise StoreError(
                409,
                "Conflict",
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {current['metadata']['resourceVersion']}",
                name=name,
                kind=kind.resource,
            )
        if DRY_RUN.get():
            return current  # checked as a delete would be; nothing happens
        if kind.resource == "pods":
            served = sim.serves_node
            terminating = podgrace.mark_terminating(sim.store, current, options, served=served)
            if terminating is not None:  # its kubelet stops it, then deletes it
                return terminating
        policy = options.get("propagationPolicy") or (
            "Orphan" if options.get("orphanDependents") else "Background"
        )
        uid = current["metadata"]["uid"]
        children = dependents(sim, uid)
        if policy == "Orphan":
            for child, ns, child_name in children:
                sim.store.mutate(
                    child.resource,
                    child_name,
                    ns,
                    lambda o: o["metadata"].__setitem__(
                        "ownerReferences",
                        [
                            r
                            for r in o["metadata"].get("ownerReferences") or []
                            if r.get("uid") != uid
                        ],
                    ),
                )
        elif policy == "Foreground":
            for child, ns, child_name in children:
                delete(sim, child, child_name, ns or None, {"propagationPolicy": "Foreground"})
        deleted = sim.store.delete(kind.resource, name, namespace) or current
        if kind.resource == "pods":
            deleted = podgrace.as_deleted(deleted)
        if policy == "Background":
            for child, ns, child_name in children:
                if sim.store.get(child.resource, child_name, ns or None) is not None:
                    delete(sim, child, child_name, ns or None, {"propagationPolicy": "Background"})
        if kind.resource == "namespaces":
            for other in BY_RESOURCE.values():
                if other.namespaced:
                    for ns, child_name in list(sim.store.peek(other.resource)):
                        if ns == name:
                            sim.store.delete(other.resource, child_name, ns)
        return deleted

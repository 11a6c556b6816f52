"""The gate's puller DaemonSets: one per pull group, long-lived (no run id), tolerating the gate
taint, labelled `image-awaiter.io/role: gate` so that `await`'s sweep of stale pullers never
takes them, created when missing and updated in place when their pod template changes (an
annotation holds the template's hash). The chart owns their lifetime; the gate never deletes
them (`kubectl delete daemonset -l image-awaiter.io/role=gate` does).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from image_awaiter.core.errors import ApiError, Conflict, NameClash, NotFound
from image_awaiter.core.gating import GateTaint
from image_awaiter.core.placement import Placement
from image_awaiter.kube.api import KubeApi
from image_awaiter.kube.resources import DAEMONSETS, DEPLOYMENTS
from image_awaiter.spec.pullers import (
    GATE_ROLE,
    GROUP_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    ROLE_LABEL,
    daemonset_base_name,
)

log = structlog.get_logger("image_awaiter.cluster.gatepullers")

GATE_SELECTOR = f"{ROLE_LABEL}={GATE_ROLE}"
TEMPLATE_HASH = "image-awaiter.io/template-hash"


def gate_manifest(
    manifest: Mapping[str, Any],
    *,
    gate: GateTaint,
    group: str,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A group's puller made the gate's: a stable name, the gate's labels and selector, a
    toleration of the gate taint, the owner (the gate's Deployment: uninstalling the chart
    removes them) and the hash of the template and owner."""
    daemonset = copy.deepcopy(dict(manifest))
    daemonset.pop("status", None)
    metadata = daemonset.setdefault("metadata", {})
    name = f"{daemonset_base_name(daemonset)}-gate"
    labels = {MANAGED_BY_LABEL: MANAGED_BY, ROLE_LABEL: GATE_ROLE, GROUP_LABEL: group}
    daemonset["metadata"] = {
        "name": name,
        "labels": {**(metadata.get("labels") or {}), **labels},
        "annotations": dict(metadata.get("annotations") or {}),
    }
    spec = daemonset["spec"]
    spec["selector"] = {"matchLabels": {ROLE_LABEL: GATE_ROLE, GROUP_LABEL: group}}
    template = spec["template"]
    template_meta = template.setdefault("metadata", {})
    template_meta["labels"] = {**(template_meta.get("labels") or {}), **labels}
    pod = template.setdefault("spec", {})
    toleration = {"key": gate.key, "operator": "Exists", "effect": gate.effect}
    if toleration not in (pod.get("tolerations") or []):
        pod["tolerations"] = [*(pod.get("tolerations") or []), toleration]
    if owner is not None:
        daemonset["metadata"]["ownerReferences"] = [dict(owner)]
    hashed = {"template": template, "owner": owner}
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]
    daemonset["metadata"]["annotations"][TEMPLATE_HASH] = digest
    return daemonset


def gate_placement(placement: Placement, gate: GateTaint) -> Placement:
    """Where a gate puller runs: its group's placement, tolerating the gate taint."""
    return dataclasses.replace(placement, tolerations=(*placement.tolerations, gate.toleration))


@dataclass(frozen=True, slots=True)
class Listed:
    """What the gate keeps of one of its DaemonSets (its DaemonSets cache)."""

    uid: str
    template_hash: str


def listed(raw: dict[str, Any]) -> Listed:
    metadata = raw.get("metadata") or {}
    return Listed(
        uid=str(metadata.get("uid") or ""),
        template_hash=str((metadata.get("annotations") or {}).get(TEMPLATE_HASH) or ""),
    )


def deployment_owner(kube: KubeApi, *, namespace: str, name: str) -> dict[str, Any] | None:
    """The ownerReference to the gate's Deployment `name`, or None (logged) when it cannot be
    read: the DaemonSets then outlive an uninstall and are removed by hand."""
    try:
        deployment = kube.request("GET", DEPLOYMENTS.address(namespace=namespace, name=name))
    except ApiError as error:
        log.warning("gate.owner_unread", deployment=name, error=error.one_line())
        return None
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name,
        "uid": str(deployment["metadata"]["uid"]),
        "blockOwnerDeletion": False,
        "controller": False,
    }


class GatePullers:
    """The gate's DaemonSets in `namespace`: `ensure` creates the missing and updates the
    changed, judging from the DaemonSets cache (name -> `Listed`)."""

    def __init__(self, *, kube: KubeApi, namespace: str, manifests: list[dict[str, Any]]) -> None:
        self._kube = kube
        self.namespace = namespace
        self.manifests = {m["metadata"]["name"]: m for m in manifests}

    def ensure(self, cached: Mapping[str, Listed]) -> None:
        for name, manifest in self.manifests.items():
            wanted = manifest["metadata"]["annotations"][TEMPLATE_HASH]
            have = cached.get(f"{self.namespace}/{name}")
            if have is not None and have.template_hash == wanted:
                continue
            try:
                self._write(name, manifest)
            except NameClash:
                raise
            except ApiError as error:  # the next tick tries again
                log.warning("gate.daemonset_unwritten", name=name, error=error.one_line())

    def _write(self, name: str, manifest: dict[str, Any]) -> None:
        address = DAEMONSETS.address(namespace=self.namespace, name=name)
        try:
            existing = self._kube.request("GET", address)
        except NotFound:
            body = {**manifest, "metadata": {**manifest["metadata"], "namespace": self.namespace}}
            try:
                self._kube.request("POST", DAEMONSETS.address(namespace=self.namespace), body=body)
            except Conflict:
                return  # another replica created it a moment ago; the cache will tell
            log.info("gate.daemonset_created", name=name, namespace=self.namespace)
            return
        labels = (existing.get("metadata") or {}).get("labels") or {}
        if labels.get(ROLE_LABEL) != GATE_ROLE:
            raise NameClash(
                f"a DaemonSet named {name!r} already exists in {self.namespace!r} and is not "
                "the gate's; it was left untouched",
                status=409,
                hint="delete or rename it, or use another namespace",
            )
        if (existing["metadata"].get("annotations") or {}).get(TEMPLATE_HASH) == manifest[
            "metadata"
        ]["annotations"][TEMPLATE_HASH]:
            return
        body = copy.deepcopy(manifest)
        body["metadata"]["namespace"] = self.namespace
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        body["spec"]["selector"] = existing["spec"]["selector"]  # immutable
        try:
            self._kube.request("PUT", address, body=body)
        except Conflict:
            return  # changed meanwhile: the next tick reads it again
        log.info("gate.daemonset_updated", name=name, namespace=self.namespace)

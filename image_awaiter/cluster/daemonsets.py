"""The puller DaemonSet in the cluster: create it (or adopt our own after a 409), keep it alive,
delete it by uid with preconditions, sweep what earlier runs left behind.

The awaiter never modifies or deletes an object it did not create: deletions carry a uid
precondition, and a sweep only touches DaemonSets with our managed-by label, a run id and a
creation annotation. Whether a listed DaemonSet is stale is a pure decision (`stale_reason`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from image_awaiter.core.errors import (
    ApiError,
    AwaiterError,
    Conflict,
    DeadlineReached,
    Forbidden,
    NameClash,
    NamespaceNotFound,
    NotFound,
    Unreachable,
)
from image_awaiter.kube.api import KubeApi
from image_awaiter.kube.resources import DAEMONSETS, NAMESPACES, PODS
from image_awaiter.output.reporting import now_iso
from image_awaiter.spec.pullers import (
    CREATED_AT_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    ROLE_LABEL,
    RUN_ID_LABEL,
    Owner,
    PullerTemplate,
)

log = structlog.get_logger("image_awaiter.cluster.daemonsets")

# Seconds that deleting every DaemonSet of a run may take together, even after the deadline:
# after SIGTERM the kubelet waits terminationGracePeriodSeconds (30 s by default) before SIGKILL.
CLEANUP_BUDGET = 20.0
MAX_RECREATIONS = 3  # times a DaemonSet deleted by someone else is recreated
CONFIRM_GAP = 1.0  # seconds between reads confirming that our DaemonSet is gone
STALE_AFTER = 24 * 3600.0  # an unowned puller DaemonSet older than this is a leftover


@dataclass(frozen=True, slots=True)
class DaemonSetRecord:
    """What the run knows of its DaemonSet; the report's `daemonset` field."""

    name: str
    namespace: str
    uid: str | None = None  # None: not created, or the create's answer was lost
    created: bool = False
    deleted: bool = False

    def to_report(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Listed:
    """What a sweep reads of one listed puller DaemonSet."""

    name: str
    uid: str
    run_id: str | None
    created_at: str | None
    owner: Owner | None  # the pod it belongs to, from its ownerReferences

    @property
    def ours(self) -> bool:
        """Made by a run of image-awaiter: a run id and a creation time, not only the label."""
        return self.run_id is not None and bool(self.created_at)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], *, namespace: str) -> Listed:
        metadata = raw.get("metadata") or {}
        pods = [o for o in metadata.get("ownerReferences") or [] if o.get("kind") == "Pod"]
        owner = (
            Owner(name=str(pods[0].get("name")), uid=str(pods[0].get("uid")), namespace=namespace)
            if pods
            else None
        )
        return cls(
            name=str(metadata.get("name", "")),
            uid=str(metadata.get("uid", "")),
            run_id=(metadata.get("labels") or {}).get(RUN_ID_LABEL),
            created_at=(metadata.get("annotations") or {}).get(CREATED_AT_ANNOTATION),
            owner=owner,
        )


def stale_reason(listed: Listed, *, owner_uid: str | None, now: float) -> str | None:
    """Why a listed puller DaemonSet is a leftover, or None to leave it. `owner_uid` is the uid
    of the pod now bearing its owner's name (None: no such pod); `now` is epoch seconds."""
    if listed.run_id is None or not listed.created_at:
        return None  # not made by a run of ours
    if listed.owner is not None:
        if owner_uid is None:
            return f"owner pod {listed.owner.name} is gone"
        if owner_uid != listed.owner.uid:
            return f"owner pod {listed.owner.name} was replaced"
        return None
    try:
        born = datetime.fromisoformat(listed.created_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    age = now - born
    return f"unowned and {age / 3600:.0f}h old" if age > STALE_AFTER else None


def check_namespace(kube: KubeApi, namespace: str, *, required: bool, own: str | None) -> None:
    """Fail early, before creating anything, when the namespace does not exist.

    Skipped when it is `own`, the awaiter pod's own namespace: it exists (the pod runs in it),
    and the chart grants no read of namespaces, so the request would only be refused.

    Only the API's own NotFound for the namespace proves that (`NamespaceNotFound`); a bare 404
    (a proxy, an API that does not serve namespaces) or a 403 leaves it unverified: the create
    will tell."""
    if namespace == own:
        log.debug("namespace.own", detail="the awaiter's own namespace; not read")
        return
    try:
        kube.request("GET", NAMESPACES.address(name=namespace))
    except NamespaceNotFound:
        raise  # already says which namespace and what to do
    except (Forbidden, NotFound) as error:
        log.debug("namespace.unverified", namespace=namespace, error=error.message)
    except ApiError as error:
        if required:
            raise
        log.debug("namespace.unverified", namespace=namespace, error=error.message)


def sweep_stale(kube: KubeApi, namespace: str) -> None:
    """Delete puller DaemonSets that earlier runs left behind: their owner pod is gone, or they
    have no owner and are older than STALE_AFTER. The gate's long-lived pullers (a role label
    of their own) are never listed."""
    listing = kube.request(
        "GET",
        DAEMONSETS.address(namespace=namespace),
        query={"labelSelector": f"{MANAGED_BY_LABEL}={MANAGED_BY},!{ROLE_LABEL}"},
    )
    for item in listing.get("items") or []:
        listed = Listed.from_json(item, namespace=namespace)
        if not listed.ours:
            continue
        try:
            owner_uid = _pod_uid(kube, listed.owner) if listed.owner else None
        except ApiError:
            continue  # cannot tell: leave it
        reason = stale_reason(listed, owner_uid=owner_uid, now=time.time())
        if reason is None:
            continue
        try:
            delete_by_uid(kube, namespace=namespace, name=listed.name, uid=listed.uid)
        except ApiError as error:
            log.warning("daemonset.sweep_failed", name=listed.name, error=error.message)
            continue
        log.info("daemonset.swept", name=listed.name, reason=reason)


def _pod_uid(kube: KubeApi, owner: Owner) -> str | None:
    try:
        pod = kube.request("GET", PODS.address(namespace=owner.namespace, name=owner.name))
    except NotFound:
        return None
    return str((pod.get("metadata") or {}).get("uid", ""))


def delete_by_uid(kube: KubeApi, *, namespace: str, name: str, uid: str) -> None:
    """Delete the DaemonSet only if it still has `uid`: never someone else's."""
    options = {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "propagationPolicy": "Background",
        "preconditions": {"uid": uid},
    }
    with contextlib.suppress(NotFound, Conflict):  # gone already, or no longer ours
        kube.request("DELETE", DAEMONSETS.address(namespace=namespace, name=name), body=options)


class PullerDaemonSet:
    """This run's puller DaemonSet: created once, recreated if someone deletes it, deleted at
    the end. `record` is None until a create was attempted."""

    def __init__(self, kube: KubeApi, template: PullerTemplate) -> None:
        self._kube = kube
        self.template = template
        self._group = template.group
        self._namespace = template.namespace
        self._run_id = template.run_id
        self._recreations = 0
        self._confirmed_at = float("-inf")
        self.record: DaemonSetRecord | None = None

    def create(self, *, skip_nodes: Collection[str] = ()) -> None:
        body = self.template.for_run(created_at=now_iso(), skip_nodes=skip_nodes)
        name = body["metadata"]["name"]
        self.record = DaemonSetRecord(name=name, namespace=self._namespace)
        try:
            created = self._kube.request(
                "POST", DAEMONSETS.address(namespace=self._namespace), body=body
            )
        except Conflict:
            created = self._adopt_own(name)
        except (Unreachable, DeadlineReached):
            raise  # no answer: the create may have landed, so cleanup will look for it
        except ApiError:
            self.record = None  # a definite answer: nothing was created
            raise
        uid = created["metadata"]["uid"]
        self.record = dataclasses.replace(self.record, uid=uid, created=True)
        log.info("daemonset.created", name=name, namespace=self._namespace, group=self._group)

    def _adopt_own(self, name: str) -> dict[str, Any]:
        """A 409 after a retried create is our own first attempt; anything else is a clash."""
        existing = self._kube.request(
            "GET", DAEMONSETS.address(namespace=self._namespace, name=name)
        )
        if _run_id_of(existing) != self._run_id:
            raise NameClash(
                f"a DaemonSet named {name!r} already exists in {self._namespace!r} and was not "
                "created by this run; it was left untouched",
                status=409,
                hint="delete or rename it, or use another namespace",
            )
        return existing

    def keep_alive(self, *, cached_uids: Collection[str], skip_nodes: Collection[str]) -> None:
        """Recreate our DaemonSet if someone else deleted it mid-run (a few times at most).

        The cache only hints: a watch that lags does not yet hold the object just created, so
        an absence is confirmed by reading the object itself, at most once a second."""
        if self.record is None or self.record.uid in cached_uids:
            return
        now = time.monotonic()
        if now - self._confirmed_at < CONFIRM_GAP:
            return
        self._confirmed_at = now
        if self._still_exists():
            return
        if self._recreations >= MAX_RECREATIONS:
            raise ApiError(
                "the puller DaemonSet keeps being deleted by someone else",
                hint="find what deletes DaemonSets labelled "
                "app.kubernetes.io/managed-by=image-awaiter",
            )
        self._recreations += 1
        log.warning("daemonset.vanished", name=self.record.name, recreating=True)
        self.create(skip_nodes=skip_nodes)

    def _still_exists(self) -> bool:
        assert self.record is not None
        address = DAEMONSETS.address(namespace=self._namespace, name=self.record.name)
        try:
            existing = self._kube.request("GET", address)
        except NotFound:
            return False
        return bool((existing.get("metadata") or {}).get("uid") == self.record.uid)

    def delete(self, *, deadline: float) -> None:
        """Delete the DaemonSet this run created, until the cleanup's own `deadline` (monotonic;
        after the run's deadline is fine); a failure, or no time left to try, is logged with
        the command to finish the job by hand."""
        if self.record is None:
            return
        try:
            if time.monotonic() >= deadline:
                raise DeadlineReached(f"no time was left to delete it ({CLEANUP_BUDGET:g} s)")
            self._delete(self._kube.bounded(deadline))
        except AwaiterError as error:
            log.error(
                "daemonset.cleanup_failed",
                name=self.record.name,
                namespace=self._namespace,
                error=error.one_line(),
                hint="delete it by hand: kubectl delete daemonset -n "
                f"{self._namespace} {self.record.name}",
            )

    def _delete(self, cleanup: KubeApi) -> None:
        assert self.record is not None
        name, uid = self.record.name, self.record.uid
        if uid is None:  # the create may have landed although its answer was lost
            address = DAEMONSETS.address(namespace=self._namespace, name=name)
            try:
                existing = cleanup.request("GET", address)
            except NotFound:
                return
            if _run_id_of(existing) != self._run_id:
                return
            uid = existing["metadata"]["uid"]
        delete_by_uid(cleanup, namespace=self._namespace, name=name, uid=uid)
        self.record = dataclasses.replace(self.record, deleted=True)
        log.info("daemonset.deleted", name=name, namespace=self._namespace)


def _run_id_of(raw: Mapping[str, Any]) -> str | None:
    labels = (raw.get("metadata") or {}).get("labels") or {}
    value = labels.get(RUN_ID_LABEL)
    return str(value) if value is not None else None

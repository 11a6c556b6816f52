"""How the simulated API server serves lists at scale, and how it counts them.

- **Synthetic nodes** (`SyntheticNodes`): tens of thousands of realistic nodes (13 labels, a
  taint, 50 images of 2-5 names each) rendered as JSON bytes on demand, page by page or event by
  event, so the simulated server stays small while it serves a 1 GB cluster. With them, each
  DaemonSet in the store has a completed puller pod on every synthetic node that its template's
  `metadata.name NotIn` does not skip (`puller_pods`), also rendered on demand.
- **Where a request is served from**, as kube-apiserver's cacher decides
  (`staging/src/k8s.io/apiserver/pkg/storage/cacher/cacher.go`, `shouldDelegateList`): a list
  with `resourceVersion` unset, or with a `continue` token, or with a `limit` and a
  `resourceVersion` other than "0", is a quorum read from etcd; any other list (`resourceVersion=0`,
  or `resourceVersionMatch=NotOlderThan` without a limit) is served from the watch cache, which
  ignores `limit` and returns everything at once (before ListFromCacheSnapshot, 1.33). A watch
  with `sendInitialEvents=true` is a streaming list, from the watch cache too.
- **WatchList** on or off (`SimCluster.watch_list`): off, a streaming list is refused with the
  Status a real server sends when the WatchList feature gate is disabled (422 Invalid,
  `validateWatchOptions` in `k8s.io/apiserver/pkg/apis/meta/internalversion/validation`).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

from simcluster.apiserver.store import StoreError
from simcluster.nodes.factory import COMMON_IMAGE, node_object

if TYPE_CHECKING:
    from simcluster.apiserver.responses import RequestRecord
    from simcluster.cluster import SimCluster

SYNTHETIC_RESOURCE_VERSION = "2"  # older than anything the store writes after start
WATCH_LIST_REFUSED = (
    "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"
)


# ---------------------------------------------------------------------------- synthetic nodes


class SyntheticNodes:
    """`count` nodes named `{prefix}-00000`..., each rendered from a template on demand."""

    def __init__(
        self, count: int, *, images_per_node: int = 50, seed: int = 0, prefix: str = "node"
    ) -> None:
        self.count = count
        self.prefix = prefix
        self._seed = seed
        self._per_node = images_per_node
        self._template = _node_template()
        self._pool = _image_pool(random.Random(seed))
        self._common = _image_entry(COMMON_IMAGE, random.Random(seed))

    def name(self, index: int) -> str:
        return f"{self.prefix}-{index:05d}"

    def names(self) -> list[str]:
        return [self.name(i) for i in range(self.count)]

    def render(self, index: int) -> bytes:
        rng = random.Random(self._seed * 1_000_003 + index)
        chosen = rng.sample(range(len(self._pool)), self._per_node - 1)
        images = b"[" + b",".join([self._common, *(self._pool[i] for i in chosen)]) + b"]"
        return (
            self._template.replace(b"__NAME__", self.name(index).encode())
            .replace(b"__ZONE__", b"abc"[index % 3 : index % 3 + 1])
            .replace(b'"__IMAGES__"', images)
        )


def _node_template() -> bytes:
    zone = "us-central1-__ZONE__"
    labels = {  # 13 with the 5 every kubelet sets (node_object adds them)
        "topology.kubernetes.io/region": "us-central1",
        "topology.kubernetes.io/zone": zone,
        "failure-domain.beta.kubernetes.io/region": "us-central1",
        "failure-domain.beta.kubernetes.io/zone": zone,
        "node.kubernetes.io/instance-type": "n2-standard-16",
        "beta.kubernetes.io/instance-type": "n2-standard-16",
        "cloud.google.com/gke-nodepool": "user-pool",
        "hub.jupyter.org/node-purpose": "user",
    }
    obj = node_object(
        "__NAME__",
        ready=True,
        unschedulable=False,
        taints=[{"key": "hub.jupyter.org/dedicated", "value": "user", "effect": "NoSchedule"}],
        labels=labels,
        max_pods=110,
        arch="amd64",
        os="linux",
        runtime="containerd",
    )
    obj["kind"], obj["apiVersion"] = "Node", "v1"
    obj["metadata"]["resourceVersion"] = SYNTHETIC_RESOURCE_VERSION
    obj["metadata"]["uid"] = "synthetic-__NAME__"
    obj["status"]["images"] = "__IMAGES__"
    return json.dumps(obj, separators=(",", ":")).encode()


def _image_entry(ref: str, rng: random.Random) -> bytes:
    """One `status.images` entry as containerd reports it: digest and tag names, sometimes more
    tags of the same image (the kubelet keeps at most 5 names)."""
    name, _, tag = ref.rpartition(":")
    digest = "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
    names = [f"{name}@{digest}", f"{name}:{tag}"]
    names += [f"{name}:build-{rng.randint(1000, 9999)}" for _ in range(rng.randint(0, 3))]
    entry = {"names": names[:5], "sizeBytes": rng.randint(50, 9000) * 1024**2}
    return json.dumps(entry, separators=(",", ":")).encode()


def _image_pool(rng: random.Random, size: int = 400) -> list[bytes]:
    return [
        _image_entry(f"registry.example.com/team-{i % 17}/service-{i}:v1.{i % 9}.0", rng)
        for i in range(size)
    ]


# ---------------------------------------------------------------------------- puller pods


def puller_pods(sim: SimCluster, namespace: str | None, keep: Callable[[Any], bool]) -> list[Any]:
    """(template bytes, skipped names) for each DaemonSet whose puller pods `keep` selects."""
    found = []
    for (ns, _), ds in sorted(sim.store.peek("daemonsets").items()):
        template = (ds.get("spec") or {}).get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if (namespace is None or ns == namespace) and keep({"metadata": {"labels": labels}}):
            found.append((_pod_template(ds), _skipped(template)))
    return found


def _pod_template(ds: dict[str, Any]) -> bytes:
    template = ds["spec"]["template"]
    spec = dict(template.get("spec") or {})
    spec["nodeName"] = "__NODE__"

    def status(container: dict[str, Any], *, init: bool) -> dict[str, Any]:
        state = (
            {"terminated": {"exitCode": 0, "reason": "Completed"}}
            if init
            else {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
        )
        digest = hashlib.sha256(container.get("image", "").encode()).hexdigest()
        return {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": f"sha256:{digest}",
            "state": state,
            "ready": not init,
            "started": not init,
            "restartCount": 0,
        }

    pod = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": ds["metadata"]["name"] + "-__NODE__",
            "namespace": ds["metadata"]["namespace"],
            "uid": "synthetic-pod-__NODE__",
            "resourceVersion": SYNTHETIC_RESOURCE_VERSION,
            "labels": (template.get("metadata") or {}).get("labels") or {},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": ds["metadata"]["name"],
                    "uid": ds["metadata"].get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
        "status": {
            "phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "initContainerStatuses": [
                status(c, init=True) for c in spec.get("initContainers") or []
            ],
            "containerStatuses": [status(c, init=False) for c in spec.get("containers") or []],
        },
    }
    return json.dumps(pod, separators=(",", ":")).encode()


def _skipped(template: dict[str, Any]) -> frozenset[str]:
    affinity = ((template.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    return frozenset(
        value
        for term in required.get("nodeSelectorTerms") or []
        for field in term.get("matchFields") or []
        if field.get("key") == "metadata.name" and field.get("operator") == "NotIn"
        for value in field.get("values") or []
    )


# ---------------------------------------------------------------------------- serving


class LazyItems(Sequence[bytes]):
    """Rendered objects first, then the store's: slices render only what they cover."""

    def __init__(self, parts: list[tuple[int, Callable[[int], bytes]]], stored: list[bytes]):
        self._parts = parts
        self._stored = stored
        self._length = sum(n for n, _ in parts) + len(stored)

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return [self._one(i) for i in range(*index.indices(self._length))]
        return self._one(index if index >= 0 else self._length + index)

    def __iter__(self) -> Iterator[bytes]:
        for count, render in self._parts:
            for i in range(count):
                yield render(i)
        yield from self._stored

    def _one(self, index: int) -> bytes:
        for count, render in self._parts:
            if index < count:
                return render(index)
            index -= count
        return self._stored[index]


def synthetic_parts(
    sim: SimCluster, resource: str, namespace: str | None, query: dict[str, str]
) -> list[tuple[int, Callable[[int], bytes]]]:
    """The rendered objects a list or watch of `resource` includes besides the store's."""
    nodes = sim.synthetic_nodes
    if nodes is None or query.get("fieldSelector"):
        return []
    if resource == "nodes" and not query.get("labelSelector"):
        return [(nodes.count, nodes.render)]
    if resource != "pods":
        return []
    from simcluster.apiserver.store import parse_label_selector

    keep = parse_label_selector(query.get("labelSelector", ""))
    parts: list[tuple[int, Callable[[int], bytes]]] = []
    for template, skipped in puller_pods(sim, namespace, lambda o: keep(o["metadata"]["labels"])):
        names = [n for n in nodes.names() if n not in skipped]

        def render(i: int, template: bytes = template, names: list[str] = names) -> bytes:
            return template.replace(b"__NODE__", names[i].encode())

        parts.append((len(names), render))
    return parts


def list_items(
    sim: SimCluster,
    resource: str,
    namespace: str | None,
    query: dict[str, str],
    stored: list[bytes],
) -> Sequence[bytes]:
    parts = synthetic_parts(sim, resource, namespace, query)
    return LazyItems(parts, stored) if parts else stored


def initial_events(parts: list[tuple[int, Callable[[int], bytes]]]) -> Iterator[bytes]:
    """ADDED lines for the rendered objects of `synthetic_parts`, rendered as they are sent."""
    for count, render in parts:
        for i in range(count):
            yield b'{"type":"ADDED","object":' + render(i) + b"}"


def list_limit(query: dict[str, str]) -> int:
    """The page size the server honours: the watch cache ignores `limit` for rv=0."""
    if query.get("resourceVersion") == "0" and not query.get("continue"):
        return 0
    return int(query.get("limit") or 0)


def check_watch(sim: SimCluster, query: dict[str, str]) -> None:
    """Refuse a streaming list as kube-apiserver does when WatchList is off or misused."""
    if query.get("sendInitialEvents") is None:
        return
    if not sim.watch_list:
        _refuse("sendInitialEvents", WATCH_LIST_REFUSED)
    if query.get("resourceVersionMatch") != "NotOlderThan":
        _refuse(
            "resourceVersionMatch",
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        )


def _refuse(field: str, message: str) -> None:
    raise StoreError(
        422,
        "Invalid",
        f'ListOptions.meta.k8s.io "" is invalid: {field}: Forbidden: {message}',
        group="meta.k8s.io",
        kind="ListOptions",
        causes=[
            {"reason": "FieldValueForbidden", "message": f"Forbidden: {message}", "field": field}
        ],
    )


# ---------------------------------------------------------------------------- counting


def served_from(record: RequestRecord) -> str:
    """`quorum list page`, `cache list`, `streaming list`, `watch`, or `other`."""
    query = record.query
    if record.method != "GET":
        return "other"
    if record.watch:
        return "streaming list" if query.get("sendInitialEvents") == "true" else "watch"
    if record.path.rstrip("/").split("/")[-1] not in ("nodes", "pods", "daemonsets", "events"):
        return "other"
    rv, limit = query.get("resourceVersion", ""), int(query.get("limit") or 0)
    if not rv or query.get("continue") or (limit and rv != "0"):
        return "quorum list page"
    return "cache list"


def request_counts(records: Iterable[RequestRecord]) -> dict[str, int]:
    return dict(Counter(served_from(r) for r in records))

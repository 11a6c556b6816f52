"""The puller DaemonSet: its labels and settings, loaded and validated from a manifest (or
generated from image references: generating.py), then made unique to one run.

Pure: manifests in, manifests out. Validation happens here, before anything reaches the API, so
that bad input is exit 2 with nothing created.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from image_awaiter import __version__
from image_awaiter.core.errors import UsageError
from image_awaiter.core.placement import Placement
from image_awaiter.core.pods import pod_images as images_of
from image_awaiter.core.pods import pod_spec as as_pod_spec
from image_awaiter.core.references import ImageRef, parse_image
from image_awaiter.core.selectors import LABEL_OPERATORS, Requirement

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "image-awaiter"
RUN_ID_LABEL = "image-awaiter.io/run-id"
GROUP_LABEL = "image-awaiter.io/group"  # tells one run's pull groups (and their pods) apart
CREATED_AT_ANNOTATION = "image-awaiter.io/created-at"
# The gate's long-lived pullers carry this role; `await`'s sweep of stale pullers skips them.
ROLE_LABEL = "image-awaiter.io/role"
GATE_ROLE = "gate"
DEFAULT_NAME = "image-awaiter-puller"
HELPER_PATH = "/usr/local/bin/image-awaiter-noop"  # in the awaiter image
HELPER_MOUNT = "/helper"
DEFAULT_HELPER_IMAGE = f"ghcr.io/image-awaiter/image-awaiter:{__version__}"
DEFAULT_PAUSE_IMAGE = "registry.k8s.io/pause:3.10"

PullMethod = Literal["initContainers", "imageVolumes"]
# `auto` (issue 19, not the default yet): image volumes where the server and every target
# node's runtime support them (core/pullmethod.py), chosen once the nodes are read; until then
# the puller is built with init containers.
AUTO = "auto"

# Large enough for any runtime's container init (che's 20Mi OOM-killed), small enough for quotas.
DEFAULT_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "requests": {"cpu": "1m", "memory": "8Mi"},
    "limits": {"cpu": "100m", "memory": "64Mi"},
}


# Generated pullers land on Linux nodes unless told otherwise (the helper is a Linux binary).
ON_LINUX = Placement(node_selector=(("kubernetes.io/os", "linux"),))


@dataclass(frozen=True, slots=True)
class PullerSettings:
    """How a generated puller pod looks; the chart renders the same pod from its values."""

    method: PullMethod | Literal["auto"] = "initContainers"
    helper_image: str = DEFAULT_HELPER_IMAGE
    pause_image: str = DEFAULT_PAUSE_IMAGE
    # Where it runs (node selector, tolerations, priority class, pull secrets), in the order given.
    placement: Placement = ON_LINUX
    affinity: Mapping[str, Any] | None = None  # rendered as given (the chart's values)
    resources: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: copy.deepcopy(dict(DEFAULT_RESOURCES))
    )


@dataclass(frozen=True, slots=True)
class Owner:
    """The awaiter's own pod, from the downward API, so Kubernetes collects what it leaves."""

    name: str
    uid: str
    namespace: str

    def reference(self) -> dict[str, Any]:
        """The ownerReference to this pod (never blocking its deletion, not a controller)."""
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": self.name,
            "uid": self.uid,
            "blockOwnerDeletion": False,
            "controller": False,
        }


# ---------------------------------------------------------------------------- loading


def _documents(text: str, *, source: str) -> list[Any]:
    """The non-empty YAML (or JSON) documents of TEXT. libyaml's safe loader when PyYAML has it:
    the Helm hook reads its DaemonSet spec at every start, 3 ms against 30 ms for a 6 KB
    spec with the pure-Python loader (and yaml's reader compiles its one pattern only for that
    loader, lean.py). Both build the same objects (one constructor); an invalid text is read
    again by the pure-Python loader, whose wording of the error users have always had."""
    import yaml  # only with a spec file: yaml's import is ~10% of a check's start-up

    libyaml = getattr(yaml, "CSafeLoader", None)
    if libyaml is not None:
        try:
            return [d for d in yaml.load_all(text, Loader=libyaml) if d is not None]
        except yaml.YAMLError:
            pass
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise UsageError(
            f"{source}: not valid YAML or JSON{at}: {problem}",
            hint="fix the YAML at the place named",
        ) from None


def parse_manifest(text: str, *, source: str) -> dict[str, Any]:
    """One DaemonSet manifest from YAML or JSON text, validated. Raises `UsageError`."""
    documents = _documents(text, source=source)
    if len(documents) != 1:
        raise UsageError(
            f"{source}: expected exactly one DaemonSet manifest, found {len(documents)}",
            hint="give one DaemonSet per document",
        )
    manifest = documents[0]
    validate_daemonset(manifest, source=source)
    return dict(manifest)


def parse_daemonsets(text: str, *, source: str) -> list[dict[str, Any]]:
    """Every DaemonSet in YAML or JSON text: one document, several (`---`), or a `List` of them,
    each validated. Raises `UsageError` naming the document."""
    documents = _documents(text, source=source)
    manifests: list[tuple[str, Any]] = []
    for index, document in enumerate(documents, start=1):
        where = source if len(documents) == 1 else f"{source}: document {index}"
        kind = document.get("kind") if isinstance(document, dict) else None
        if (
            isinstance(kind, str)
            and kind.endswith("List")
            and isinstance(document.get("items"), list)
        ):
            manifests += [
                (f"{where}: items[{i}]", item) for i, item in enumerate(document["items"])
            ]
        else:
            manifests.append((where, document))
    if not manifests:
        raise UsageError(
            f"{source}: no DaemonSet manifest found",
            hint="give a DaemonSet manifest (kind: DaemonSet, apiVersion: apps/v1)",
        )
    for where, manifest in manifests:
        validate_daemonset(manifest, source=where)
    return [dict(manifest) for _, manifest in manifests]


def daemonset_base_name(manifest: Mapping[str, Any], *, run_id_chars: int = 8) -> str:
    """The name part `prepare_for_run` keeps before the run id."""
    metadata = manifest.get("metadata") or {}
    base = str(metadata.get("name") or metadata.get("generateName") or DEFAULT_NAME).rstrip("-")
    return base[: 52 - run_id_chars]


def validate_daemonset(manifest: Any, *, source: str) -> None:
    """Raise `UsageError` naming the first problem the API server would reject, or worse."""
    if not isinstance(manifest, dict):
        raise UsageError(
            f"{source}: expected a DaemonSet mapping, found {type(manifest).__name__}",
            hint="give a DaemonSet manifest (kind: DaemonSet, apiVersion: apps/v1)",
        )
    kind, api_version = manifest.get("kind"), manifest.get("apiVersion")
    if kind != "DaemonSet" or api_version != "apps/v1":
        raise UsageError(
            f"{source}: expected kind DaemonSet, apiVersion apps/v1; found kind {kind!r}, "
            f"apiVersion {api_version!r}",
            hint="give a DaemonSet manifest (kind: DaemonSet, apiVersion: apps/v1)",
        )
    spec = _mapping(manifest.get("spec"), f"{source}: spec")
    template = _mapping(spec.get("template"), f"{source}: spec.template")
    pod_spec = _mapping(template.get("spec"), f"{source}: spec.template.spec")
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise UsageError(
            f"{source}: spec.template.spec.containers must list at least one container",
            hint="add a container (e.g. registry.k8s.io/pause)",
        )
    names: set[str] = set()
    for part in ("initContainers", "containers"):
        for index, container in enumerate(pod_spec.get(part) or []):
            where = f"{source}: spec.template.spec.{part}[{index}]"
            container = _mapping(container, where)
            name, image = container.get("name"), container.get("image")
            if not isinstance(name, str) or not name:
                raise UsageError(f"{where}: container needs a name", hint="name every container")
            if name in names:
                raise UsageError(
                    f"{where}: duplicate container name {name!r}",
                    hint="give each container its own name",
                )
            names.add(name)
            if not isinstance(image, str) or not image:
                raise UsageError(
                    f"{where}: container {name!r} needs an image",
                    hint="give every container an image",
                )
    for ref in pod_images(pod_spec):
        parse_image(ref)
    _check_selector(spec, template, source=source)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{where} is missing or not a mapping", hint="fix the DaemonSet manifest")
    return value


def _check_selector(spec: Mapping[str, Any], template: Mapping[str, Any], *, source: str) -> None:
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        raise UsageError(
            f"{source}: spec.selector needs matchLabels or matchExpressions",
            hint="select the pod template's labels",
        )
    labels = (template.get("metadata") or {}).get("labels") or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            raise UsageError(
                f"{source}: spec.selector.matchLabels {key}={value} does not match the pod "
                "template's labels (spec.template.metadata.labels)",
                hint="make the selector match the template's labels",
            )
    for expression in selector.get("matchExpressions") or []:
        key, op = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        ok = op in LABEL_OPERATORS and Requirement(
            key=str(key), operator=op, values=tuple(str(v) for v in values)
        ).matches(None if key not in labels else str(labels[key]))
        if not ok:
            raise UsageError(
                f"{source}: spec.selector.matchExpressions {key} {op} {values} does not match "
                "the pod template's labels",
                hint="make the selector match the template's labels",
            )


def pod_images(pod_spec: Mapping[str, Any]) -> list[str]:
    """Every image the pod pulls, once each (`pods.image_fields`); wrong shapes are usage
    errors."""
    as_pod_spec(pod_spec)
    return images_of(pod_spec)


def awaited_images(pod_spec: Mapping[str, Any]) -> list[str]:
    """The images a puller pod exists for: every image it pulls, except, in image-awaiter's own
    layout (an `install-helper` init container running the helper, a lone `pause` container),
    the helper and pause images, which only serve the pulling (the chart's DaemonSets have that
    layout). An image the pod also pulls for its own sake stays."""
    init = [c for c in pod_spec.get("initContainers") or [] if isinstance(c, dict)]
    containers = [c for c in pod_spec.get("containers") or [] if isinstance(c, dict)]
    helpers = [
        c
        for c in init
        if c.get("name") == "install-helper" and c.get("command", [])[:1] == [HELPER_PATH]
    ]
    volumes = [v for v in pod_spec.get("volumes") or [] if isinstance(v, dict) and "image" in v]
    own_layout = len(containers) == 1 and containers[0].get("name") == "pause"
    if not own_layout or not (helpers or volumes):
        return pod_images(pod_spec)
    serving = {c.get("image") for c in (*helpers, *containers)}
    wanted = {c.get("image") for c in init if c not in helpers}
    wanted |= {v["image"].get("reference") for v in volumes if isinstance(v["image"], dict)}
    return [image for image in pod_images(pod_spec) if image not in serving or image in wanted]


def unique_images(refs: Sequence[str]) -> list[ImageRef]:
    """Parsed references, deduplicated by what they match."""
    by_key: dict[str, ImageRef] = {}
    for ref in refs:
        image = parse_image(ref)
        by_key.setdefault(image.key, image)
    return list(by_key.values())


# ---------------------------------------------------------------------------- per run


@dataclass(frozen=True, slots=True)
class PullerTemplate:
    """One pull group's puller manifest as one run makes it: its namespace, run id, owner and
    group; `for_run` is the body to create (`prepare_for_run`)."""

    manifest: Mapping[str, Any]
    namespace: str
    run_id: str
    owner: Owner | None = None
    group: str | None = None

    def for_run(self, *, created_at: str, skip_nodes: Collection[str] = ()) -> dict[str, Any]:
        return prepare_for_run(
            self.manifest,
            run_id=self.run_id,
            namespace=self.namespace,
            owner=self.owner,
            created_at=created_at,
            skip_nodes=skip_nodes,
            group=self.group,
        )


def prepare_for_run(
    manifest: Mapping[str, Any],
    *,
    run_id: str,
    namespace: str,
    owner: Owner | None,
    created_at: str,
    skip_nodes: Collection[str] = (),
    group: str | None = None,
) -> dict[str, Any]:
    """A copy of `manifest` with a name, labels and selector unique to this run, so that runs
    never see each other's pods, an ownerReference to the awaiter's pod when it has one, and no
    pods on `skip_nodes` (nodes already done). `group` labels the DaemonSet and its pods, and
    joins its selector, so that the DaemonSets of one run's groups never claim each other's pods."""
    daemonset = copy.deepcopy(dict(manifest))
    daemonset.pop("status", None)
    metadata = daemonset.setdefault("metadata", {})
    base = daemonset_base_name(daemonset, run_id_chars=len(run_id))
    for transient in (
        "generateName",
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
        "selfLink",
        "ownerReferences",
    ):
        metadata.pop(transient, None)
    metadata["name"] = f"{base}-{run_id}"
    metadata["namespace"] = namespace
    run_labels = {MANAGED_BY_LABEL: MANAGED_BY, RUN_ID_LABEL: run_id}
    if group is not None:
        run_labels[GROUP_LABEL] = group
    metadata["labels"] = {**(metadata.get("labels") or {}), **run_labels}
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        CREATED_AT_ANNOTATION: created_at,
    }
    if owner is not None and owner.namespace == namespace:
        metadata["ownerReferences"] = [owner.reference()]
    spec = daemonset["spec"]
    selector = spec.setdefault("selector", {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), RUN_ID_LABEL: run_id}
    if group is not None:
        selector["matchLabels"][GROUP_LABEL] = group
    template_meta = spec["template"].setdefault("metadata", {})
    template_meta["labels"] = {**(template_meta.get("labels") or {}), **run_labels}
    if 0 < len(skip_nodes) <= MAX_SKIPPED_NODES:
        _avoid_nodes(spec["template"].setdefault("spec", {}), sorted(skip_nodes))
    return daemonset


# Beyond this many done nodes the DaemonSet skips none: 65,000 names (about 2 MB on clouds whose
# node names are 30 characters) would exceed etcd's 1.5 MiB object limit, and every puller pod
# would carry them. A puller on a node that has the images completes at once.
MAX_SKIPPED_NODES = 1000


def _avoid_nodes(pod_spec: dict[str, Any], names: list[str]) -> None:
    """AND `metadata.name NotIn [name]` for each name into every required node affinity term,
    so that no puller pod is created on nodes that already have every image (joining nodes
    still get one). One requirement per name: kube-apiserver refuses a node field selector
    with several values ("must be only one value when `operator` is 'In' or 'NotIn' for node
    field selector"); the requirements of a term are ANDed."""
    exclusions = [{"key": "metadata.name", "operator": "NotIn", "values": [n]} for n in names]
    node_affinity = pod_spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    for term in terms:
        term["matchFields"] = [*(term.get("matchFields") or []), *(dict(e) for e in exclusions)]
    required["nodeSelectorTerms"] = terms


def run_selector(run_id: str) -> str:
    """The label selector of this run's puller pods."""
    return f"{RUN_ID_LABEL}={run_id}"

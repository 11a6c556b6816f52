"""Eclipse Che's kubernetes-image-puller: the images its DaemonSet pulls and where, from its
ConfigMap (`IMAGES`, `NODE_SELECTOR`, `TOLERATIONS`, `AFFINITY`, `IMAGE_PULL_SECRETS`) or the
operator's `KubernetesImagePuller` custom resource (the same values in `spec.images`,
`spec.nodeSelector`, ... as strings).

Read as che-incubator/kubernetes-image-puller's `cfg/envvars.go` reads them: `IMAGES` is
`name=image;` entries (spaces trimmed, an entry that does not split into exactly two parts is
ignored), placement is JSON, pull secrets are `;`-separated. The puller's own image
(`KIP_IMAGE`, the `copy-sleep` init container) is its helper, not an image users wait for. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from image_awaiter.core.errors import UsageError
from image_awaiter.spec.applications import Derived, Note, PodOf, text_candidates

CR_KIND = "KubernetesImagePuller"
# The ConfigMap keys (its environment variables) and the custom resource's spec fields.
CONFIGMAP_KEYS = {
    "images": "IMAGES",
    "node_selector": "NODE_SELECTOR",
    "tolerations": "TOLERATIONS",
    "affinity": "AFFINITY",
    "pull_secrets": "IMAGE_PULL_SECRETS",
    "daemonset": "DAEMONSET_NAME",
}
RESOURCE_KEYS = {
    "images": "images",
    "node_selector": "nodeSelector",
    "tolerations": "tolerations",
    "affinity": "affinity",
    "pull_secrets": "imagePullSecrets",
    "daemonset": "daemonsetName",
}
_OTHER_KEYS = frozenset({"DAEMONSET_NAME", "CACHING_INTERVAL_HOURS", "KIP_IMAGE", "NAMESPACE"})
DEFAULT_DAEMONSET = "kubernetes-image-puller"


def is_puller_config(values: Mapping[str, str]) -> bool:
    """A ConfigMap with `IMAGES` and at least one other key the image puller reads."""
    return "IMAGES" in values and bool(_OTHER_KEYS & values.keys())


def derive(values: Mapping[str, str], *, keys: Mapping[str, str]) -> Derived:
    """The puller's pod (its images as containers, its placement) and its malformed entries.

    Raises `UsageError` for placement that is not the JSON the puller requires (it exits too).
    """
    images, malformed = parse_images(values.get(keys["images"], ""))
    spec: dict[str, Any] = {
        "containers": [{"name": name, "image": image} for name, image in images.items()]
    }
    for part, field, expected in (
        ("node_selector", "nodeSelector", dict),
        ("tolerations", "tolerations", list),
        ("affinity", "affinity", dict),
    ):
        value = _json(values.get(keys[part], ""), key=keys[part], expected=expected)
        if value:
            spec[field] = value
    secrets = [s.strip() for s in values.get(keys["pull_secrets"], "").split(";") if s.strip()]
    if secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in secrets]
    group = f"{values.get(keys['daemonset']) or DEFAULT_DAEMONSET}-images"
    notes = tuple(
        Note(
            key=keys["images"],
            images=(),
            reason=f"entry {entry!r} is not name=image; the image puller ignores it too",
        )
        for entry in malformed
    )
    used = frozenset({keys["images"], "KIP_IMAGE"})
    pods = (PodOf(group=group, origin="kubernetes-image-puller", pod_spec=spec),) if images else ()
    return Derived(pods=pods, notes=notes, candidates=text_candidates(values, skip=used))


def derive_resource(spec: Mapping[str, Any]) -> Derived:
    """The same from a `KubernetesImagePuller` resource's spec (its fields are strings)."""
    values = {k: v for k, v in spec.items() if isinstance(v, str)}
    return derive(values, keys=RESOURCE_KEYS)


def parse_images(text: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """`name=image;name2=image2;` as {name: image}, and the entries that are not `name=image`."""
    images: dict[str, str] = {}
    malformed: list[str] = []
    for raw in text.strip().split(";"):
        entry = raw.strip()
        if not entry:
            continue
        parts = entry.split("=")
        if len(parts) != 2:
            malformed.append(entry)
            continue
        images[parts[0]] = parts[1]
    return images, tuple(malformed)


def _json(text: str, *, key: str, expected: type) -> Any:
    if not text.strip():
        return expected()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"{key}: not JSON ({error.msg} at column {error.colno})",
            hint="kubernetes-image-puller reads it as JSON and exits on this value",
        ) from None
    if not isinstance(value, expected):
        name = "an object" if expected is dict else "a list"
        raise UsageError(
            f"{key}: must be JSON {name}",
            hint="kubernetes-image-puller reads it as JSON and exits on this value",
        )
    return value

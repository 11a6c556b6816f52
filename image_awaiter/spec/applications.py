"""What an application's own configuration says it will pull, where pod templates do not say it.

Some applications start their user pods from configuration, not from a pod template in the
manifests: JupyterHub's KubeSpawner reads the hub's values (`jupyterhub.py`), che's
kubernetes-image-puller its `IMAGES` (`che.py`). `derive` turns such an object into the pods it
will run (`PodOf`: a pod spec fragment and the pull group it belongs to), notes on what cannot be
derived, and the image-like strings of every other ConfigMap, Secret or custom resource
(`candidates`, which the caller reports when nothing else awaits them). `not_a_workload` says why
a pod template must not be pre-pulled for (a Helm hook, z2jh's own pre-pullers). Pure.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from image_awaiter.core.imagestrings import image_strings, image_words

HOOK_ANNOTATION = "helm.sh/hook"
# z2jh's own pre-puller DaemonSets, by their `component` label.
Z2JH_PULLERS = ("hook-image-puller", "continuous-image-puller")


@dataclass(frozen=True, slots=True)
class PodOf:
    """A pod the application will run, known from its configuration."""

    group: str  # the pull group it belongs to: a profile's slug, `slug-choice`, ...
    origin: str  # what it is, for people: `profile "GPU" (gpu)`
    pod_spec: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Note:
    """Something in an object's configuration that is not awaited: `key` names where."""

    key: str
    images: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Derived:
    pods: tuple[PodOf, ...] = ()
    notes: tuple[Note, ...] = ()  # reported as skipped
    candidates: tuple[Note, ...] = ()  # reported as skipped unless the images are awaited


def derive(document: Mapping[str, Any], *, kind: str, name: str) -> Derived:
    """The pods, notes and candidates of a ConfigMap, a Secret or che's `KubernetesImagePuller`."""
    from image_awaiter.spec import che, jupyterhub

    values = config_values(document, kind=kind)
    if (hub := jupyterhub.hub_values(values)) is not None:
        return jupyterhub.derive(hub, object_name=name, values_key=jupyterhub.VALUES_KEY)
    if che.is_puller_config(values):
        return che.derive(values, keys=che.CONFIGMAP_KEYS)
    if kind == che.CR_KIND:
        spec = document.get("spec")
        return che.derive_resource(spec if isinstance(spec, Mapping) else {})
    return Derived(candidates=text_candidates(values))


def not_a_workload(document: Mapping[str, Any], *, kind: str) -> str | None:
    """Why the pods of this object are not to be pre-pulled for, or None when they are."""
    metadata = document.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    annotations = metadata.get("annotations")
    hook = annotations.get(HOOK_ANNOTATION) if isinstance(annotations, Mapping) else None
    if hook:
        return f"a Helm hook ({hook}): it runs during helm install/upgrade, not as a workload"
    labels = metadata.get("labels")
    component = labels.get("component") if isinstance(labels, Mapping) else None
    if kind == "DaemonSet" and component in Z2JH_PULLERS:
        return (
            f"z2jh's own pre-puller ({component}): the user images are derived from the hub's "
            "configuration instead, each on its own profile's nodes"
        )
    return None


def config_values(document: Mapping[str, Any], *, kind: str) -> dict[str, str]:
    """A ConfigMap's `data`, or a Secret's `data` (base64-decoded) and `stringData`, as text;
    values that are not text are left out."""
    if kind not in ("ConfigMap", "Secret"):
        return {}
    values: dict[str, str] = {}
    data = document.get("data")
    for key, value in data.items() if isinstance(data, Mapping) else ():
        if not isinstance(value, str):
            continue
        if kind == "Secret":
            decoded = _base64_text(value)
            if decoded is None:
                continue
            value = decoded
        values[str(key)] = value
    string_data = document.get("stringData")
    if kind == "Secret" and isinstance(string_data, Mapping):
        values.update({str(k): v for k, v in string_data.items() if isinstance(v, str)})
    return values


def text_candidates(
    values: Mapping[str, str], *, skip: frozenset[str] = frozenset()
) -> tuple[Note, ...]:
    """The image-like words of each value, one `Note` per key."""
    found = []
    for key, text in values.items():
        if key not in skip and (words := image_words(text)):
            found.append(Note(key=key, images=words, reason=_CANDIDATE))
    return tuple(found)


def tree_candidates(tree: Any, *, prefix: str = "") -> tuple[Note, ...]:
    """The image-like strings of a YAML/JSON tree, one `Note` per dotted path."""
    by_path: dict[str, list[str]] = {}
    for path, image in image_strings(tree):
        by_path.setdefault(f"{prefix}{path}", []).append(image)
    return tuple(Note(key=k, images=tuple(v), reason=_CANDIDATE) for k, v in by_path.items())


_CANDIDATE = "holds image references that no workload or application configuration pulls"


def _base64_text(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None

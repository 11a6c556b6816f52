"""JupyterHub as zero-to-jupyterhub deploys it: the user pods KubeSpawner will start, from the
chart's values in the hub Secret (`values.yaml`, base64; z2jh 0.11 and later) or the hub
ConfigMap (plain text; z2jh 0.9 and 0.10).

`spawner_settings` is what z2jh's `jupyterhub_config.py` sets on `c.KubeSpawner` from those
values (image, init and extra containers, the network-tools container that blocks cloud
metadata, node selector, user-pod tolerations, required node affinity with `matchNodePurpose:
require`, pull secrets, `extraPodConfig`, the profile list, then `hub.config.KubeSpawner`);
`derive` makes one pod per profile and per combination of option choices that changes what is
pulled or where (`core.kubespawner`), plus z2jh's `prePuller.extraImages` on the user nodes,
and notes what cannot be known in advance. Pure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from image_awaiter.core import kubespawner
from image_awaiter.spec.applications import Derived, Note, PodOf, tree_candidates

VALUES_KEY = "values.yaml"
DEFAULT_GROUP = "singleuser"  # the user pod's group when there is no profile list
EXTRA_IMAGES_GROUP = "extra-images"  # prePuller.extraImages
PURPOSE_TERM = {
    "matchExpressions": [
        {"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}
    ]
}
# jupyterhub_config.py: KubeSpawner trait <- singleuser.<key>, for the pull settings.
SINGLEUSER_TRAITS = (
    ("node_selector", "nodeSelector"),
    ("node_affinity_required", "extraNodeAffinity.required"),
    ("init_containers", "initContainers"),
    ("extra_containers", "extraContainers"),
    ("extra_pod_config", "extraPodConfig"),
    ("profile_list", "profileList"),
)


def hub_values(values: Mapping[str, str]) -> dict[str, Any] | None:
    """z2jh's values from a hub Secret's or ConfigMap's `values.yaml`, or None when the object
    is not one (no such key, not YAML, or no `hub` and `singleuser` sections)."""
    text = values.get(VALUES_KEY)
    if not text:
        return None
    import yaml

    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        parsed = yaml.load(text, Loader=loader)
    except yaml.YAMLError:
        return None
    if not isinstance(parsed, dict):
        return None
    if not isinstance(parsed.get("singleuser"), dict) or not isinstance(parsed.get("hub"), dict):
        return None
    return parsed


def spawner_settings(values: Mapping[str, Any], *, object_name: str = "hub") -> dict[str, Any]:
    """The KubeSpawner pull settings z2jh's `jupyterhub_config.py` makes of its values."""
    singleuser = _mapping(values.get("singleuser"))
    settings: dict[str, Any] = {}
    for trait, key in SINGLEUSER_TRAITS:
        value = _get(singleuser, key)
        if value is not None:
            settings[trait] = copy.deepcopy(value)
    name = _get(singleuser, "image.name")
    if name:
        tag = _get(singleuser, "image.tag")
        settings["image"] = f"{name}:{tag}" if tag else str(name)
    if secrets := _pull_secrets(values, object_name=object_name):
        settings["image_pull_secrets"] = secrets
    if _get(values, "scheduling.userPods.nodeAffinity.matchNodePurpose") == "require":
        settings["node_affinity_required"] = [
            *(settings.get("node_affinity_required") or []),
            PURPOSE_TERM,
        ]
    tolerations = _user_pod_tolerations(values, extra=singleuser.get("extraTolerations") or [])
    if tolerations:
        settings["tolerations"] = tolerations
    if network_tools := _network_tools(singleuser):
        settings["init_containers"] = [*(settings.get("init_containers") or []), network_tools]
    passthrough = _get(values, "hub.config.KubeSpawner")
    for key, value in _mapping(passthrough).items():
        trait = kubespawner.DEPRECATED.get(key, key)
        if trait in kubespawner.PULL_SETTINGS or trait == "profile_list":
            settings[trait] = copy.deepcopy(value)
    return settings


def derive(values: Mapping[str, Any], *, object_name: str, values_key: str) -> Derived:
    """The user pods of every profile and choice, z2jh's extra images, and what is not known."""
    settings = spawner_settings(values, object_name=object_name)
    profile_list = settings.pop("profile_list", None)
    pods = [
        PodOf(
            group=variant.name or DEFAULT_GROUP,
            origin=_origin(variant),
            pod_spec=kubespawner.pod_spec(variant.settings),
        )
        for variant in kubespawner.variants(settings, profile_list)
    ]
    if extra := _extra_images_pod(values, settings):
        pods.append(extra)
    notes = tuple(
        Note(
            key=f"{values_key}: singleuser.profileList[{u.profile}].profile_options."
            f"{u.option}.unlisted_choice",
            images=(),
            reason="users may type their own value into "
            f"{', '.join(sorted(u.override))}"
            + (f" (matching {u.validation_regex})" if u.validation_regex else "")
            + ": images chosen so cannot be known in advance",
        )
        for u in kubespawner.unlisted_choices(profile_list)
    )
    return Derived(
        pods=tuple(pods),
        notes=notes,
        candidates=tree_candidates(values, prefix=f"{values_key}: "),
    )


def _origin(variant: kubespawner.Variant) -> str:
    if not variant.profile:
        return "the user pod"
    chosen = f" with {', '.join(variant.choices)}" if variant.choices else ""
    return f'profile "{variant.profile}"{chosen}'


def _user_pod_tolerations(values: Mapping[str, Any], *, extra: list[Any]) -> list[Any]:
    """`scheduling.userPods.tolerations` then `singleuser.extraTolerations` (z2jh 1.0 and
    later); charts before 1.0, whose values have no such key, added the two dedicated-node
    tolerations after extraTolerations."""
    user_pods = _mapping(_get(values, "scheduling.userPods"))
    if "tolerations" in user_pods:
        return [*(user_pods["tolerations"] or []), *extra]
    return [
        *extra,
        *(
            {"key": key, "operator": "Equal", "value": "user", "effect": "NoSchedule"}
            for key in ("hub.jupyter.org/dedicated", "hub.jupyter.org_dedicated")
        ),
    ]


def _extra_images_pod(values: Mapping[str, Any], settings: Mapping[str, Any]) -> PodOf | None:
    """z2jh's `prePuller.extraImages`, pulled where its own puller pulls them: the user pods'
    placement with no profile, plus `prePuller.extraTolerations`."""
    extra = _mapping(_get(values, "prePuller.extraImages"))
    images = [
        f"{image['name']}:{image['tag']}" if image.get("tag") else str(image["name"])
        for image in (extra[key] for key in sorted(extra))
        if isinstance(image, Mapping) and image.get("name")
    ]
    if not images:
        return None
    placement = {k: v for k, v in settings.items() if k not in ("image", "extra_containers")}
    placement["init_containers"] = []
    placement["tolerations"] = [
        *(settings.get("tolerations") or []),
        *(_get(values, "prePuller.extraTolerations") or []),
    ]
    spec = kubespawner.pod_spec(placement)
    spec.pop("initContainers", None)
    spec["containers"] = [{"name": f"extra-{i}", "image": img} for i, img in enumerate(images)]
    return PodOf(group=EXTRA_IMAGES_GROUP, origin="prePuller.extraImages", pod_spec=spec)


def _network_tools(singleuser: Mapping[str, Any]) -> dict[str, Any] | None:
    """The init container that blocks cloud metadata with iptables, when the values ask for it
    (`cloudMetadata.blockWithIptables`, or `enabled: false` in charts before 1.0)."""
    cloud = _mapping(singleuser.get("cloudMetadata"))
    block = (not cloud["enabled"]) if "enabled" in cloud else cloud.get("blockWithIptables") is True
    name = _get(singleuser, "networkTools.image.name")
    if not block or not name:
        return None
    tag = _get(singleuser, "networkTools.image.tag")
    return {"name": "block-cloud-metadata", "image": f"{name}:{tag}" if tag else str(name)}


def _pull_secrets(values: Mapping[str, Any], *, object_name: str) -> list[Any]:
    """`imagePullSecret.create` (with automatic injection), `imagePullSecrets`, then
    `singleuser.image.pullSecrets`; the created Secret's name has the hub's name prefix."""
    secrets: list[Any] = []
    if _get(values, "imagePullSecret.automaticReferenceInjection") and _get(
        values, "imagePullSecret.create"
    ):
        prefix = object_name[: -len("hub")] if object_name.endswith("hub") else ""
        secrets.append(f"{prefix}image-pull-secret")
    secrets += list(values.get("imagePullSecrets") or [])
    secrets += list(_get(values, "singleuser.image.pullSecrets") or [])
    return secrets


def _get(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, Mapping):
            return None
        tree = tree.get(part)
    return tree


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}

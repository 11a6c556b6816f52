"""KubeSpawner's rules for a user pod: how a profile and its options override the spawner's
settings, and the parts of the pod they decide that matter for pulling (images and placement).

Follows jupyterhub/kubespawner 7.x: `spawner.py` (`_get_initialized_profile_list`: a dict
profile_list is its values sorted by key, a missing `slug` is `slugify(display_name)`, the first
choice of an option without a default is its default, the first profile without a default is
the default; `_load_profile`: the profile's `kubespawner_override`, then each option's chosen
`kubespawner_override` in the order the options are defined; `_apply_overrides`: a dict value is
merged recursively into a dict setting, `None` removing a key, anything else replaces) and
`objects.py` (`make_pod`: `node_affinity_required` are the required terms, `extra_pod_config`
replaces whole pod spec fields last). A setting is a KubeSpawner trait name (`image`,
`node_selector`, ...) and its value, as plain data. Pure: no I/O.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The settings that decide what a user pod pulls and where it may run.
PULL_SETTINGS = frozenset(
    {
        "image",
        "init_containers",
        "extra_containers",
        "extra_container_config",
        "node_selector",
        "tolerations",
        "node_affinity_required",
        "image_pull_secrets",
        "extra_pod_config",
    }
)
# KubeSpawner's Dict traits among them: an override merges into these instead of replacing.
DICT_SETTINGS = frozenset({"node_selector", "extra_container_config", "extra_pod_config"})
DEPRECATED = {"image_spec": "image"}  # KubeSpawner's `_deprecated_traits`
MAX_COMBINATIONS = 64  # option choices combined per profile before falling back to one at a time
# Keys whose values are label maps, never converted from snake_case.
_LABEL_MAPS = frozenset({"nodeSelector", "node_selector", "matchLabels", "labels", "annotations"})

Settings = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Variant:
    """One kind of user pod: a profile with one choice per option, and its merged settings."""

    name: str  # the profile's slug, then the non-default choices: `gpu`, `datascience-r`
    profile: str  # the profile's display name, "" without a profile list
    choices: tuple[str, ...]  # `option=choice` of the non-default choices
    settings: Settings


@dataclass(frozen=True, slots=True)
class Choice:
    """One choice of a profile option."""

    option: str
    name: str
    default: bool
    override: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Unlisted:
    """An option whose `unlisted_choice` lets users type a value into pull settings: what they
    will type cannot be known in advance."""

    profile: str  # slug
    option: str
    override: Mapping[str, Any]
    validation_regex: str | None


def slugify(text: str) -> str:
    """The slug KubeSpawner derives from a profile's display name (python-slugify's defaults)."""
    from slugify import slugify as python_slugify

    return str(python_slugify(text))


def initialized_profiles(profile_list: Any) -> list[dict[str, Any]]:
    """A copy of `profile_list` (a list, or a dict whose values are taken sorted by key) with
    slugs, a default profile and a default choice for each option, as KubeSpawner prepares it."""
    if isinstance(profile_list, Mapping):
        profile_list = [profile_list[key] for key in sorted(profile_list)]
    profiles = [copy.deepcopy(dict(p)) for p in profile_list or [] if isinstance(p, Mapping)]
    for profile in profiles:
        if "slug" not in profile:
            profile["slug"] = slugify(str(profile.get("display_name", "")))
        for option in (profile.get("profile_options") or {}).values():
            choices = option.get("choices") if isinstance(option, dict) else None
            if choices and not any(c.get("default") for c in choices.values()):
                next(iter(choices.values()))["default"] = True
    if profiles and not any(p.get("default") for p in profiles):
        profiles[0]["default"] = True
    return profiles


def recursive_update(target: dict[str, Any], new: Mapping[str, Any]) -> None:
    """kubespawner's `recursive_update`: nested dicts merged, `None` removes the key."""
    for key, value in new.items():
        if isinstance(value, Mapping):
            if not isinstance(target.get(key), dict):
                target[key] = {}
            recursive_update(target[key], value)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(value)


def apply_overrides(settings: Mapping[str, Any], override: Mapping[str, Any]) -> Settings:
    """`settings` with `override` applied as KubeSpawner's `_apply_overrides` does."""
    merged = copy.deepcopy(dict(settings))
    for raw_key, value in override.items():
        key = DEPRECATED.get(raw_key, raw_key)
        current = merged.get(key, {} if key in DICT_SETTINGS else None)
        if isinstance(value, Mapping) and isinstance(current, dict):
            recursive_update(current, value)
            merged[key] = current
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def variants(base: Mapping[str, Any], profile_list: Any) -> tuple[Variant, ...]:
    """Every distinct user pod the settings allow: one per profile, and one per combination of
    option choices that changes what is pulled or where (other choices collapse into it)."""
    profiles = initialized_profiles(profile_list)
    if not profiles:
        return (Variant(name="", profile="", choices=(), settings=dict(base)),)
    found: list[Variant] = []
    for profile in profiles:
        found += _profile_variants(base, profile)
    return tuple(found)


def unlisted_choices(profile_list: Any) -> tuple[Unlisted, ...]:
    """The options whose free-form `unlisted_choice` overrides a pull setting."""
    found = []
    for profile in initialized_profiles(profile_list):
        for name, option in (profile.get("profile_options") or {}).items():
            unlisted = option.get("unlisted_choice") or {}
            override = unlisted.get("kubespawner_override") or {}
            if unlisted.get("enabled") and _pull_part(override):
                regex = unlisted.get("validation_regex")
                found.append(
                    Unlisted(
                        profile=str(profile["slug"]),
                        option=str(name),
                        override=override,
                        validation_regex=regex if isinstance(regex, str) else None,
                    )
                )
    return tuple(found)


def _profile_variants(base: Mapping[str, Any], profile: Mapping[str, Any]) -> list[Variant]:
    settings = apply_overrides(base, profile.get("kubespawner_override") or {})
    options = [
        _distinct_choices(str(name), option)
        for name, option in (profile.get("profile_options") or {}).items()
        if isinstance(option, Mapping) and option.get("choices")
    ]
    combinations: Iterator[tuple[Choice, ...]]
    if math.prod(len(option) for option in options) <= MAX_COMBINATIONS:
        combinations = itertools.product(*options)
    else:  # one option changed at a time, every other at its default
        combinations = _one_at_a_time(options)
    found: list[Variant] = []
    seen: set[str] = set()
    for combination in combinations:
        merged = settings
        for choice in combination:
            merged = apply_overrides(merged, choice.override)
        key = json.dumps(_pull_part(merged), sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        changed = [choice for choice in combination if not choice.default]
        found.append(
            Variant(
                name="-".join([str(profile["slug"]), *(choice.name for choice in changed)]),
                profile=str(profile.get("display_name", profile["slug"])),
                choices=tuple(f"{choice.option}={choice.name}" for choice in changed),
                settings=merged,
            )
        )
    return found


def _distinct_choices(name: str, option: Mapping[str, Any]) -> list[Choice]:
    """The option's choices, default first; a choice whose pull settings equal an earlier
    one's is dropped (it gives the same pod)."""
    choices = [
        Choice(
            option=name,
            name=str(key),
            default=bool(choice.get("default")),
            override=choice.get("kubespawner_override") or {},
        )
        for key, choice in option["choices"].items()
        if isinstance(choice, Mapping)
    ]
    choices.sort(key=lambda choice: not choice.default)
    distinct: dict[str, Choice] = {}
    for choice in choices:
        distinct.setdefault(
            json.dumps(_pull_part(choice.override), sort_keys=True, default=str), choice
        )
    return list(distinct.values())


def _one_at_a_time(options: Sequence[Sequence[Choice]]) -> Iterator[tuple[Choice, ...]]:
    defaults = tuple(option[0] for option in options)
    yield defaults
    for index, option in enumerate(options):
        for choice in option[1:]:
            yield (*defaults[:index], choice, *defaults[index + 1 :])


def _pull_part(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {
        DEPRECATED.get(k, k): v
        for k, v in settings.items()
        if DEPRECATED.get(k, k) in PULL_SETTINGS
    }


# ---------------------------------------------------------------------------- the pod


def pod_spec(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The pod spec fields KubeSpawner's `make_pod` builds from the pull settings (camelCase):
    containers (the notebook's `image`, then `extra_containers`), `initContainers`,
    `nodeSelector`, `tolerations`, required node affinity, `imagePullSecrets`; then
    `extra_pod_config`, replacing whole fields."""
    notebook: dict[str, Any] = {"name": "notebook"}
    image = settings.get("image")
    extra_config = settings.get("extra_container_config") or {}
    if isinstance(extra_config, Mapping) and extra_config.get("image"):
        image = extra_config["image"]
    if image:
        notebook["image"] = image
    spec: dict[str, Any] = {
        "containers": [notebook, *_models(settings.get("extra_containers"))],
    }
    if init := _models(settings.get("init_containers")):
        spec["initContainers"] = init
    if selector := settings.get("node_selector"):
        spec["nodeSelector"] = dict(selector)
    if tolerations := _models(settings.get("tolerations")):
        spec["tolerations"] = tolerations
    if terms := _models(settings.get("node_affinity_required")):
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
            }
        }
    if secrets := settings.get("image_pull_secrets"):
        spec["imagePullSecrets"] = [
            {"name": s} if isinstance(s, str) else camel_keys(s) for s in secrets
        ]
    extra = settings.get("extra_pod_config") or {}
    if isinstance(extra, Mapping):
        for key, value in camel_keys(extra).items():
            spec[key] = value
    return spec


def _models(value: Any) -> list[Any]:
    """A list of Kubernetes model dicts, in camelCase whichever case they were written in."""
    if not isinstance(value, list):
        return []
    return [camel_keys(item) for item in value]


def camel_keys(value: Any) -> Any:
    """Model keys from snake_case to camelCase, as the client's models accept both; label maps
    (`nodeSelector`, `matchLabels`, ...) keep their keys."""
    if isinstance(value, Mapping):
        converted: dict[str, Any] = {}
        for key, item in value.items():
            camel = _camel(key) if isinstance(key, str) else key
            converted[camel] = item if key in _LABEL_MAPS else camel_keys(item)
        return converted
    if isinstance(value, list):
        return [camel_keys(item) for item in value]
    return value


def _camel(key: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)

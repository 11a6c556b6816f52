"""KubeSpawner's profile rules as image-awaiter follows them (core/kubespawner.py): literal
tables checked against kubespawner 7.x `spawner.py` (`_get_initialized_profile_list`,
`_load_profile`, `_apply_overrides`, `recursive_update`) and `objects.py` (`make_pod`)."""

from __future__ import annotations

from typing import Any

import pytest

from image_awaiter.core.kubespawner import (
    MAX_COMBINATIONS,
    apply_overrides,
    initialized_profiles,
    pod_spec,
    slugify,
    unlisted_choices,
    variants,
)

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
USER_TOLERATION = {"key": "hub.jupyter.org/dedicated", "value": "user", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("display_name", "slug"),
    [
        ("CPU small (default)", "cpu-small-default"),
        ("GPU: PyTorch with CUDA", "gpu-pytorch-with-cuda"),
        ("Données & R", "donnees-r"),  # transliterated, as python-slugify does
        ("  R  ", "r"),
    ],
)
def test_a_profile_without_a_slug_gets_kubespawners_slug_of_its_display_name(
    display_name: str, slug: str
) -> None:
    assert slugify(display_name) == slug
    assert initialized_profiles([{"display_name": display_name}])[0]["slug"] == slug


def test_a_dict_profile_list_is_taken_in_key_order_and_the_first_profile_is_the_default() -> None:
    profiles = initialized_profiles(
        {"b": {"display_name": "B"}, "a": {"display_name": "A", "slug": "own"}}
    )
    assert [(p["slug"], p.get("default")) for p in profiles] == [("own", True), ("b", None)]


def test_an_option_without_a_default_choice_defaults_to_its_first() -> None:
    [profile] = initialized_profiles(
        [{"display_name": "P", "profile_options": {"o": {"choices": {"x": {}, "y": {}}}}}]
    )
    choices = profile["profile_options"]["o"]["choices"]
    assert (choices["x"].get("default"), choices["y"].get("default")) == (True, None)


@pytest.mark.parametrize(
    ("settings", "override", "merged"),
    [
        # A dict setting is merged recursively; None removes a key.
        (
            {"node_selector": {"pool": "user", "zone": "a"}},
            {"node_selector": {"gpu": "true", "zone": None}},
            {"node_selector": {"pool": "user", "gpu": "true"}},
        ),
        # A dict setting not set yet is KubeSpawner's empty default, merged into.
        ({}, {"node_selector": {"gpu": "true", "x": None}}, {"node_selector": {"gpu": "true"}}),
        # A list replaces: a profile's tolerations drop the user-pod ones.
        (
            {"tolerations": [USER_TOLERATION]},
            {"tolerations": [GPU_TOLERATION]},
            {"tolerations": [GPU_TOLERATION]},
        ),
        ({"image": "a:1"}, {"image": "b:2"}, {"image": "b:2"}),
        # image_spec is KubeSpawner's deprecated name of image.
        ({"image": "a:1"}, {"image_spec": "c:3"}, {"image": "c:3"}),
        (
            {"extra_pod_config": {"runtimeClassName": "x", "dnsPolicy": "None"}},
            {"extra_pod_config": {"runtimeClassName": "nvidia"}},
            {"extra_pod_config": {"runtimeClassName": "nvidia", "dnsPolicy": "None"}},
        ),
    ],
)
def test_overrides_merge_dicts_and_replace_everything_else(
    settings: dict[str, Any], override: dict[str, Any], merged: dict[str, Any]
) -> None:
    assert apply_overrides(settings, override) == merged
    assert apply_overrides(settings, {}) == settings  # the input is not changed


def _profile(slug: str, override: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    profile: dict[str, Any] = {"display_name": slug.upper(), "slug": slug}
    if override:
        profile["kubespawner_override"] = override
    if options:
        profile["profile_options"] = options
    return profile


def _option(**choices: dict[str, Any]) -> dict[str, Any]:
    return {"choices": {k: {"kubespawner_override": v} for k, v in choices.items()}}


def _summary(profile_list: Any, base: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    return [
        (v.name, v.settings.get("image"))
        for v in variants(base or {"image": "base:1"}, profile_list)
    ]


@pytest.mark.parametrize(
    ("profile_list", "expected"),
    [
        ([], [("", "base:1")]),
        (
            [_profile("cpu"), _profile("gpu", {"image": "cuda:1"})],
            [("cpu", "base:1"), ("gpu", "cuda:1")],
        ),
        # Each choice that changes the image is a variant named slug-choice.
        (
            [_profile("ds", image=_option(scipy={"image": "scipy:1"}, r={"image": "r:1"}))],
            [("ds", "scipy:1"), ("ds-r", "r:1")],
        ),
        # Choices that change neither image nor placement collapse into the default.
        (
            [_profile("ds", mem=_option(small={"mem_limit": "1G"}, large={"mem_limit": "8G"}))],
            [("ds", "base:1")],
        ),
        # A choice equal to the default pod gives no variant of its own.
        (
            [_profile("ds", {"image": "x:1"}, image=_option(a={}, b={"image": "x:1"}))],
            [("ds", "x:1")],
        ),
        # Two options that matter are combined: the image on the GPU pool too.
        (
            [
                _profile(
                    "ml",
                    image=_option(torch={"image": "torch:1"}, tf={"image": "tf:1"}),
                    gpu=_option(
                        none={}, a100={"node_selector": {"gpu": "a100"}, "tolerations": []}
                    ),
                )
            ],
            [("ml", "torch:1"), ("ml-a100", "torch:1"), ("ml-tf", "tf:1"), ("ml-tf-a100", "tf:1")],
        ),
    ],
)
def test_variants_are_one_per_profile_and_per_choice_that_changes_a_pull(
    profile_list: Any, expected: list[tuple[str, Any]]
) -> None:
    assert _summary(profile_list) == expected


def test_later_options_override_earlier_ones_as_kubespawner_applies_them_in_order() -> None:
    profile = _profile(
        "p",
        {"image": "profile:1"},
        first=_option(a={"image": "first:1"}),
        second=_option(b={"image": "second:1"}),
    )
    assert _summary([profile]) == [("p", "second:1")]


def test_too_many_combinations_fall_back_to_one_changed_option_at_a_time() -> None:
    options = {
        f"o{n}": _option(**{f"c{n}{k}": {"node_selector": {f"o{n}": str(k)}} for k in range(3)})
        for n in range(4)
    }
    assert MAX_COMBINATIONS < 3**4
    names = [name for name, _ in _summary([_profile("big", **options)])]
    assert names[0] == "big" and len(names) == 1 + 4 * 2
    assert "big-c01" in names and "big-c32" in names


def test_an_unlisted_choice_over_the_image_is_reported_with_its_regex() -> None:
    option = {
        "choices": {"a": {"kubespawner_override": {"image": "a:1"}}},
        "unlisted_choice": {
            "enabled": True,
            "validation_regex": "^quay.io/.+$",
            "kubespawner_override": {"image": "{value}"},
        },
    }
    ignored = {
        "unlisted_choice": {"enabled": True, "kubespawner_override": {"mem_limit": "{value}"}}
    }
    [unlisted] = unlisted_choices([_profile("p", image=option, mem=ignored)])
    assert (unlisted.profile, unlisted.option, unlisted.validation_regex) == (
        "p",
        "image",
        "^quay.io/.+$",
    )


def test_the_pod_spec_is_built_as_make_pod_builds_it() -> None:
    spec = pod_spec(
        {
            "image": "nb:1",
            "init_containers": [{"name": "init", "image": "init:1"}],
            "extra_containers": [{"name": "side", "image": "side:1"}],
            "node_selector": {"node_pool": "gpu"},  # a label key: never camelCased
            "tolerations": [{"key": "k", "operator": "Exists", "toleration_seconds": 5}],
            "node_affinity_required": [
                {"match_expressions": [{"key": "zone", "operator": "In", "values": ["a_b"]}]}
            ],
            "image_pull_secrets": ["regcred", {"name": "other"}],
        }
    )
    assert spec == {
        "containers": [{"name": "notebook", "image": "nb:1"}, {"name": "side", "image": "side:1"}],
        "initContainers": [{"name": "init", "image": "init:1"}],
        "nodeSelector": {"node_pool": "gpu"},
        "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 5}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a_b"]}]}
                    ]
                }
            }
        },
        "imagePullSecrets": [{"name": "regcred"}, {"name": "other"}],
    }


def test_extra_pod_config_replaces_whole_fields_last_and_extra_container_config_the_image() -> None:
    spec = pod_spec(
        {
            "image": "nb:1",
            "tolerations": [USER_TOLERATION],
            "node_selector": {"a": "1"},
            "extra_container_config": {"image": "override:2"},
            "extra_pod_config": {"tolerations": [GPU_TOLERATION], "node_selector": {"b": "2"}},
        }
    )
    assert spec["containers"] == [{"name": "notebook", "image": "override:2"}]
    assert (spec["tolerations"], spec["nodeSelector"]) == ([GPU_TOLERATION], {"b": "2"})

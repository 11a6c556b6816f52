"""Pull groups: workloads with the same placement share a puller; narrowing by --image."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from image_awaiter.core.errors import ExitCode, UsageError
from image_awaiter.core.references import parse_image
from image_awaiter.spec.groups import (
    MAX_NAME,
    PullGroup,
    apply_placement,
    group_workloads,
    groups_of,
    narrow,
    placement_hash,
)
from image_awaiter.spec.manifests import Workload, parse_manifests, read_manifests

FIXTURES = Path(__file__).parent.parent / "fixtures" / "manifests" / "jupyterhub"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def pod(name: str, images: list[str], spec: str = "") -> str:
    containers = ", ".join(f'{{name: c{i}, image: "{image}"}}' for i, image in enumerate(images))
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    return (
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n"
        f"  containers: [{containers}]\n{body}\n"
    )


def workloads(*documents: str) -> tuple[Workload, ...]:
    return parse_manifests("---\n".join(documents), source="app.yaml").workloads


def fixture_groups() -> tuple[PullGroup, ...]:
    return group_workloads(read_manifests([str(FIXTURES)]).workloads)


GPU = """
nodeSelector: {nvidia.com/gpu.present: "true", pool: gpu}
tolerations:
  - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
  - {key: dedicated, operator: Equal, value: user, effect: NoSchedule}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: zone, operator: In, values: [b, a]}
            - {key: kubernetes.io/arch, operator: In, values: [amd64]}
"""

# The same placement, every list and mapping written in another order, operator left default.
GPU_REORDERED = """
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
            - {values: [amd64], operator: In, key: kubernetes.io/arch}
            - {key: zone, operator: In, values: [a, b, a]}
tolerations:
  - {key: dedicated, value: user, effect: NoSchedule}
  - {effect: NoSchedule, operator: Exists, key: nvidia.com/gpu}
nodeSelector: {pool: gpu, nvidia.com/gpu.present: "true"}
"""


def test_workloads_with_the_same_placement_share_a_group_whatever_the_key_order() -> None:
    groups = group_workloads(
        workloads(
            pod("cuda", ["cuda:12"], GPU),
            pod("torch", ["torch:2", "cuda:12"], GPU_REORDERED),
        )
    )
    [group] = groups
    assert [w.name for w in group.workloads] == ["cuda", "torch"]
    assert [i.original for i in group.images] == ["cuda:12", "torch:2"]
    assert group.name == "cuda-torch"


@pytest.mark.parametrize(
    "other",
    [
        "tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoExecute}]",
        "tolerations: [{key: nvidia.com/gpu, operator: Exists}]",
        'nodeSelector: {nvidia.com/gpu.present: "false"}',
        "imagePullSecrets: [{name: other}]",
        "runtimeClassName: gvisor",
        "priorityClassName: low",
    ],
)
def test_a_different_toleration_or_placement_field_splits_the_group(other: str) -> None:
    base = "tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]"
    groups = group_workloads(workloads(pod("a", ["a:1"], base), pod("b", ["b:1"], other)))
    assert [[w.name for w in g.workloads] for g in groups] == [["a"], ["b"]]
    assert [g.name for g in groups] == ["a", "b"]


def test_toleration_seconds_do_not_split_a_group() -> None:
    groups = group_workloads(
        workloads(
            pod("a", ["a:1"], "tolerations: [{key: k, operator: Exists, effect: NoExecute}]"),
            pod(
                "b",
                ["b:1"],
                "tolerations: [{key: k, operator: Exists, effect: NoExecute, "
                "tolerationSeconds: 60}]",
            ),
        )
    )
    assert len(groups) == 1


def test_images_are_de_duplicated_by_reference_keeping_the_first_spelling() -> None:
    [group] = group_workloads(
        workloads(pod("a", ["busybox", "docker.io/library/busybox:latest", "quay.io/x/y:1"]))
    )
    assert [(i.original, i.key) for i in group.images] == [
        ("busybox", "docker.io/library/busybox:latest"),
        ("quay.io/x/y:1", "quay.io/x/y:1"),
    ]


# ---------------------------------------------------------------------------- names


def test_the_jupyterhub_rendering_groups_by_where_each_workload_can_land() -> None:
    groups = fixture_groups()
    summary = {
        g.name: ([w.name for w in g.workloads], [i.original for i in g.images]) for g in groups
    }
    core = next(g for g in groups if g.name.startswith("g-"))
    assert len(core.workloads) == 4
    assert summary == {
        core.name: (
            ["idle-culler", "hub", "proxy", "user-scheduler"],
            [
                "quay.io/jupyterhub/k8s-hub:4.1.0",
                "quay.io/jupyterhub/configurable-http-proxy:4.6.3",
                "registry.k8s.io/kube-scheduler:v1.30.8",
            ],
        ),
        "singleuser": (  # the user pod, from the hub Secret's values
            ["hub"],
            [
                "quay.io/jupyterhub/k8s-network-tools:4.1.0",
                "quay.io/jupyterhub/k8s-singleuser-sample:4.1.0",
            ],
        ),
        "user-placeholder": (["user-placeholder"], ["registry.k8s.io/pause:3.10"]),
        "gpu-placeholder": (
            ["gpu-placeholder"],
            ["quay.io/jupyter/pytorch-notebook:cuda12-2025-01-20", "registry.k8s.io/pause:3.10"],
        ),
        "arm-tools": (["arm-tools"], ["ghcr.io/example-org/arm-tools:1.2.0"]),
    }
    gpu = next(g for g in groups if g.name == "gpu-placeholder")
    assert gpu.pod_spec_fragment() == {
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [
            {
                "key": "hub.jupyter.org/dedicated",
                "operator": "Equal",
                "value": "user",
                "effect": "NoSchedule",
            },
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        ],
        "imagePullSecrets": [{"name": "jhub-image-pull-secret"}],
    }
    arm = next(g for g in groups if g.name == "arm-tools")
    assert arm.placement.arch == ("arm64",)


def test_group_names_are_the_same_in_another_process() -> None:
    # Python salts str hashes per process; names must not depend on that.
    code = (
        "from image_awaiter.spec.groups import group_workloads;"
        "from image_awaiter.spec.manifests import read_manifests;"
        f"print(*[g.name for g in group_workloads(read_manifests([{str(FIXTURES)!r}]).workloads)])"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    )
    assert other.stdout.split() == [g.name for g in fixture_groups()]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["hub"], "hub"),
        (["Hub_Server.v2"], "hub-server-v2"),
        (["hub", "proxy"], "hub-proxy"),
        (["hub", "hub"], "hub"),
        (["a" * 60], "a" * MAX_NAME),
        (["a" * 30, "b" * 30], "a" * 19 + "-" + "b" * 19),
    ],
)
def test_groups_of_one_or_two_workloads_are_named_after_them(
    names: list[str], expected: str
) -> None:
    [group] = group_workloads(workloads(*(pod(n.lower(), ["x:1"]) for n in names)))
    assert group.name == expected.lower()
    assert DNS_LABEL.match(group.name) and len(group.name) <= MAX_NAME


def test_groups_of_three_workloads_are_named_by_a_hash_of_their_placement() -> None:
    [group] = group_workloads(workloads(*(pod(n, ["x:1"], GPU) for n in ("a", "b", "c"))))
    assert group.name == f"g-{placement_hash(group.placement)}"
    assert re.fullmatch(r"g-[0-9a-f]{10}", group.name)


def test_two_groups_from_same_named_workloads_get_distinct_names() -> None:
    groups = group_workloads(
        workloads(
            pod("web", ["a:1"]).replace("{name: web}", "{name: web, namespace: one}"),
            pod("web", ["a:1"], GPU).replace("{name: web}", "{name: web, namespace: two}"),
        )
    )
    names = [g.name for g in groups]
    assert len(set(names)) == 2
    assert all(n.startswith("web-") and DNS_LABEL.match(n) for n in names)


# ---------------------------------------------------------------------------- narrowing


def test_narrowing_keeps_only_requested_images_and_drops_emptied_groups() -> None:
    groups = fixture_groups()
    narrowed = narrow(groups, ["registry.k8s.io/pause:3.10", "ghcr.io/example-org/arm-tools:1.2.0"])
    assert [(g.name, [i.original for i in g.images]) for g in narrowed] == [
        ("user-placeholder", ["registry.k8s.io/pause:3.10"]),
        ("gpu-placeholder", ["registry.k8s.io/pause:3.10"]),
        ("arm-tools", ["ghcr.io/example-org/arm-tools:1.2.0"]),
    ]


def test_narrowing_keeps_only_the_workloads_that_use_a_requested_image() -> None:
    groups = group_workloads(workloads(pod("a", ["a:1"]), pod("b", ["b:1"]), pod("c", ["a:1"])))
    [narrowed] = narrow(groups, ["a:1"])
    assert ([w.name for w in narrowed.workloads], narrowed.name) == (["a", "c"], groups[0].name)


def test_narrowing_matches_requested_images_after_normalisation() -> None:
    [group] = group_workloads(workloads(pod("a", ["docker.io/library/busybox:latest", "c:1"])))
    [narrowed] = narrow([group], ["busybox"])
    assert [i.original for i in narrowed.images] == ["docker.io/library/busybox:latest"]


def test_narrowing_to_an_image_in_no_manifest_lists_what_was_found() -> None:
    groups = group_workloads(workloads(pod("a", ["b:1", "a:1"]), pod("z", ["c:1"], GPU)))
    with pytest.raises(UsageError) as caught:
        narrow(groups, ["a:1", "nginx:1.27", "redis"])
    assert caught.value.exit_code is ExitCode.USAGE
    assert caught.value.message == (
        "--image nginx:1.27, redis: not in any manifest; found a:1, b:1, c:1"
    )


def test_narrowing_an_image_not_found_shortens_a_long_list() -> None:
    groups = group_workloads(workloads(pod("a", [f"img{n:02}:1" for n in range(25)])))
    with pytest.raises(UsageError) as caught:
        narrow(groups, ["missing:1"])
    assert caught.value.message.endswith("img19:1 and 5 more")


def test_narrowing_to_an_invalid_reference_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="invalid image reference 'Bad'"):
        narrow(fixture_groups(), ["Bad"])


def test_an_image_in_two_groups_is_awaited_in_both() -> None:
    groups = fixture_groups()
    pause = parse_image("registry.k8s.io/pause:3.10").key
    assert [g.name for g in groups_of(groups, pause)] == [
        "user-placeholder",
        "gpu-placeholder",
    ]
    assert groups_of(groups, parse_image("nowhere:1").key) == ()


# ---------------------------------------------------------------------------- merging


GPU_PLACEMENT = group_workloads(workloads(pod("gpu", ["cuda:12"], GPU)))[0].placement


def test_a_group_placement_merges_into_the_generated_puller_pod_spec() -> None:
    puller = {
        "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}
        ],
        "imagePullSecrets": [{"name": "puller-secret"}],
        "priorityClassName": "puller",
    }
    merged = apply_placement(puller, GPU_PLACEMENT, group="gpu")
    assert merged == {
        "containers": puller["containers"],
        "nodeSelector": {
            "kubernetes.io/os": "linux",
            "nvidia.com/gpu.present": "true",
            "pool": "gpu",
        },
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/arch",
                                    "operator": "In",
                                    "values": ["amd64"],
                                },
                                {"key": "zone", "operator": "In", "values": ["a", "b"]},
                            ]
                        }
                    ]
                }
            }
        },
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        ],
        "imagePullSecrets": [{"name": "puller-secret"}],
        "priorityClassName": "puller",
    }
    assert puller["nodeSelector"] == {"kubernetes.io/os": "linux"}  # the input is not changed


def test_required_terms_from_both_sides_must_both_hold() -> None:
    either_zone = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": ["n9"]}
                            ]
                        },
                    ]
                }
            },
            "podAntiAffinity": {"kept": True},
        }
    }
    [arm] = group_workloads(
        workloads(
            pod(
                "arm",
                ["a:1"],
                """
                affinity:
                  nodeAffinity:
                    requiredDuringSchedulingIgnoredDuringExecution:
                      nodeSelectorTerms:
                        - matchExpressions:
                            - {key: kubernetes.io/arch, operator: In, values: [arm64]}
                        - matchExpressions: [{key: pool, operator: Exists}]
                """,
            )
        )
    )
    merged = apply_placement(either_zone, arm.placement, group=arm.name)
    terms = merged["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    arch = {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}
    pool = {"key": "pool", "operator": "Exists"}
    zone = {"key": "zone", "operator": "In", "values": ["a"]}
    name = {"key": "metadata.name", "operator": "In", "values": ["n9"]}
    assert terms == [
        {"matchExpressions": [zone, arch]},
        {"matchExpressions": [zone, pool]},
        {"matchExpressions": [arch], "matchFields": [name]},
        {"matchExpressions": [pool], "matchFields": [name]},
    ]
    assert merged["affinity"]["podAntiAffinity"] == {"kept": True}


def test_the_group_runtime_and_priority_class_win_and_nothing_is_added_when_empty() -> None:
    [group] = group_workloads(
        workloads(pod("rt", ["a:1"], "runtimeClassName: nvidia\npriorityClassName: high"))
    )
    merged = apply_placement({"priorityClassName": "puller"}, group.placement, group=group.name)
    assert merged == {"priorityClassName": "high", "runtimeClassName": "nvidia"}
    [plain] = group_workloads(workloads(pod("plain", ["a:1"])))
    assert apply_placement({"containers": []}, plain.placement, group="plain") == {"containers": []}


def test_a_node_selector_contradicting_the_puller_settings_is_a_usage_error() -> None:
    [windows] = group_workloads(
        workloads(pod("win", ["a:1"], "nodeSelector: {kubernetes.io/os: windows}"))
    )
    with pytest.raises(UsageError) as caught:
        apply_placement(
            {"nodeSelector": {"kubernetes.io/os": "linux"}}, windows.placement, group="win"
        )
    assert caught.value.exit_code is ExitCode.USAGE
    assert caught.value.message == (
        "group win: nodeSelector kubernetes.io/os=windows contradicts kubernetes.io/os=linux of "
        "the puller settings, so no node could match"
    )

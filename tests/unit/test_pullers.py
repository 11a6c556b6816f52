"""The puller DaemonSet: manifest validation, generated pods, per-run preparation."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

from image_awaiter.core.errors import UsageError
from image_awaiter.core.placement import Placement, Toleration
from image_awaiter.core.references import parse_image
from image_awaiter.spec.generating import generate_daemonset, puller_pod_spec, with_pull_method
from image_awaiter.spec.pullers import (
    MANAGED_BY_LABEL,
    RUN_ID_LABEL,
    Owner,
    PullerSettings,
    awaited_images,
    parse_daemonsets,
    parse_manifest,
    pod_images,
    prepare_for_run,
    validate_daemonset,
)

GOOD: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "p"},
    "spec": {
        "selector": {"matchLabels": {"app": "p"}},
        "template": {
            "metadata": {"labels": {"app": "p", "x": "y"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    },
}


def changed(path: str, value: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(GOOD)
    target = manifest
    *parents, last = path.split(".")
    for part in parents:
        target = target[part]
    target[last] = value
    return manifest


BAD = [
    ("invalid yaml", "kind: [DaemonSet", "not valid YAML or JSON at line"),
    ("two documents", json.dumps(GOOD) + "\n---\n" + json.dumps(GOOD), "exactly one"),
    ("empty", "", "exactly one"),
    ("a list", "[1, 2]", "expected a DaemonSet mapping"),
    ("wrong kind", json.dumps(changed("kind", "Deployment")), "expected kind DaemonSet"),
    ("wrong api", json.dumps(changed("apiVersion", "extensions/v1beta1")), "apiVersion"),
    ("no template", json.dumps(changed("spec.template", None)), "spec.template is missing"),
    (
        "no containers",
        json.dumps(changed("spec.template.spec.containers", [])),
        "at least one container",
    ),
    (
        "no image",
        json.dumps(changed("spec.template.spec.containers", [{"name": "c"}])),
        "needs an image",
    ),
    (
        "no name",
        json.dumps(changed("spec.template.spec.containers", [{"image": "x"}])),
        "needs a name",
    ),
    (
        "duplicate names",
        json.dumps(changed("spec.template.spec.initContainers", [{"name": "c", "image": "x"}])),
        "duplicate",
    ),
    (
        "bad image",
        json.dumps(changed("spec.template.spec.containers", [{"name": "c", "image": "Bad Image"}])),
        "invalid image reference",
    ),
    (
        "selector mismatch",
        json.dumps(changed("spec.selector", {"matchLabels": {"app": "q"}})),
        "does not match",
    ),
    ("no selector", json.dumps(changed("spec.selector", {})), "spec.selector"),
    (
        "expression mismatch",
        json.dumps(
            changed(
                "spec.selector",
                {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["p"]}]},
            )
        ),
        "does not match",
    ),
]


@pytest.mark.parametrize(("case", "text", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_manifests_are_one_line_usage_errors(case: str, text: str, words: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_manifest(text, source="ds.yaml")
    line = caught.value.one_line()
    assert words in line and "\n" not in line


def test_yaml_and_json_manifests_both_load() -> None:
    import yaml

    assert parse_manifest(json.dumps(GOOD), source="x") == GOOD
    assert parse_manifest(yaml.safe_dump(GOOD), source="x") == GOOD


def test_pod_images_lists_init_containers_containers_and_image_volumes_once() -> None:
    spec = {
        "initContainers": [{"image": "a"}, {"image": "b"}],
        "containers": [{"image": "c"}, {"image": "a"}],
        "volumes": [{"name": "v", "image": {"reference": "d"}}, {"name": "e", "emptyDir": {}}],
    }
    assert pod_images(spec) == ["a", "b", "c", "d"]


SHELL_WORDS = {"/bin/sh", "sh", "bash", "sleep", "echo", "true", "cp"}


@pytest.mark.parametrize("method", ["initContainers", "imageVolumes"])
def test_generated_pullers_run_nothing_inside_the_images_and_are_restricted(method: str) -> None:
    images = [parse_image("gcr.io/distroless/static:nonroot"), parse_image("busybox")]
    manifest = generate_daemonset(images, PullerSettings(method=method))  # type: ignore[arg-type]
    validate_daemonset(manifest, source="generated")
    pod = manifest["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    containers = pod.get("initContainers", []) + pod["containers"]
    for container in containers:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsNonRoot"] is True
        assert set(container["resources"]) == {"requests", "limits"}
        assert not SHELL_WORDS & set(container.get("command", []))
    pulled = set(pod_images(pod))
    assert {"gcr.io/distroless/static:nonroot", "busybox"} <= pulled


def test_init_container_pullers_run_only_the_copied_helper() -> None:
    manifest = generate_daemonset([parse_image("busybox")], PullerSettings())
    pod = manifest["spec"]["template"]["spec"]
    install, pull = pod["initContainers"]
    assert install["command"][-1] == "/helper/noop"
    assert pull["command"] == ["/helper/noop"]
    assert pull["volumeMounts"][0]["readOnly"] is True
    assert pod["volumes"] == [{"name": "helper", "emptyDir": {"sizeLimit": "1Mi"}}]


def test_image_volume_pullers_mount_each_image_on_the_pause_container() -> None:
    manifest = generate_daemonset(
        [parse_image("a:1"), parse_image("b:1")], PullerSettings(method="imageVolumes")
    )
    pod = manifest["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert [v["image"]["reference"] for v in pod["volumes"]] == ["a:1", "b:1"]
    assert len(pod["containers"][0]["volumeMounts"]) == 2


def test_generated_placement_settings_are_applied() -> None:
    settings = PullerSettings(
        placement=Placement(
            tolerations=(Toleration(operator="Exists"),),
            priority_class_name="pull-low",
            image_pull_secrets=("reg",),
        )
    )
    pod = generate_daemonset([parse_image("a")], settings)["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["priorityClassName"] == "pull-low"
    assert pod["imagePullSecrets"] == [{"name": "reg"}]


def test_prepare_for_run_makes_name_labels_and_selector_unique_to_the_run() -> None:
    original = copy.deepcopy(GOOD)
    original["metadata"].update(uid="u", resourceVersion="9", generateName="x-")
    original["status"] = {"numberReady": 3}
    prepared = prepare_for_run(
        original, run_id="abcd1234", namespace="ns", owner=None, created_at="2026-01-01T00:00:00Z"
    )
    meta = prepared["metadata"]
    assert meta["name"] == "p-abcd1234" and len(meta["name"]) <= 63
    assert meta["namespace"] == "ns"
    assert "uid" not in meta and "resourceVersion" not in meta and "generateName" not in meta
    assert "status" not in prepared and "ownerReferences" not in meta
    assert meta["labels"][MANAGED_BY_LABEL] == "image-awaiter"
    assert meta["labels"][RUN_ID_LABEL] == "abcd1234"
    assert prepared["spec"]["selector"]["matchLabels"] == {"app": "p", RUN_ID_LABEL: "abcd1234"}
    assert prepared["spec"]["template"]["metadata"]["labels"][RUN_ID_LABEL] == "abcd1234"
    assert original["metadata"]["uid"] == "u"  # the input is not mutated
    validate_daemonset(prepared, source="prepared")


def test_long_names_are_shortened_to_fit() -> None:
    manifest = changed("metadata", {"name": "n" * 80})
    prepared = prepare_for_run(
        manifest, run_id="abcd1234", namespace="ns", owner=None, created_at="t"
    )
    assert len(prepared["metadata"]["name"]) <= 53


def test_owner_reference_only_for_an_owner_in_the_same_namespace() -> None:
    owner = Owner(name="hook-abc", uid="uid-1", namespace="ns")
    same = prepare_for_run(GOOD, run_id="r", namespace="ns", owner=owner, created_at="t")
    other = prepare_for_run(GOOD, run_id="r", namespace="elsewhere", owner=owner, created_at="t")
    [reference] = same["metadata"]["ownerReferences"]
    assert reference == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "hook-abc",
        "uid": "uid-1",
        "blockOwnerDeletion": False,
        "controller": False,
    }
    assert "ownerReferences" not in other["metadata"]


def test_nodes_already_done_get_no_puller_pod_and_existing_affinity_is_kept() -> None:
    manifest = changed(
        "spec.template.spec.affinity",
        {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["gpu"]}]}
                    ]
                }
            }
        },
    )
    prepared = prepare_for_run(
        manifest, run_id="r", namespace="ns", owner=None, created_at="t", skip_nodes=["b", "a"]
    )
    [term] = prepared["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert term["matchExpressions"][0]["key"] == "pool"
    assert term["matchFields"] == [
        {"key": "metadata.name", "operator": "NotIn", "values": ["a", "b"]}
    ]
    plain = prepare_for_run(
        GOOD, run_id="r", namespace="ns", owner=None, created_at="t", skip_nodes=["a"]
    )
    assert plain["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["a"]}]}
    ]


def test_a_daemonset_skips_no_node_when_too_many_are_done_to_name() -> None:
    from image_awaiter.spec.pullers import MAX_SKIPPED_NODES

    done = [f"gke-prod-user-pool-1a2b3c4d-{i:05d}" for i in range(MAX_SKIPPED_NODES + 1)]
    prepared = prepare_for_run(
        GOOD, run_id="r", namespace="ns", owner=None, created_at="t", skip_nodes=done
    )
    assert "affinity" not in prepared["spec"]["template"]["spec"]
    assert len(json.dumps(prepared)) < 10_000
    named = prepare_for_run(
        GOOD, run_id="r", namespace="ns", owner=None, created_at="t", skip_nodes=done[:-1]
    )
    assert "affinity" in named["spec"]["template"]["spec"]


def test_a_spec_reads_the_same_with_libyaml_as_with_the_pure_python_loader() -> None:
    import yaml

    text = yaml.safe_dump(GOOD) + "---\n" + json.dumps(GOOD) + "\n---\n# only a comment\n"
    pure = [d for d in yaml.safe_load_all(text) if d is not None]
    assert parse_daemonsets(text, source="spec.yaml") == pure
    assert len(pure) == 2


def test_invalid_yaml_in_a_spec_is_worded_as_the_pure_python_loader_words_it() -> None:
    # libyaml would say: at line 2: did not find expected ',' or ']'
    with pytest.raises(UsageError) as caught:
        parse_daemonsets("kind: [DaemonSet", source="spec.yaml")
    assert caught.value.one_line() == (
        "spec.yaml: not valid YAML or JSON at line 1: expected ',' or ']', but got '<stream end>'"
        "; fix the YAML at the place named"
    )


@pytest.mark.parametrize(
    ("method", "images", "awaited"),
    [
        ("initContainers", ["quay.io/x/a:1"], ["quay.io/x/a:1"]),
        ("imageVolumes", ["quay.io/x/a:1", "quay.io/x/b:2"], ["quay.io/x/a:1", "quay.io/x/b:2"]),
        # Pause pulled for its own sake (z2jh's user placeholders) stays awaited.
        (
            "initContainers",
            ["registry.k8s.io/pause:3.10", "quay.io/x/a:1"],
            ["registry.k8s.io/pause:3.10", "quay.io/x/a:1"],
        ),
    ],
)
def test_a_puller_in_image_awaiters_own_layout_awaits_only_its_users_images(
    method: str, images: list[str], awaited: list[str]
) -> None:
    settings = PullerSettings(method=method)  # type: ignore[arg-type]
    assert awaited_images(puller_pod_spec(images, settings)) == awaited


def test_any_other_pod_awaits_every_image_it_pulls() -> None:
    spec = {
        "initContainers": [{"name": "install-helper", "image": "h:1", "command": ["/bin/cp"]}],
        "containers": [{"name": "pause", "image": "p:1"}],
    }
    assert awaited_images(spec) == ["h:1", "p:1"]


@pytest.mark.parametrize(
    ("first", "then"), [("initContainers", "imageVolumes"), ("imageVolumes", "initContainers")]
)
def test_a_generated_puller_rebuilt_for_another_method_is_as_if_generated_for_it(
    first: str, then: str
) -> None:
    """`--pull-method auto` rebuilds the generated pullers once it has chosen: the placement
    kept, the method's parts as that method builds them."""
    images = [parse_image("quay.io/org/app:1"), parse_image("busybox:1.36")]
    placed = PullerSettings(
        placement=Placement(
            node_selector=(("kubernetes.io/os", "linux"), ("pool", "gpu")),
            tolerations=(Toleration(key="nvidia.com/gpu", operator="Exists"),),
            image_pull_secrets=("regcred",),
        )
    )
    before = generate_daemonset(images, dataclasses.replace(placed, method=first))  # type: ignore[arg-type]
    wanted = dataclasses.replace(placed, method=then)  # type: ignore[arg-type]
    assert with_pull_method(before, images, wanted) == generate_daemonset(images, wanted)

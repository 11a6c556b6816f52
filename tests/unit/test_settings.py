"""Resolving a run's job from its settings: which images, which DaemonSet, which placement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from image_awaiter.core.errors import UsageError
from image_awaiter.core.placement import Placement
from image_awaiter.core.references import parse_image
from image_awaiter.spec.generating import generate_daemonset
from image_awaiter.spec.pullers import (
    DEFAULT_HELPER_IMAGE,
    DEFAULT_PAUSE_IMAGE,
    PullerSettings,
    unique_images,
)
from image_awaiter.spec.settings import Settings, generated_name, resolve_job

DIGEST = "sha256:" + "ab" * 32


def _spec_file(tmp_path: Path, *images: str) -> str:
    manifest = generate_daemonset(unique_images(images), PullerSettings())
    path = tmp_path / "puller.json"
    path.write_text(json.dumps(manifest))
    return str(path)


def test_a_spec_file_alone_awaits_the_images_its_pod_pulls_for_the_user(tmp_path: Path) -> None:
    # image-awaiter's own puller layout (the chart's): its helper and pause images only serve
    # the pulling, so they are not awaited or counted (issue 20).
    spec = _spec_file(tmp_path, "quay.io/x/a:1", "busybox")
    job = resolve_job(Settings(command="await", daemonset_specs=(spec,)))
    assert [image.key for image in job.images] == [
        "quay.io/x/a:1",
        "docker.io/library/busybox:latest",
    ]
    assert parse_image(DEFAULT_HELPER_IMAGE).key not in job.keys
    assert parse_image(DEFAULT_PAUSE_IMAGE).key not in job.keys
    assert job.not_in_spec == ()
    assert job.source == spec


def test_images_given_with_a_spec_that_never_pulls_them_are_flagged(tmp_path: Path) -> None:
    spec = _spec_file(tmp_path, f"quay.io/x/a:1@{DIGEST}")
    job = resolve_job(
        Settings(
            command="await", daemonset_specs=(spec,), images=("quay.io/x/a:1", "quay.io/x/b:1")
        )
    )
    assert [image.key for image in job.images] == ["quay.io/x/a:1", "quay.io/x/b:1"]
    assert [image.original for image in job.not_in_spec] == ["quay.io/x/b:1"]


def test_images_alone_generate_the_puller(tmp_path: Path) -> None:
    job = resolve_job(Settings(command="await", images=("busybox:1.36", "busybox:1.36")))
    assert [image.key for image in job.images] == ["docker.io/library/busybox:1.36"]
    assert job.source == "generated"
    assert job.groups[0].manifest["kind"] == "DaemonSet"


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        (Settings(command="await"), "no images to await"),
        (Settings(command="await", images=("busybox",), interval=0), "--interval"),
        (Settings(command="await", images=("busybox",), timeout=-1), "--timeout"),
        (Settings(command="await", daemonset_specs=("/nonexistent.yaml",)), "file not found"),
    ],
)
def test_unusable_settings_are_usage_errors(settings: Settings, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        resolve_job(settings)


# ---------------------------------------------------------------------------- pull groups


def _named(name: str, *images: str, node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    selector = node_selector if node_selector is not None else {"kubernetes.io/os": "linux"}
    settings = PullerSettings(placement=Placement(node_selector=tuple(selector.items())))
    manifest = generate_daemonset(unique_images(images), settings)
    manifest["metadata"]["name"] = name
    return manifest


def test_each_daemonset_of_a_multi_document_spec_is_one_group(tmp_path: Path) -> None:
    spec = tmp_path / "groups.yaml"
    spec.write_text(
        yaml.safe_dump_all(
            [
                _named("gpu", "quay.io/x/cuda:1", node_selector={"gpu": "true"}),
                _named("cpu", "busybox"),
            ]
        )
    )
    job = resolve_job(Settings(command="await", daemonset_specs=(str(spec),)))
    assert [g.name for g in job.groups] == ["gpu", "cpu"]
    assert job.groups[0].placement.node_selector == (("gpu", "true"),)
    assert "quay.io/x/cuda:1" in job.groups[0].keys
    assert "quay.io/x/cuda:1" not in job.groups[1].keys


def test_a_list_and_a_second_spec_file_add_their_daemonsets_as_groups(tmp_path: Path) -> None:
    listed = tmp_path / "list.yaml"
    listed.write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [_named("a", "busybox")]})
    )
    single = tmp_path / "single.json"
    single.write_text(json.dumps(_named("b", "quay.io/x/b:1")))
    job = resolve_job(Settings(command="await", daemonset_specs=(str(listed), str(single))))
    assert [g.name for g in job.groups] == ["a", "b"]


def test_image_narrows_several_daemonsets_to_those_pulling_it(tmp_path: Path) -> None:
    spec = tmp_path / "groups.yaml"
    spec.write_text(
        yaml.safe_dump_all([_named("gpu", "quay.io/x/cuda:1"), _named("cpu", "busybox:1.36")])
    )
    job = resolve_job(
        Settings(command="await", daemonset_specs=(str(spec),), images=("quay.io/x/cuda:2",))
    )
    assert [(g.name, [i.original for i in g.images]) for g in job.groups] == [
        ("gpu", ["quay.io/x/cuda:2"])
    ]


def test_from_manifests_gives_one_generated_puller_per_placement(tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text(
        yaml.safe_dump_all(
            [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": name},
                    "spec": {
                        "template": {
                            "spec": {**spec, "containers": [{"name": "c", "image": image}]}
                        }
                    },
                }
                for name, image, spec in [
                    ("web", "nginx:1.27", {}),
                    ("trainer", "quay.io/x/cuda:1", {"nodeSelector": {"gpu": "true"}}),
                ]
            ]
        )
    )
    job = resolve_job(Settings(command="await", manifests=(str(app),)))
    assert [g.name for g in job.groups] == ["web", "trainer"]
    trainer = job.groups[1]
    assert trainer.workloads == ("Deployment/trainer",)
    assert trainer.manifest["metadata"]["name"] == "image-awaiter-puller-trainer"
    pod = trainer.manifest["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "gpu": "true"}
    assert [c["image"] for c in pod["initContainers"][1:]] == ["quay.io/x/cuda:1"]
    # Today's puller properties, kept: no shell, restricted, explicit requests and limits.
    assert pod["initContainers"][1]["command"] == ["/helper/noop"]
    assert pod["automountServiceAccountToken"] is False
    for container in [*pod["initContainers"], *pod["containers"]]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert set(container["resources"]) == {"requests", "limits"}


def test_long_group_names_keep_distinct_daemonset_names_within_44_characters() -> None:
    first = generated_name("jupyterhub-user-placeholder-gpu-a100-large")
    second = generated_name("jupyterhub-user-placeholder-gpu-a100-small")
    assert first != second
    assert len(first) <= 44 and len(second) <= 44


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        (
            Settings(command="await", daemonset_specs=("a.yaml",), manifests=("b.yaml",)),
            "cannot be combined",
        ),
        (Settings(command="await", images=("busybox",), output="yaml"), "--dry-run would create"),
        (
            Settings(command="await", images=("b",), dry_run=True, output="yaml", report="-"),
            "both write to stdout",
        ),
    ],
)
def test_inputs_that_cannot_go_together_are_usage_errors(
    settings: Settings, complaint: str
) -> None:
    with pytest.raises(UsageError, match=complaint):
        resolve_job(settings)

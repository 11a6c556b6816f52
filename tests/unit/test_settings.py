"""Resolving a run's job from its settings: which images, which DaemonSet, which placement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from image_awaiter.errors import UsageError
from image_awaiter.pullers import (
    DEFAULT_HELPER_IMAGE,
    DEFAULT_PAUSE_IMAGE,
    PullerSettings,
    generate_daemonset,
    unique_images,
)
from image_awaiter.references import parse_image
from image_awaiter.settings import Settings, resolve_job

DIGEST = "sha256:" + "ab" * 32


def _spec_file(tmp_path: Path, *images: str) -> str:
    manifest = generate_daemonset(unique_images(images), PullerSettings())
    path = tmp_path / "puller.json"
    path.write_text(json.dumps(manifest))
    return str(path)


def test_a_spec_file_alone_awaits_every_image_its_pod_pulls(tmp_path: Path) -> None:
    spec = _spec_file(tmp_path, "quay.io/x/a:1", "busybox")
    job = resolve_job(Settings(command="await", daemonset_specs=(spec,)))
    assert [image.key for image in job.images] == [
        parse_image(DEFAULT_HELPER_IMAGE).key,
        "quay.io/x/a:1",
        "docker.io/library/busybox:latest",
        parse_image(DEFAULT_PAUSE_IMAGE).key,
    ]
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

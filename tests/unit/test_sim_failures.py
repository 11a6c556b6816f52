"""The simulated runtimes' failure texts and platform matching, as literal tables: every kind
renders a real text on every runtime, and the product classifies it as the kind intends."""

from __future__ import annotations

import pytest

from image_awaiter.core import pullerrors
from simcluster.nodes import failures
from simcluster.nodes.failures import Platform

ARM = Platform("linux", "arm64", "v8")
AMD = Platform("linux", "amd64")


@pytest.mark.parametrize("runtime", ["containerd", "cri-o", "docker"])
@pytest.mark.parametrize("kind", sorted(failures.KINDS - {"invalid-reference"}))
def test_every_kind_has_a_real_text_on_every_runtime_classified_as_intended(
    runtime: str, kind: str
) -> None:
    text = failures.runtime_message(
        kind, runtime=runtime, image="nginx:1.27", ref="docker.io/library/nginx:1.27", platform=ARM
    )
    expected = (
        "permanent"
        if kind in failures.PERMANENT
        else "platform-mismatch"
        if kind == "no-platform-variant"
        else "transient"
    )
    assert pullerrors.classify_message(text).error_class == expected


@pytest.mark.parametrize(
    ("runtime", "platform", "ends"),
    [
        ("docker", AMD, "no matching manifest for linux/amd64 in the manifest list entries"),
        ("docker", ARM, "no matching manifest for linux/arm64/v8 in the manifest list entries"),
        ("cri-o", AMD, "for architecture amd64, variant , OS linux"),
        ("cri-o", ARM, "for architecture arm64, variant v8, OS linux"),
        ("containerd", AMD, "no match for platform in manifest: not found"),
    ],
)
def test_platform_messages_name_the_nodes_own_platform(
    runtime: str, platform: Platform, ends: str
) -> None:
    text = failures.runtime_message(
        "no-platform-variant",
        runtime=runtime,
        image="x:1",
        ref="docker.io/library/x:1",
        platform=platform,
    )
    assert text.endswith(ends)


@pytest.mark.parametrize(
    ("platforms", "node", "runs"),
    [
        (("linux/amd64", "linux/arm64"), ARM, True),
        (("linux/amd64",), ARM, False),
        (("linux/arm64/v8",), ARM, True),
        (("linux/arm64/v7",), ARM, False),
        (("linux/arm64/v8",), AMD, False),
        (("windows/amd64",), AMD, False),
    ],
)
def test_an_image_runs_where_a_platform_matches_os_arch_and_variant(
    platforms: tuple[str, ...], node: Platform, runs: bool
) -> None:
    assert node.supported_by(platforms) is runs


def test_a_nodes_platform_comes_from_its_labels_then_its_node_info() -> None:
    labels = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"}
    assert failures.platform_of(labels, {}) == ARM
    assert failures.platform_of({}, {"operatingSystem": "linux", "architecture": "amd64"}) == AMD
    assert failures.platform_of({}, {}) == AMD


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown pull failure kind 'gone'"):
        failures.runtime_message("gone", runtime="containerd", image="x", ref="docker.io/x:1")

"""The simulated pod sandbox's pure rules (simcluster/nodes/sandboxes.py), as literal tables:
Kubernetes' `$(VAR)` expansion and the mapping of mount paths under a pod's temporary root."""

from __future__ import annotations

from pathlib import Path

import pytest

from simcluster.nodes.sandboxes import _argv, _expand, _map_paths

MOUNTS = [("/etc/image-awaiter", Path("/tmp/root/etc/image-awaiter")), ("/", Path("/tmp/root"))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(POD_NAME)", "hook-abc"),
        ("ns=$(POD_NAMESPACE)/x", "ns=default/x"),
        ("$$(POD_NAME)", "$(POD_NAME)"),  # escaped
        ("$(UNDEFINED)", "$(UNDEFINED)"),  # left as written
        ("$POD_NAME", "$POD_NAME"),  # not the kubelet's syntax
    ],
)
def test_variable_references_expand_as_the_kubelet_expands_them(text: str, expected: str) -> None:
    assert _expand(text, {"POD_NAME": "hook-abc", "POD_NAMESPACE": "default"}) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/etc/image-awaiter/daemonset.yaml", "/tmp/root/etc/image-awaiter/daemonset.yaml"),
        ("/etc/image-awaiter", "/tmp/root/etc/image-awaiter"),
        (
            "--daemonset-spec=/etc/image-awaiter/d.yaml",
            "--daemonset-spec=/tmp/root/etc/image-awaiter/d.yaml",
        ),
        (
            "/etc/image-awaiter-other/d.yaml",
            "/tmp/root/etc/image-awaiter-other/d.yaml",
        ),  # under "/"
        ("await", "await"),
        ("10m", "10m"),
    ],
)
def test_values_under_a_mount_path_are_mapped_under_the_pod_root(value: str, expected: str) -> None:
    assert _map_paths(value, MOUNTS) == expected


def test_values_outside_every_mount_are_left_alone() -> None:
    assert _map_paths("/dev/null", MOUNTS[:1]) == "/dev/null"


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ({"args": ["check"]}, ["check"]),
        ({"command": ["python3", "-m", "image_awaiter", "await"], "args": ["-q"]}, ["await", "-q"]),
        ({"command": ["image-awaiter"], "args": ["check"]}, ["check"]),
    ],
)
def test_the_cli_gets_what_follows_the_images_entrypoint(
    container: dict[str, list[str]], expected: list[str]
) -> None:
    assert _argv(container) == expected

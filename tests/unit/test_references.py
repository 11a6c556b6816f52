"""Image references against the distribution reference grammar, and matching node names."""

from __future__ import annotations

import pytest

from image_awaiter.core.errors import ExitCode
from image_awaiter.core.references import (
    InvalidImageReference,
    node_image_key,
    node_image_keys,
    parse_image,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("given", "key"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
        ("jupyter/base-notebook:2025", "docker.io/jupyter/base-notebook:2025"),
        ("quay.io/x/y:1", "quay.io/x/y:1"),
        ("quay.io/a/b/c/d:v1.2.3", "quay.io/a/b/c/d:v1.2.3"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/app:dev", "localhost:5000/app:dev"),
        ("registry.example.com:443/team/app:1", "registry.example.com:443/team/app:1"),
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
        (f"quay.io/x/y:1@{DIGEST}", f"quay.io/x/y@{DIGEST}"),
        ("a.b/c_d__e-f.g:T_a.g-1", "a.b/c_d__e-f.g:T_a.g-1"),
    ],
)
def test_references_normalise_as_distribution_does(given: str, key: str) -> None:
    assert parse_image(given).key == key


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " ",
        "Busybox",
        "docker.io/Library/busybox",
        "a:b:c",
        "busybox@sha256:abc",
        "busybox@md5:" + "0" * 32,
        "a//b",
        "-leading/dash",
        "busybox:" + "t" * 129,
        "a" * 256,
        "busybox:tag with space",
        "busybox:-bad",
    ],
)
def test_invalid_references_are_usage_errors(bad: str) -> None:
    with pytest.raises(InvalidImageReference) as caught:
        parse_image(bad)
    assert caught.value.exit_code is ExitCode.USAGE
    assert "invalid image reference" in caught.value.one_line()


def test_canonical_form_keeps_tag_and_digest() -> None:
    assert parse_image(f"nginx:1.7@{DIGEST}").canonical == f"docker.io/library/nginx:1.7@{DIGEST}"
    assert parse_image("nginx").canonical == "docker.io/library/nginx:latest"


@pytest.mark.parametrize(
    ("reported", "awaited"),
    [
        ("docker.io/library/nginx:1.7.9", "nginx:1.7.9"),  # containerd, CRI-O
        ("nginx:1.7.9", "docker.io/library/nginx:1.7.9"),  # docker
        ("nginx:1.7.9", "nginx:1.7.9"),
        (f"docker.io/library/nginx@{DIGEST}", f"nginx@{DIGEST}"),
        (f"nginx@{DIGEST}", f"docker.io/library/nginx:1.7.9@{DIGEST}"),
        ("quay.io/jupyter/base-notebook:2025", "quay.io/jupyter/base-notebook:2025"),
        ("jupyter/base-notebook:latest", "jupyter/base-notebook"),
    ],
)
def test_node_names_in_every_runtime_style_match_the_awaited_reference(
    reported: str, awaited: str
) -> None:
    wanted = frozenset({parse_image(awaited).key})
    assert node_image_keys([reported], wanted=wanted) == wanted


@pytest.mark.parametrize(
    ("reported", "awaited"),
    [
        ("nginx:1.7.9", "nginx:1.7.10"),
        ("nginx:latest", "nginx:1.7.9"),
        ("quay.io/library/nginx:1", "nginx:1"),
        (f"other/repo@{DIGEST}", f"nginx@{DIGEST}"),
        ("docker.io/library/nginx:1.7.9", f"nginx@{DIGEST}"),
    ],
)
def test_different_images_do_not_match(reported: str, awaited: str) -> None:
    assert node_image_keys([reported], wanted=frozenset({parse_image(awaited).key})) == frozenset()


@pytest.mark.parametrize("junk", ["<none>@<none>", "<none>:<none>", "", "UPPER CASE:x"])
def test_junk_names_reported_by_runtimes_are_ignored(junk: str) -> None:
    assert node_image_key(junk) is None


def test_node_image_keys_without_a_filter_keeps_every_parseable_name() -> None:
    keys = node_image_keys(["nginx:1", "<none>@<none>", "quay.io/a/b:2"])
    assert keys == frozenset({"docker.io/library/nginx:1", "quay.io/a/b:2"})

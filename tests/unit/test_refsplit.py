"""refsplit.split_common against docker-image-py itself: for every reference it splits, the same
name, tag and digest as `Reference.parse_normalized_named`; for every reference the library
rejects, no answer (references.py then asks the library, whose error stands)."""

from __future__ import annotations

import random
import string

import pytest
from docker_image.reference import Reference

from image_awaiter.core.refsplit import split_common
from tests.unit.test_references import DIGEST

COMMON = [
    "busybox",
    "busybox:1.36",
    "library/busybox",
    "docker.io/busybox",
    "index.docker.io/library/busybox:1",
    "jupyter/base-notebook:2025",
    "quay.io/jupyter/base-notebook:2025-01-01",
    "quay.io/a/b/c/d:v1.2.3",
    "localhost/app",
    "localhost:5000/app:dev",
    "registry.example.com:443/team/app:1",
    "registry.k8s.io/pause:3.10",
    f"busybox@{DIGEST}",
    f"quay.io/x/y:1@{DIGEST}",
    "a.b/c_d__e-f.g:T_a.g-1",
    "ghcr.io/image-awaiter/image-awaiter:0.1.0",
    "Quay.IO/x/y:Z",
    "nvcr.io/nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04",
    f"docker.io/library/nginx@sha512:{'ab' * 64}",
]
# Left to the library: rare forms and every invalid reference.
UNCOMMON = [
    "[::1]:5000/app:1",
    "Foo/bar",
    "0123456789abcdef" * 4,
    "busybox@md5:" + "0" * 32,
    f"busybox@sha256:{'A' * 64}",
    "a//b",
    "a:b:c",
    "busybox:" + "t" * 129,
    "x/" + "a" * 255,
    "",
    "<none>@<none>",
    "-leading/dash",
    "busybox:-bad",
    "docker.io/Library/busybox",
]


def library(text: str) -> tuple[str, str | None, str | None] | None:
    try:
        parsed = Reference.parse_normalized_named(text)
    except Exception:  # the library raises a zoo of its own exception types
        return None
    return parsed["name"], parsed["tag"], parsed["digest"]


@pytest.mark.parametrize("text", COMMON)
def test_common_references_are_split_as_the_library_parses_them(text: str) -> None:
    assert split_common(text) is not None
    assert split_common(text) == library(text)


@pytest.mark.parametrize("text", UNCOMMON)
def test_rare_and_invalid_references_are_left_to_the_library(text: str) -> None:
    assert split_common(text) is None


PIECES = {
    "domain": [
        "quay.io",
        "localhost",
        "localhost:5000",
        "a.b",
        "r-1.example.com:443",
        "Ab.Cd",
        "a-.b",
        "a..b",
        "a.b:",
        "a.b:x",
        "[::1]",
        "index.docker.io",
        "docker.io",
        "A",
        "UP",
        "x_y.z",
        "1.2.3.4:80",
        "a.b:1a",
    ],
    "component": [
        "a",
        "busybox",
        "base-notebook",
        "a--b",
        "a__b",
        "a___b",
        "a._b",
        "a.b",
        "a_b",
        "-a",
        "a-",
        "A",
        "aB",
        "a.",
        ".a",
        "a-.b",
        "0",
        "x" * 120,
        "é",
        "a b",
    ],
    "tag": [
        "1",
        "latest",
        "v1.2.3",
        "_x",
        "-x",
        ".x",
        "T_a.g-1",
        "a" * 128,
        "a" * 129,
        "",
        "x y",
        "ü",
    ],
    "digest": [
        DIGEST,
        "sha256:" + "0" * 63,
        "sha512:" + "f" * 128,
        "sha384:" + "1" * 96,
        "sha256:" + "A" * 64,
        "md5:" + "0" * 32,
        "sha256:",
        "Sha256:" + "0" * 64,
    ],
}


def random_reference(rng: random.Random) -> str:
    text = ""
    if rng.random() < 0.5:
        text = rng.choice(PIECES["domain"]) + "/"
    text += "/".join(rng.choice(PIECES["component"]) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.6:
        text += ":" + rng.choice(PIECES["tag"])
    if rng.random() < 0.3:
        text += "@" + rng.choice(PIECES["digest"])
    if rng.random() < 0.05:  # now and then, a character anywhere
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(string.printable) + text[at:]
    return text


def test_seeded_random_references_split_as_the_library_parses_them_or_not_at_all() -> None:
    rng = random.Random(13)
    split = 0
    for _ in range(20_000):
        text = random_reference(rng)
        mine = split_common(text)
        if mine is not None:
            split += 1
            assert mine == library(text), text
    assert split > 2_000  # the common forms were generated, and split

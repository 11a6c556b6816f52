"""Image references: parsing, normalisation and matching, per the distribution reference grammar.

`busybox` is `docker.io/library/busybox:latest`; `quay.io/x/y:1` stays as it is; a reference with
a digest (`repo@sha256:...` or `repo:tag@sha256:...`) is matched by repository and digest. Parsing
is done by `docker-image-py`, a port of distribution's own reference package, except for the
common forms, which refsplit.py splits without importing it (start-up).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import NewType

from image_awaiter.core.errors import UsageError
from image_awaiter.core.refsplit import split_common

DEFAULT_TAG = "latest"

# What presence is matched on: `name@digest` when pinned by digest, else `name:tag`. The one
# form an image takes through NodeState, PullerPod and the verdicts.
ImageKey = NewType("ImageKey", str)


class InvalidImageReference(UsageError):
    """An image reference that the distribution grammar rejects."""


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A normalised image reference. `key` is what presence is matched on."""

    original: str
    name: str  # domain/path, e.g. docker.io/library/busybox
    tag: str | None
    digest: str | None

    @property
    def key(self) -> ImageKey:
        """`name@digest` when pinned by digest, else `name:tag` (tag defaulting to latest)."""
        if self.digest:
            return ImageKey(f"{self.name}@{self.digest}")
        return ImageKey(f"{self.name}:{self.tag or DEFAULT_TAG}")

    @property
    def canonical(self) -> str:
        """The fully qualified form: docker.io/library/busybox:latest, name:tag@digest."""
        tagged = f"{self.name}:{self.tag}" if self.tag else self.name
        if self.digest:
            return f"{tagged}@{self.digest}"
        return f"{self.name}:{self.tag or DEFAULT_TAG}"

    def __str__(self) -> str:
        return self.original


def parse_image(text: str) -> ImageRef:
    """Parse and normalise `text`; raise `InvalidImageReference` with the grammar's complaint."""
    parsed = _parse_cached(text.strip()) if isinstance(text, str) else None
    if parsed is None:
        raise InvalidImageReference(
            f"invalid image reference {text!r}",
            hint="use the form [registry/]repository[:tag][@sha256:digest], lowercase",
        )
    return parsed


def node_image_key(name: str) -> ImageKey | None:
    """The match key of one name from `node.status.images[].names`, or None when unparseable.

    Runtimes report `docker.io/library/nginx:1.7.9`, `nginx:1.7.9`, `nginx@sha256:...` and
    sometimes `<none>@<none>` or `sha256:...`; only real references give a key.
    """
    parsed = _parse_cached(name)
    return parsed.key if parsed is not None else None


def node_image_keys(
    names: Iterable[str], *, wanted: frozenset[ImageKey] | None = None
) -> frozenset[ImageKey]:
    """Match keys of a node's reported names, optionally only those in `wanted`.

    With `wanted`, a name is fully parsed only when it contains the short repository name of a
    wanted image and that is its last path component: cheap tests that skip almost every name
    on large nodes (5,000 nodes list about 750,000 names).
    """
    if wanted is None:
        return frozenset(key for name in names if (key := node_image_key(name)) is not None)
    tails = repository_tails(wanted)
    if len(tails) == 1:
        [tail] = tails
        candidates = [name for name in names if tail in name]  # a C-speed substring test
    else:
        candidates = [name for name in names if any(tail in name for tail in tails)]
    needles = _needles(wanted)
    if needles is not None:  # other tags and digests of the same repository: never parsed
        candidates = [name for name in candidates if any(n in name for n in needles)]
    keys = {
        key
        for name in candidates
        if _tail(name) in tails and (key := node_image_key(name)) is not None
    }
    return frozenset(keys & wanted)


def _tail(reference: str) -> str:
    """`nginx` of `docker.io/library/nginx:1.7@sha256:...`: the short repository name."""
    name = reference.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[0]


@lru_cache(maxsize=64)
def _needles(keys: frozenset[ImageKey]) -> tuple[str, ...] | None:
    """Text every name matching one of `keys` contains: `@digest` for a key pinned by digest,
    else `:tag` (a name's key takes its tag from the name); None when some key's tag is
    `latest`, which a name may leave out. Parsing a name costs ~20-50 us; nodes report many
    tags of one repository (build tags, older releases) and each would be parsed."""
    needles = []
    for key in keys:
        _, at, digest = key.partition("@")
        tag = key.rsplit(":", 1)[-1]
        if not at and tag == DEFAULT_TAG:
            return None
        needles.append(f"@{digest}" if at else f":{tag}")
    return tuple(needles)


@lru_cache(maxsize=64)
def repository_tails(keys: frozenset[ImageKey]) -> frozenset[str]:
    """The short repository names of `keys`: every name that can match one contains one."""
    return frozenset(_tail(key) for key in keys)


@lru_cache(maxsize=65536)
def _parse_cached(text: str) -> ImageRef | None:
    if not text or text != text.strip():
        return None
    common = split_common(text)
    if common is not None:
        return ImageRef(original=text, name=common[0], tag=common[1], digest=common[2])
    from docker_image import reference as _distribution

    try:
        parsed = _distribution.Reference.parse_normalized_named(text)
    except Exception:  # the library raises a zoo of its own exception types
        return None
    return ImageRef(original=text, name=parsed["name"], tag=parsed["tag"], digest=parsed["digest"])

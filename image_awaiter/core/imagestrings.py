"""Strings that look like image references, found in configuration text (ConfigMap and Secret
values, custom resources, Python in `hub.extraConfig`), so that images an application keeps
outside pod templates are never dropped silently.

The pattern is conservative to keep false positives low: a word counts only when it parses as a
reference and is pinned by a digest, or names a repository path (`owner/name`, `host/path`) and a
tag: `quay.io/jupyter/r-notebook:2025-06-02`, `ghcr.io/x/y@sha256:...` and `jupyter/base:latest`
count; `python:3.12` (indistinguishable from `host:port`), `quay.io/jupyter/r-notebook` (no tag:
z2jh's image `name` fields, written apart from their `tag`), taints (`example.com/gpu:NoSchedule`),
URLs, paths and comment lines do not. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from image_awaiter.core.errors import UsageError
from image_awaiter.core.references import parse_image

# Where words end in configuration text: whitespace, quotes, separators of lists and key=values.
_SEPARATORS = re.compile(r"[\s'\"`,;=()\[\]{}<>|\\]+")
_TAGGED = re.compile(r"^[a-z0-9][^/:@]*(?::\d+)?(?:/[^/:@]+)+:[\w][\w.-]{0,127}$", re.IGNORECASE)
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# `key:Effect` of a taint (`node.kubernetes.io/gpu:NoSchedule`) parses as a tagged reference too.
_TAINT_EFFECTS = (":NoSchedule", ":PreferNoSchedule", ":NoExecute")


def looks_like_image(word: str) -> bool:
    """Whether `word` is a reference this module counts (see the module's docstring)."""
    if "://" in word or word.startswith(("/", ".", "-")) or word.endswith(_TAINT_EFFECTS):
        return False
    if not (_DIGEST.search(word) or _TAGGED.match(word)):
        return False
    try:
        parse_image(word)
    except UsageError:
        return False
    return True


def image_words(text: str) -> tuple[str, ...]:
    """Every word of `text` that looks like an image reference, once each, in order; comment
    lines (`#` first) are left out, as code quotes images there (`FROM jupyterhub/k8s-hub:v0.4`
    in z2jh's own `jupyterhub_config.py`)."""
    found: dict[str, None] = {}
    if "#" in text:
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for word in _SEPARATORS.split(text):
        word = word.rstrip(".:")
        if word and looks_like_image(word):
            found.setdefault(word, None)
    return tuple(found)


def image_strings(tree: Any, *, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, reference) for every image-like word in the strings of a YAML/JSON tree."""
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from image_strings(value, path=f"{path}.{key}" if path else str(key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from image_strings(value, path=f"{path}[{index}]")
    elif isinstance(tree, str):
        for word in image_words(tree):
            yield path, word

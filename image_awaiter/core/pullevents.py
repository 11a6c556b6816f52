"""Kubelet image events as facts: what was pulled, how long it took, how big it was.

The kubelet records one event per image and container (pkg/kubelet/images/image_manager.go):

- `Pulling`: `Pulling image "X"` (old kubelets: `pulling image "X"`);
- `Pulled`:  `Successfully pulled image "X" in 3.2s (3.2s including waiting). Image size: N bytes.`
  The size came with kubernetes#121719 (1.30), "including waiting" with #111772 (2022), the
  duration with #91563 (2020); older kubelets print only `Successfully pulled image "X"`.
  For a cached image: `Container image "X" already present on machine` (newer kubelets,
  KEP-2535, append ` and can be accessed by the pod`);
- `Failed`:  `Failed to pull image "X": <the runtime's error>`;
- `BackOff`: `Back-off pulling image "X"`; the container's waiting message of the same text
  appends `: <reason>: <the error>` since kubernetes#127918 (1.32).

Durations are Go `time.Duration` strings (`1m2.5s`, `850ms`, `1h2m3.4s`). The first figure is
the pull itself, the second includes time queued behind other pulls on the node
(serializeImagePulls, maxParallelImagePulls). Image texts stay as the event wrote them. A
figure in a shape not known here is left None rather than failing the whole event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_QUOTED = r'"((?:[^"\\]|\\.)*)"'
# Newer kubectl describe shows events as "spec.containers{x}: <message>"; tolerate it.
_FIELD_PREFIX = r"(?:spec\.(?:init|ephemeral)?[cC]ontainers\{[^}]*\}:\s*)?"
_PULLED = re.compile(rf"^{_FIELD_PREFIX}Successfully pulled image {_QUOTED}(.*)$", re.S)
# The figures after the image, each looked for on its own so that one new shape (say a
# humanised size) does not lose the others.
_PULL_TOOK = re.compile(r"^ in (\S+?)\.?(?:\s|$)")
_PULL_WAITED = re.compile(r"\((\S+) including waiting\)")
_PULL_SIZE = re.compile(r"Image size: (\d+) bytes")
_PRESENT = re.compile(rf"^{_FIELD_PREFIX}Container image {_QUOTED} already present on machine")
_PULLING = re.compile(rf"^{_FIELD_PREFIX}[pP]ulling image {_QUOTED}$")
_FAILED = re.compile(rf"^{_FIELD_PREFIX}Failed to pull image {_QUOTED}: (.*)$", re.S)
# The cause after the image is "<reason>: <error>", e.g. "ErrImagePull: rpc error: ...";
# only the kubelet's own reasons are stripped, so "toomanyrequests: ..." stays whole.
_PULL_REASON = r"(?:Err\w+|RegistryUnavailable|SignatureValidationFailed):\s*"
_BACKOFF = re.compile(
    rf"^{_FIELD_PREFIX}Back-off pulling image {_QUOTED}(?::\s*(?:{_PULL_REASON})?(.*))?$", re.S
)
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5, what Go prints
    "μs": 1e-6,  # U+03BC, also accepted by Go's ParseDuration
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


@dataclass(frozen=True)
class Pulled:
    """A completed pull; figures are None where the kubelet version does not report them."""

    image: str
    seconds: float | None = None
    seconds_including_waiting: float | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class AlreadyPresent:
    image: str


@dataclass(frozen=True)
class Pulling:
    image: str


@dataclass(frozen=True)
class PullFailed:
    """A failed attempt; `error` is the runtime's text, for `pullerrors.classify_message`."""

    image: str
    error: str


@dataclass(frozen=True)
class BackingOff:
    """The kubelet waits before retrying; `error` is the last runtime error when it says so."""

    image: str
    error: str | None = None


PullFact = Pulled | AlreadyPresent | Pulling | PullFailed | BackingOff


def parse_event(reason: str, message: str) -> PullFact | None:
    """The fact in one kubelet event, or None when the event is not about pulling an image."""
    text = message.strip()
    if reason == "Pulled":
        return _pulled(text)
    if reason == "Pulling":
        pulling = _PULLING.match(text)
        return Pulling(_unquote(pulling.group(1))) if pulling else None
    if reason == "Failed":
        failed = _FAILED.match(text)
        return PullFailed(_unquote(failed.group(1)), failed.group(2)) if failed else None
    if reason == "BackOff":
        backoff = _BACKOFF.match(text)
        return BackingOff(_unquote(backoff.group(1)), backoff.group(2)) if backoff else None
    return None


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration string (`1h2m3.4s`, `850ms`, `0s`); None if it is not one."""
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-")
    if body == "0":
        return 0.0
    parts = _GO_DURATION_PART.findall(body)
    if not parts or "".join(number + unit for number, unit in parts) != body:
        return None
    return sign * sum(float(number) * _GO_UNIT_SECONDS[unit] for number, unit in parts)


def _pulled(text: str) -> Pulled | AlreadyPresent | None:
    present = _PRESENT.match(text)
    if present:
        return AlreadyPresent(_unquote(present.group(1)))
    pulled = _PULLED.match(text)
    if not pulled:
        return None
    image, rest = pulled.groups()
    took = _PULL_TOOK.match(rest)
    waited = _PULL_WAITED.search(rest)
    size = _PULL_SIZE.search(rest)
    return Pulled(
        image=_unquote(image),
        seconds=parse_go_duration(took.group(1)) if took else None,
        seconds_including_waiting=parse_go_duration(waited.group(1)) if waited else None,
        size_bytes=int(size.group(1)) if size else None,
    )


def _unquote(quoted: str) -> str:
    """Undo Go's %q escaping of the two characters that can occur in an image reference."""
    return quoted.replace('\\"', '"').replace("\\\\", "\\")

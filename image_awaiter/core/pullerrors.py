"""Pull failures, classified: can waiting help, and what should the operator do?

The kubelet reports why an image pull failed in two places: the container's waiting state
(`reason` such as `ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`, `ErrImageNeverPull`,
and a `message` holding the runtime's own error text) and the pod's events (`Failed` with
"Failed to pull image ...", `InspectFailed`, `ErrImageNeverPull`). The runtime's text is all
there is to tell a missing tag from a registry outage, so this module matches it against the
phrases containerd, CRI-O and Docker really print (see tests/unit/test_pullerrors.py for the
collected messages and their sources).

Three classes come out:

- `permanent`: waiting cannot help (tag or repository not found, access denied, an invalid
  reference, pull policy Never without the image). The run can fail at once.
- `transient`: the kubelet retries and it may work (timeouts, TLS and connection errors, 429,
  5xx, a full disk). An unknown message is transient too: failing fast on a guess is worse than
  waiting out a grace period.
- `platform-mismatch`: the image has no variant for the node's OS/architecture. No user pod
  could run it there either, so the node is better excluded than failed.

Rules are checked in order and the first match wins; the order matters, because the texts
overlap: containerd's platform message ends in "not found", Docker Hub's rate limit says
"unauthenticated", and a "pull access denied, repository does not exist" names both a missing
repository and missing credentials.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

PullErrorClass = Literal["permanent", "transient", "platform-mismatch"]
PullErrorKind = Literal[
    "not-found",
    "unauthorized",
    "invalid-reference",
    "never-pull",
    "rate-limited",
    "timeout",
    "tls",
    "connection",
    "server-error",
    "disk-pressure",
    "no-platform-variant",
    "unknown",
]

# Container waiting reasons that mean "the image could not be pulled" (kubelet's
# pkg/kubelet/images/types.go); any other waiting reason is not a pull failure.
PULL_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "ErrImageInspect",
        "RegistryUnavailable",
        "SignatureValidationFailed",
    }
)


@dataclass(frozen=True)
class Platform:
    """An OS/architecture pair as a runtime names it in a "no variant" message."""

    os: str
    architecture: str
    variant: str | None = None

    def text(self) -> str:
        """`linux/arm64`: the variant is left out, nodes are labelled by os and arch only."""
        return f"{self.os}/{self.architecture}"


@dataclass(frozen=True)
class PullError:
    """One classified pull failure: what happened, whether waiting helps, what to do."""

    error_class: PullErrorClass
    kind: PullErrorKind
    advice: str
    message: str
    platform: Platform | None = None


@dataclass(frozen=True)
class _Rule:
    error_class: PullErrorClass
    kind: PullErrorKind
    phrases: str  # alternatives of a pattern
    advice: str

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        """Compiled when a message is first classified: the 12 rules' patterns took 7 ms of
        every start, and a `check` classifies nothing."""
        return re.compile(self.phrases)


def _rule(error_class: PullErrorClass, kind: PullErrorKind, advice: str, *phrases: str) -> _Rule:
    # Phrases are lowercase and matched against the lowercased message: cheaper than IGNORECASE.
    return _Rule(error_class, kind, "|".join(phrases), advice)


_FIX_TAG = "fix the tag or repository name, or push the image"
_ADD_SECRET = "add an imagePullSecret with access to the repository (or check the one given)"
_WAIT = "wait for the registry; the kubelet retries"

# First match wins; see the module docstring for why the order is what it is.
_RULES: tuple[_Rule, ...] = (
    _rule(
        "platform-mismatch",
        "no-platform-variant",
        "build or pick an image for this node's platform, or keep such nodes out of the target",
        r"no match for platform in manifest",  # containerd
        r"no matching manifest for \S+ in the manifest list",  # docker
        r"no image found in (?:manifest list|image index) for architecture",  # CRI-O / podman
        r"does not match the specified platform",  # docker 24+
    ),
    _rule(
        "permanent",
        "never-pull",
        "pre-load the image on the node or change imagePullPolicy from Never",
        r"is not present with pull policy of never",
    ),
    _rule(
        "permanent",
        "invalid-reference",
        "fix the image reference (lowercase repository, one tag, no scheme)",
        r"invalid reference format",
        r"couldn't parse image (?:reference|name)",
        r"failed to apply default image tag",
        r"repository name must be (?:lowercase|canonical)",
    ),
    _rule(
        "transient",
        "rate-limited",
        "wait for the registry's rate limit to reset, or pull with credentials / from a mirror",
        r"toomanyrequests",
        r"\b429(?:\s|$)",
        r"too many requests",
        r"pull rate limit",
    ),
    _rule(
        "transient",
        "disk-pressure",
        "free disk space on the node (image garbage collection, a larger disk)",
        r"no space left on device",
        r"disk quota exceeded",
    ),
    _rule(
        "transient",
        "server-error",
        _WAIT,
        r"\b50[0-4](?:\s|$)",
        r"internal server error",
        r"bad gateway",
        r"service (?:temporarily )?unavailable",
        r"gateway time-?out",
    ),
    _rule(
        "transient",
        "timeout",
        _WAIT,
        r"i/o timeout",
        r"timed out",
        r"deadline ?exceeded",
        r"timeout exceeded",
        r"handshake timeout",
    ),
    _rule(
        "transient",
        "tls",
        "trust the registry's CA on the node (or fix its certificate); the kubelet retries",
        r"x509: ",
        r"\btls: ",
        r"server gave http response to https client",
        r"certificate (?:signed by unknown authority|has expired|is not valid)",
    ),
    _rule(
        "transient",
        "connection",
        _WAIT,
        r"connection refused",
        r"connection reset",
        r"no such host",
        r"server misbehaving",
        r"temporary failure in name resolution",
        r"network is unreachable",
        r"no route to host",
        r"broken pipe",
        r"proxyconnect",
        r"context canceled",
        r"request canceled",
        r"pinging (?:docker|container) registry",
        r"registry is unavailable",
        r"registryunavailable",
        r": (?:unexpected )?eof\b",
    ),
    # Docker Hub answers "does not exist or may require authorization" for a repository that
    # does not exist as well as for a private one; a typo is the common case, so not-found.
    _rule(
        "permanent",
        "not-found",
        f"{_FIX_TAG}; if the repository is private, {_ADD_SECRET}",
        r"repository does not exist",
        r"does not exist or no pull access",
    ),
    _rule(
        "permanent",
        "unauthorized",
        _ADD_SECRET,
        r"unauthorized",
        r"\b40[13](?:\s|$)",
        r"forbidden",
        r"access denied",
        r"denied:",
        r"requested access to the resource is denied",
        r"authentication required",
        r"no basic auth credentials",
        r"insufficient_scope",
        r"not authorized",
    ),
    _rule(
        "permanent",
        "not-found",
        _FIX_TAG,
        r"manifest unknown",
        r"name unknown",
        r"not found",
        r"\b404(?:\s|$)",
    ),
)

_UNKNOWN_ADVICE = "see the runtime's message; the kubelet retries"
_PLATFORM_DOCKER = re.compile(r"no matching manifest for (\w+)/(\w+)(?:/(\w+))?", re.I)
_PLATFORM_CRIO = re.compile(
    r'for architecture "?(\w+)"?,(?: variant "?(\w*)"?,)? OS "?(\w+)"?', re.IGNORECASE
)


@functools.lru_cache(maxsize=4096)
def classify_message(message: str) -> PullError:
    """Classify a runtime's pull error text; unknown text is transient.

    Cached: thousands of nodes failing on one image report the same text at every evaluation.
    """
    lowered = message.lower()
    for rule in _RULES:
        if rule.pattern.search(lowered):
            platform = _platform_in(message) if rule.kind == "no-platform-variant" else None
            return PullError(rule.error_class, rule.kind, rule.advice, message, platform)
    return PullError("transient", "unknown", _UNKNOWN_ADVICE, message)


def classify_waiting(reason: str, message: str) -> PullError | None:
    """Classify a container's waiting state; None when it is not a pull failure at all."""
    if reason not in PULL_WAITING_REASONS:
        return None
    if reason == "InvalidImageName":
        return _forced("invalid-reference", message)
    if reason == "ErrImageNeverPull":
        return _forced("never-pull", message)
    from image_awaiter.core.pullevents import BackingOff, parse_event  # see classify_event

    # The waiting message of ImagePullBackOff is the text of the kubelet's BackOff event.
    backoff = parse_event("BackOff", message)
    if isinstance(backoff, BackingOff):
        if backoff.error is None:
            return PullError("transient", "unknown", _UNKNOWN_ADVICE, message)
        return _with_message(classify_message(backoff.error), message)
    return classify_message(message)


def classify_event(reason: str, message: str) -> PullError | None:
    """Classify a kubelet event on the pod; None when the event says nothing about a cause.

    `Failed` events come in pairs: "Failed to pull image "x": <cause>" carries the cause,
    "Error: ErrImagePull" / "Error: ImagePullBackOff" does not (None).
    """
    text = message.strip()
    if reason == "ErrImageNeverPull":
        return _forced("never-pull", text)
    if reason == "InspectFailed" and "failed to apply default image tag" in text.lower():
        return _forced("invalid-reference", text)
    # Imported here: its 9 patterns and 5 dataclasses are start-up time a check never uses.
    from image_awaiter.core.pullevents import BackingOff, PullFailed, parse_event

    fact = parse_event(reason, text)
    if isinstance(fact, PullFailed):
        return classify_message(fact.error)
    if isinstance(fact, BackingOff) and fact.error is not None:
        return _with_message(classify_message(fact.error), text)
    return None


def most_informative(*errors: PullError | None) -> PullError | None:
    """The first error that names a cause, else the first one given, else None.

    A container's waiting state often says only "Back-off pulling image" while the pod's
    `Failed` event still carries the runtime's text; pass both and get the telling one.
    """
    given = [error for error in errors if error is not None]
    return next((error for error in given if error.kind != "unknown"), given[0] if given else None)


def platform_reason(error: PullError, *, node_os: str, node_arch: str) -> str:
    """The exclusion reason for a platform mismatch: `image has no linux/arm64 variant`.

    The runtime's own words win when it names the platform it looked for (CRI-O, Docker);
    containerd does not, so the node's labels stand in.
    """
    platform = error.platform or Platform(node_os, node_arch)
    return f"image has no {platform.text()} variant"


def _forced(kind: PullErrorKind, message: str) -> PullError:
    rule = next(r for r in _RULES if r.kind == kind)
    return PullError(rule.error_class, rule.kind, rule.advice, message)


def _with_message(error: PullError, message: str) -> PullError:
    return PullError(error.error_class, error.kind, error.advice, message, error.platform)


def _platform_in(message: str) -> Platform | None:
    docker = _PLATFORM_DOCKER.search(message)
    if docker:
        return Platform(docker.group(1), docker.group(2), docker.group(3))
    crio = _PLATFORM_CRIO.search(message)
    if crio:
        return Platform(crio.group(3), crio.group(1), crio.group(2) or None)
    return None

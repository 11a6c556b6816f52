"""The simulated image registry and the runtimes' ways of naming images.

Reference normalisation here is written independently of the product's own parser on purpose:
the simulation must not share the code it is used to test.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field

from simcluster.nodes import failures

_VALID = re.compile(
    r"^(?:(?P<domain>(?:[a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+(?::\d+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)


@dataclass(frozen=True)
class Ref:
    name: str  # docker.io/library/busybox
    tag: str | None
    digest: str | None

    @property
    def familiar(self) -> str:
        name = self.name.removeprefix("docker.io/")
        return name.removeprefix("library/") if name.count("/") == 1 else name

    @property
    def key(self) -> str:
        return (
            f"{self.name}@{self.digest}" if self.digest else f"{self.name}:{self.tag or 'latest'}"
        )


def parse(ref: str) -> Ref | None:
    match = _VALID.match(ref)
    if not match:
        return None
    domain, path = match.group("domain"), match.group("path")
    if domain and "." not in domain and ":" not in domain and domain != "localhost":
        path, domain = f"{domain.lower()}/{path}", None  # 'team/app' is a docker hub path
        if domain is None and not _VALID.match(path):
            return None
    if domain is None or domain in ("index.docker.io",):
        domain = "docker.io"
        if "/" not in path:
            path = f"library/{path}"
    return Ref(f"{domain}/{path}", match.group("tag"), match.group("digest"))


DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64")
RUNTIME_KINDS = frozenset(failures.KINDS - {"invalid-reference"})


@dataclass
class Image:
    name: str
    tag: str | None
    digest: str
    size_bytes: int
    has_shell: bool
    pull_seconds: float
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS
    failure: str | None = None  # a failures.KINDS entry every pull of it meets


@dataclass
class Outage:
    """Pulls from a registry host (or of one image) fail with a transient error until `until`
    (monotonic; None: until ended)."""

    target: str  # registry host ('quay.io') or an image key
    kind: str
    until: float | None
    started: float = field(default_factory=time.monotonic)

    def covers(self, ref: Ref, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        return self.target in (ref.name.split("/", 1)[0], ref.key)


class Registry:
    def __init__(self, *, unknown: str = "present") -> None:
        if unknown not in ("present", "missing"):
            raise ValueError(f"unknown_images must be 'present' or 'missing', not {unknown!r}")
        self._images: dict[str, Image] = {}
        self._lock = threading.Lock()
        self._implicit: set[str] = set()  # keys nobody added: they exist only while lenient
        # False: pulling an image nobody added fails "not found" (`serve` sets this)
        self.unknown_images_exist = unknown == "present"
        self.outages: list[Outage] = []

    def add(
        self,
        ref: str,
        *,
        size_bytes: int = 10 * 1024**2,
        digest: str | None = None,
        has_shell: bool = True,
        pull_seconds: float = 1.0,
        platforms: tuple[str, ...] = DEFAULT_PLATFORMS,
        missing: bool = False,
        denied: bool = False,
        failure: str | None = None,
    ) -> Image:
        """Push an image. `missing=True`: the tag does not exist (pulls fail 'not found');
        `denied=True`: pulls are refused (401/403); `failure`: any failures.KINDS entry."""
        parsed = parse(ref)
        if parsed is None:
            raise ValueError(f"invalid reference {ref!r}")
        if failure is not None and failure not in RUNTIME_KINDS:
            raise ValueError(
                f"a registry failure is one of {sorted(RUNTIME_KINDS)}, not {failure!r}"
                " (an invalid reference is refused by the kubelet: use an unparseable reference"
                ' or sim.fail_pull(ref, kind="invalid-reference"))'
            )
        image = Image(
            parsed.name,
            parsed.tag or ("latest" if not parsed.digest else None),
            digest or parsed.digest or _digest(parsed.key),
            size_bytes,
            has_shell,
            pull_seconds,
            tuple(platforms),
            failure or ("tag-not-found" if missing else "unauthorized" if denied else None),
        )
        with self._lock:
            self._implicit.discard(parsed.key)
            self._images[parsed.key] = image
            self._images[f"{parsed.name}@{image.digest}"] = image
        return image

    def known(self, ref: str) -> bool:
        """Whether the reference was added (lookup invents any other valid one, implicitly)."""
        parsed = parse(ref)
        with self._lock:
            return (
                parsed is not None
                and parsed.key in self._images
                and parsed.key not in self._implicit
            )

    def lookup(self, ref: str) -> Image | None:
        """The image a reference resolves to; unknown valid references exist (10 MB, 0.2 s)."""
        parsed = parse(ref)
        if parsed is None:
            return None
        with self._lock:
            found = self._images.get(parsed.key)
        if found is None:
            found = self.add(ref, pull_seconds=0.2)
            with self._lock:
                self._implicit.add(parsed.key)
        return found

    def missing_kind(self, ref: Ref) -> str | None:
        """Why a pull of a reference never added fails, when unknown images are missing:
        the repository exists with other tags, or not at all."""
        if self.unknown_images_exist:
            return None
        with self._lock:
            if ref.key in self._images and ref.key not in self._implicit:
                return None
            names = {image.name for key, image in self._images.items() if key not in self._implicit}
        return "tag-not-found" if ref.name in names else "repository-not-found"

    def outage(self, ref: Ref, now: float) -> Outage | None:
        with self._lock:
            return next((o for o in self.outages if o.covers(ref, now)), None)

    def start_outage(self, target: str, *, kind: str, until: float | None) -> Outage:
        outage = Outage(target, kind, until)
        with self._lock:
            self.outages.append(outage)
        return outage

    def end_outage(self, target: str | None = None) -> None:
        with self._lock:
            self.outages = [o for o in self.outages if target is not None and o.target != target]


def _digest(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def image_names(image: Image, runtime: str) -> list[str]:
    """node.status.images[].names in the runtime's style: digests first, then tags, at most 5."""
    ref = Ref(image.name, image.tag, None)
    base = ref.familiar if runtime == "docker" else image.name
    names = [f"{base}@{image.digest}"]
    if image.tag:
        names.append(f"{base}:{image.tag}")
    return names[:5]


def image_id(image: Image, runtime: str) -> str:
    ref = Ref(image.name, image.tag, None)
    if runtime == "docker":
        return f"docker-pullable://{ref.familiar}@{image.digest}"
    return f"{image.name}@{image.digest}"

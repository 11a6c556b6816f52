"""The simulated image registry and the runtimes' ways of naming images.

Reference normalisation here is written independently of the product's own parser on purpose:
the simulation must not share the code it is used to test.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass

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


@dataclass
class Image:
    name: str
    tag: str | None
    digest: str
    size_bytes: int
    has_shell: bool
    pull_seconds: float


class Registry:
    def __init__(self) -> None:
        self._images: dict[str, Image] = {}
        self._lock = threading.Lock()
        self._implicit: set[str] = set()  # keys nobody added: they exist only while lenient
        self.unknown_images_exist = True  # False: pulling an image nobody added fails

    def add(
        self,
        ref: str,
        *,
        size_bytes: int = 10 * 1024**2,
        digest: str | None = None,
        has_shell: bool = True,
        pull_seconds: float = 1.0,
    ) -> Image:
        parsed = parse(ref)
        if parsed is None:
            raise ValueError(f"invalid reference {ref!r}")
        image = Image(
            parsed.name,
            parsed.tag or ("latest" if not parsed.digest else None),
            digest or parsed.digest or _digest(parsed.key),
            size_bytes,
            has_shell,
            pull_seconds,
        )
        with self._lock:
            self._implicit.discard(parsed.key)
            self._images[parsed.key] = image
            self._images[f"{parsed.name}@{image.digest}"] = image
        return image

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

    def known(self, ref: str) -> bool:
        """Whether `ref` was added (or unknown images are taken to exist)."""
        parsed = parse(ref)
        if parsed is None:
            return False
        with self._lock:
            return self.unknown_images_exist or (
                parsed.key in self._images and parsed.key not in self._implicit
            )


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

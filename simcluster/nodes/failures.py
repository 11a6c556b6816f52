"""Why a simulated pull fails, and what each runtime says about it.

A failure kind (`tag-not-found`, `unauthorized`, `server-error`, ...) is what the test sets up;
the text the kubelet shows is the real runtime message for that kind from `messages.py`, chosen
by the node's runtime (containerd, CRI-O, Docker) and filled in with the image and the node's
platform. `invalid-reference` is not a runtime message: the kubelet refuses the reference itself
(`InvalidImageName`).
"""

from __future__ import annotations

from dataclasses import dataclass

from simcluster.nodes import messages

# kind -> (messages.PULL_ERRORS kind, which row of that kind per runtime)
_ROWS: dict[str, tuple[str, dict[str, int]]] = {
    "tag-not-found": ("not-found", {"containerd": 0, "cri-o": 0, "docker": 0}),
    # Docker Hub answers a repository that does not exist with "denied"; CRI-O prints just that.
    "repository-not-found": ("not-found", {"containerd": 1, "docker": 1}),
    "unauthorized": ("unauthorized", {"containerd": 0, "cri-o": 0, "docker": 0}),
    "rate-limited": ("rate-limited", {"containerd": 0, "cri-o": 0, "docker": 0}),
    "timeout": ("timeout", {"containerd": 0, "cri-o": 0, "docker": 0}),
    "tls": ("tls", {"containerd": 0, "cri-o": 0, "docker": 0}),
    "connection-refused": ("connection", {"containerd": 0, "cri-o": 0, "docker": 0}),
    "server-error": ("server-error", {"containerd": 1, "cri-o": 0, "docker": 0}),  # 503
    "disk-pressure": ("disk-pressure", {"containerd": 0, "cri-o": 0, "docker": 0}),
    "no-platform-variant": ("no-platform-variant", {"containerd": 0, "cri-o": 0, "docker": 0}),
}
_FALLBACK = {"repository-not-found": ("unauthorized", 0)}  # CRI-O: "requested access ... denied"

PERMANENT = frozenset({"tag-not-found", "repository-not-found", "unauthorized"})
TRANSIENT = frozenset(
    {"rate-limited", "timeout", "tls", "connection-refused", "server-error", "disk-pressure"}
)
KINDS = PERMANENT | TRANSIENT | {"no-platform-variant", "invalid-reference"}

# Simulated seconds an attempt takes before it fails: a refused connection or a 404 answers at
# once, a dial timeout waits out the runtime's 30 s.
_FAIL_AFTER = {"timeout": 30.0}
FAIL_AFTER_DEFAULT = 0.5


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    arch: str = "amd64"
    variant: str = ""

    @property
    def text(self) -> str:
        """`linux/arm64/v8` as Docker prints it; `linux/amd64`."""
        return "/".join(p for p in (self.os, self.arch, self.variant) if p)

    def supported_by(self, platforms: tuple[str, ...]) -> bool:
        """Whether an image built for `platforms` ('linux/arm64', 'linux/arm64/v8') runs here."""
        for entry in platforms:
            os, _, rest = entry.partition("/")
            arch, _, variant = rest.partition("/")
            if (os, arch) == (self.os, self.arch) and variant in ("", self.variant):
                return True
        return False


def platform_of(labels: dict[str, str], node_info: dict[str, str]) -> Platform:
    """A node's platform from its kubernetes.io/os|arch labels, else status.nodeInfo."""
    os = labels.get("kubernetes.io/os") or node_info.get("operatingSystem") or "linux"
    arch = labels.get("kubernetes.io/arch") or node_info.get("architecture") or "amd64"
    return Platform(os, arch, "v8" if arch == "arm64" else "")


def runtime_message(
    kind: str, *, runtime: str, image: str, ref: str, platform: Platform = Platform()
) -> str:
    """The runtime's error text for a pull of `image` (as written; `ref` normalised)."""
    if kind not in _ROWS:
        raise ValueError(f"unknown pull failure kind {kind!r}; one of {sorted(_ROWS)}")
    table_kind, rows = _ROWS[kind]
    style = runtime if runtime in ("containerd", "cri-o", "docker") else "containerd"
    if style not in rows:
        table_kind, index = _FALLBACK[kind]
    else:
        index = rows[style]
    matching = [e for e in messages.PULL_ERRORS if e.runtime == style and e.kind == table_kind]
    text = messages.render(matching[index].text, image=image, ref=ref)
    if kind == "no-platform-variant":
        # The table's rows were captured on arm64 nodes; say the node's own platform.
        text = text.replace("linux/arm64/v8", platform.text).replace(
            "architecture arm64, variant v8, OS linux",
            f"architecture {platform.arch}, variant {platform.variant}, OS {platform.os}",
        )
    return text


def fail_after(kind: str | None) -> float:
    return _FAIL_AFTER.get(kind or "", FAIL_AFTER_DEFAULT)

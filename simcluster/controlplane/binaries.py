"""Where the real control plane's binaries live: a cache outside the clone, keyed by the pinned
Kubernetes release and by a hash of the wrapper modules and the build recipe, so that a change
to either builds anew and every later run (a fresh clone, CI on the same machine) builds
nothing. `make control-plane` fills it (`building.py`); the harness only reads it."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "controlplane"
KUBERNETES_MODULE = MODULES / "kubernetes"
ETCD_MODULE = MODULES / "etcd"
KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
COMMANDS = ("etcd", *KUBERNETES_COMMANDS)
BUILD_HINT = "make control-plane"
# Environment overrides: a directory holding all five binaries (built elsewhere), or the cache.
BIN_ENV = "IMAGE_AWAITER_CONTROL_PLANE_BIN"
CACHE_ENV = "IMAGE_AWAITER_CACHE"
# The recipe is part of the cache key: static binaries, no local paths in them.
GO_ENV = {"CGO_ENABLED": "0"}
GO_FLAGS = ("-trimpath", "-buildvcs=false")


class MissingBinaries(RuntimeError):
    """The control plane's binaries are not built; the message says how to build them."""

    def __init__(self, *, missing: list[str], where: Path) -> None:
        super().__init__(
            f"the real control plane is not built ({', '.join(missing)} missing in {where}): "
            f"run `{BUILD_HINT}` (builds etcd and Kubernetes {kubernetes_version()} with Go "
            "from the module proxy, once per machine)"
        )
        self.missing = missing


def _required_version(go_mod: Path, module: str) -> str:
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", go_mod.read_text(), re.M)
    if found is None:
        raise RuntimeError(f"{go_mod} does not require {module}")
    return found.group(1)


def kubernetes_version() -> str:
    """The pinned release, as `/version` reports it: `v1.36.3`."""
    return _required_version(KUBERNETES_MODULE / "go.mod", "k8s.io/kubernetes")


def etcd_version() -> str:
    return _required_version(ETCD_MODULE / "go.mod", "go.etcd.io/etcd/server/v3")


def kubernetes_ldflags() -> str:
    """Version stamps, so that `/version` and `kubectl version` name the real release (Helm
    checks `gitVersion`); `-s -w` drops the symbol tables (a third of the size)."""
    version = kubernetes_version()
    major, minor = version.lstrip("v").split(".")[:2]
    stamps = {
        "k8s.io/component-base/version": {
            "gitVersion": version,
            "gitMajor": major,
            "gitMinor": minor,
            "gitCommit": "0" * 40,
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
        },
        "k8s.io/client-go/pkg/version": {
            "gitVersion": version,
            "gitMajor": major,
            "gitMinor": minor,
        },
    }
    flags = ["-s", "-w"]
    for package, values in stamps.items():
        flags += [f"-X {package}.{name}={value}" for name, value in values.items()]
    return " ".join(flags)


def recipe_hash() -> str:
    """A hash of everything that decides the binaries: the modules' Go files, go.mod and go.sum,
    and the recipe (a note beside them builds nothing anew)."""
    digest = hashlib.sha256()
    for module in (KUBERNETES_MODULE, ETCD_MODULE):
        for path in sorted(module.iterdir()):
            if path.name in ("go.mod", "go.sum") or path.suffix == ".go":
                digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    recipe = [kubernetes_ldflags(), *GO_FLAGS, *(f"{k}={v}" for k, v in sorted(GO_ENV.items()))]
    digest.update("\0".join(recipe).encode())
    return digest.hexdigest()[:12]


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "image-awaiter"


def bin_dir() -> Path:
    """`~/.cache/image-awaiter/k8s-v1.36.3-<hash>/bin`, unless the environment names another."""
    if os.environ.get(BIN_ENV):
        return Path(os.environ[BIN_ENV])
    return cache_root() / f"k8s-{kubernetes_version()}-{recipe_hash()}" / "bin"


def missing(where: Path | None = None) -> list[str]:
    where = where or bin_dir()
    return [name for name in COMMANDS if not os.access(where / name, os.X_OK)]


def require() -> dict[str, Path]:
    """Every binary's path; `MissingBinaries`, naming `make control-plane`, if one is not built."""
    where = bin_dir()
    absent = missing(where)
    if absent:
        raise MissingBinaries(missing=absent, where=where)
    return {name: where / name for name in COMMANDS}

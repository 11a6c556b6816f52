"""`make control-plane`: build etcd and the Kubernetes commands with Go from the module proxy
into the cache `binaries.bin_dir()` names, once; later runs find them and build nothing.

Builds into a partial directory and renames it into place, under a lock, so that two runs at
once (a developer and a test run) neither build twice nor see half a directory."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from simcluster.controlplane import binaries

GO_FALLBACKS = (Path("/usr/local/go/bin/go"), Path.home() / "go" / "bin" / "go")


def _go() -> str:
    """`go` from PATH, else the official install's place (a CI shell may not have it on PATH)."""
    go = shutil.which("go") or next((str(p) for p in GO_FALLBACKS if p.is_file()), None)
    if go is None:
        raise SystemExit("control-plane: `go` (1.26 or newer) is needed to build the control plane")
    return go


def _run(argv: Sequence[str], *, cwd: Path) -> None:
    env = {**os.environ, **binaries.GO_ENV}
    print(f"control-plane: ({cwd.relative_to(binaries.ROOT)}) {' '.join(argv)}", flush=True)
    subprocess.run(argv, cwd=cwd, env=env, check=True)


def build(*, into: Path) -> None:
    """Build all five binaries into `into` (the Go build cache makes a repeat cheap)."""
    go = _go()
    commands = [f"k8s.io/kubernetes/cmd/{name}" for name in binaries.KUBERNETES_COMMANDS]
    _run(
        [
            go,
            "build",
            *binaries.GO_FLAGS,
            "-ldflags",
            binaries.kubernetes_ldflags(),
            "-o",
            f"{into}/",
            *commands,
        ],
        cwd=binaries.KUBERNETES_MODULE,
    )
    _run(
        [go, "build", *binaries.GO_FLAGS, "-ldflags", "-s -w", "-o", str(into / "etcd"), "."],
        cwd=binaries.ETCD_MODULE,
    )


def ensure() -> Path:
    """The binaries' directory, built first if any binary is missing."""
    target = binaries.bin_dir()
    if not binaries.missing(target):
        print(f"control-plane: {', '.join(binaries.COMMANDS)} already built in {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binaries.missing(target):  # another run built them while we waited
            print(f"control-plane: built meanwhile by another run in {target}")
            return target
        partial = target.parent / f"bin.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        started = time.monotonic()
        build(into=partial)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        print(
            f"control-plane: built Kubernetes {binaries.kubernetes_version()} and etcd "
            f"{binaries.etcd_version()} in {time.monotonic() - started:.0f}s into {target}"
        )
    return target


def main(argv: Sequence[str] = ()) -> int:
    if "--print-dir" in argv:
        print(binaries.bin_dir())
        return 0
    try:
        ensure()
    except subprocess.CalledProcessError as error:
        print(f"control-plane: build failed ({error})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

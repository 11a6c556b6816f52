"""Bytecode for the standard-library modules the CLI imports, for a stdlib that ships none.

The distroless Python image is Debian's libpython3.11-stdlib unpacked without its install
scripts (github.com/GoogleContainerTools/distroless python3/python.bzl), and Debian compiles
.pyc in those scripts, so the image's /usr/lib/python3.11 has no bytecode (distroless issue
#865) and its root filesystem is read-only: every start recompiled each stdlib module the CLI
imports (measured: about 0.65 s of process time, more than all the rest of the fast path).

This lists the stdlib modules that importing the CLI from SITE loads (with this interpreter,
the same minor version as the image's), plus the few a run loads later, and compiles those
files of STDLIB (the image's own sources; the Dockerfile copies them out of the base image)
into OUT, mirroring STDLIB's layout with __pycache__ directories, unchecked-hash like the
application's bytecode. The Dockerfile then copies OUT over the image's stdlib directory.
Compiling the whole stdlib instead would add about 4 MB compressed for modules never loaded.

Usage: python scripts/stdlib_bytecode.py SITE STDLIB OUT [RUNTIME_STDLIB]
  RUNTIME_STDLIB (default STDLIB) is the path recorded in the bytecode: where it runs.
"""

from __future__ import annotations

import json
import py_compile
import subprocess
import sys
import sysconfig
from pathlib import Path

# What the fast path imports, and the modules a real `check` loads after importing them
# (found by listing sys.modules at exit of a run against the simulated cluster): the entry
# point's trimmed imports (lean.py first, as the entry point does), and both configuration
# loaders, which connecting.py imports only when it uses one.
IMPORTS = (
    "image_awaiter.entry",
    "image_awaiter.cli.commands",
    "image_awaiter.run.awaiting",
    "image_awaiter.output.logs",
    "image_awaiter.spec.settings",
    "kubernetes.config.kube_config",
    "kubernetes.config.incluster_config",
    "encodings.idna",
    "difflib",
)


def stdlib_modules(site: Path) -> list[str]:
    """Paths, relative to this interpreter's stdlib, of the source files importing loads."""
    here = sysconfig.get_paths()["stdlib"]
    code = (
        "import importlib, json, sys\n"
        "from image_awaiter import lean\n"
        "lean.install()\n"
        f"for name in {IMPORTS!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({getattr(m, '__file__', None) or '' "
        "for m in list(sys.modules.values())})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-P", "-S", "-s", "-c", code],
        env={"PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    files = [Path(f) for f in json.loads(result.stdout) if f.endswith(".py")]
    return sorted(
        str(f.relative_to(here))
        for f in files
        if f.is_relative_to(here) and "site-packages" not in f.parts
    )


def compile_stdlib(site: Path, stdlib: Path, out: Path, runtime: str) -> list[str]:
    compiled = []
    for relative in stdlib_modules(site):
        source = stdlib / relative
        if not source.is_file():  # a module this interpreter has and the image's has not
            continue
        target = out / Path(relative).parent / "__pycache__"
        target /= f"{Path(relative).stem}.{sys.implementation.cache_tag}.pyc"
        py_compile.compile(
            str(source),
            cfile=str(target),
            dfile=f"{runtime}/{relative}",
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        compiled.append(relative)
    return compiled


if __name__ == "__main__":
    site, stdlib, out = (Path(arg) for arg in sys.argv[1:4])
    runtime = sys.argv[4] if len(sys.argv) > 4 else str(stdlib)
    done = compile_stdlib(site, stdlib, out, runtime)
    print(f"stdlib bytecode: {len(done)} modules compiled into {out}")

"""`make image-size`: reproduce the application layer of Dockerfile.distroless without Docker.

Runs the same steps as the Dockerfile's build stage (pip install --target, then
scripts/prune_site.py, then bytecode compiled as the image ships it, plus the static helper)
into a temporary directory, proves the pruned tree still runs the CLI with and without that
bytecode, then prints the layer's size raw and gzip-compressed (as a registry stores it), with
the bytecode (what the image ships, and what the 10 MB budget is for) and, for comparison,
without. Prints one JSON line with the numbers last. benchmarks/startup.py reuses build_layer
and compile_bytecode to time the CLI's start-up from this very tree.

Usage: python scripts/image_size.py [--keep DIR]   (DIR/app is the layer, bytecode included)
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stdlib_bytecode

ROOT = Path(__file__).resolve().parent.parent
BUDGET_GZIP_MB = 10.0
# Where Dockerfile.distroless puts the tree; recorded in the bytecode as each module's path.
IMAGE_SITE = "/app/site"


def build_layer(work: Path) -> Path:
    site = work / "app" / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-cache-dir",
            "--no-compile",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(ROOT),
        ],
        check=True,
    )
    subprocess.run([sys.executable, str(ROOT / "scripts" / "prune_site.py"), str(site)], check=True)
    helper_out = work / "helper"
    subprocess.run(
        ["make", "-s", "-C", str(ROOT / "helper"), "native", f"OUT={helper_out}"], check=True
    )
    binary = work / "app" / "usr" / "local" / "bin" / "image-awaiter-noop"
    binary.parent.mkdir(parents=True)
    binary.write_bytes((helper_out / "noop").read_bytes())
    binary.chmod(0o755)
    return work / "app"


def compile_bytecode(site: Path) -> None:
    """Compile SITE as the Dockerfile's build stage does (the same command, keep them in step).

    unchecked-hash .pyc files carry a hash of their source instead of its mtime, so the bytes do
    not depend on when the tree was built, and Python loads them without reading the source to
    check them: the root filesystem is read-only and nothing could ever rewrite a stale one.
    -s/-p record the path the image runs them from, whatever directory this build ran in.
    """
    subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(site),
            "-p",
            IMAGE_SITE,
            str(site),
        ],
        check=True,
    )


def strip_bytecode(site: Path) -> None:
    for cache in list(site.rglob("__pycache__")):
        shutil.rmtree(cache)


def prove_it_runs(layer: Path) -> None:
    env = {
        "PYTHONPATH": str(layer / "site"),
        "PATH": os.environ.get("PATH", ""),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for args in (["--help"], ["check", "--image", "busybox", "--kubeconfig", "/nonexistent"]):
        result = subprocess.run(
            [
                sys.executable,
                "-B",
                "-I",
                "-S",
                "-c",
                "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                "from image_awaiter.cli.commands import main; main()",
                str(layer / "site"),
                *args,
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if "Traceback" in result.stderr or result.returncode not in (0, 2):
            raise SystemExit(f"pruned tree is broken ({args}): {result.stderr[-2000:]}")
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from image_awaiter.kube import client; from image_awaiter.run import awaiting; "
        "from image_awaiter.cli import commands; "
        "from kubernetes import config; config.load_incluster_config; "
        "config.load_kube_config; "
        # What prune_site.py defers must still import when first used.
        "import requests_oauthlib, oauthlib.oauth2, dateutil.parser, multiprocessing.pool; "
        "from kubernetes.client import api_client; api_client.parse('2026-11-23T00:00:00Z'); "
        "from docker_image import reference; "
        "reference.Reference.parse_normalized_named('busybox'); print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-B", "-I", "-S", "-c", probe, str(layer / "site")],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.stdout.strip() != "ok":
        raise SystemExit(f"pruned tree cannot import the access layer: {result.stderr[-2000:]}")


def measure(layer: Path) -> dict[str, float]:
    raw = sum(p.stat().st_size for p in layer.rglob("*") if p.is_file())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(layer, arcname=".")
    tar_bytes = buffer.getvalue()
    compressed = gzip.compress(tar_bytes, compresslevel=6)
    return {
        "files": sum(1 for p in layer.rglob("*") if p.is_file()),
        "raw_mb": round(raw / 1e6, 2),
        "tar_mb": round(len(tar_bytes) / 1e6, 2),
        "gzip_mb": round(len(compressed) / 1e6, 2),
        "budget_gzip_mb": BUDGET_GZIP_MB,
    }


def main() -> int:
    keep = Path(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[1] == "--keep" else None
    with tempfile.TemporaryDirectory(prefix="image-size-") as tmp:
        work = keep or Path(tmp)
        layer = build_layer(work)
        prove_it_runs(layer)
        without = measure(layer)
        compile_bytecode(layer / "site")
        prove_it_runs(layer)
        numbers = measure(layer)
        stdlib = work / "stdlib-bytecode"
        stdlib_bytecode.compile_stdlib(
            layer / "site", Path(sysconfig.get_paths()["stdlib"]), stdlib, "/usr/lib/python3.11"
        )
        stdlib_layer = measure(stdlib)
    numbers.update({f"no_bytecode_{key}": without[key] for key in ("files", "raw_mb", "gzip_mb")})
    numbers.update({f"stdlib_bytecode_{key}": stdlib_layer[key] for key in ("files", "gzip_mb")})
    print(
        f"application layer without bytecode: {without['files']} files, {without['raw_mb']} MB "
        f"raw, {without['gzip_mb']} MB gzip-compressed"
    )
    print(
        f"application layer as shipped, with bytecode: {numbers['files']} files, "
        f"{numbers['raw_mb']} MB raw, {numbers['gzip_mb']} MB gzip-compressed "
        f"(budget {BUDGET_GZIP_MB} MB)"
    )
    print(
        f"plus the stdlib bytecode layer (scripts/stdlib_bytecode.py, this Python's stdlib standing"
        f" in for the base image's): {stdlib_layer['files']} files, "
        f"{stdlib_layer['gzip_mb']} MB gzip-compressed"
    )
    print(json.dumps(numbers))
    return 0 if numbers["gzip_mb"] <= BUDGET_GZIP_MB else 1


if __name__ == "__main__":
    sys.exit(main())

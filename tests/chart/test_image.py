"""The distroless image without Docker: hadolint on the Dockerfile, the static helper built and
run from an empty directory, and the application layer's size, bytecode and health."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELPER_DIR = ROOT / "build" / "helper"
PT_INTERP = 3


def test_hadolint_passes_on_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile.distroless")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_builds_a_nonroot_distroless_final_stage() -> None:
    text = (ROOT / "Dockerfile.distroless").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 3
    assert stages[-1].startswith("FROM gcr.io/distroless/python3") and "nonroot" in stages[-1]
    assert stages[0] == f"{stages[-1]} AS distroless"  # its stdlib is the one compiled
    assert 'ENTRYPOINT ["python3", "-m", "image_awaiter"]' in text
    assert "/usr/local/bin/image-awaiter-noop" in text
    assert "scripts/prune_site.py" in text and "TARGETARCH" in text


def test_the_dockerfile_compiles_reproducible_bytecode_after_pruning() -> None:
    text = (ROOT / "Dockerfile.distroless").read_text()
    pruned = text.index("python scripts/prune_site.py /out/site")
    compiled = text.index("python -m compileall")
    assert pruned < compiled
    command = text[compiled : text.index("\n\n", compiled)]
    assert "--invalidation-mode unchecked-hash" in command
    assert "-p /app/site" in command and "/app/site" in text.split("COPY --from=build /out/site")[1]


@pytest.fixture(scope="module")
def helper() -> Path:
    built = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "helper")], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    return HELPER_DIR / "noop"


def _program_headers(binary: bytes) -> list[int]:
    assert binary[:4] == b"\x7fELF" and binary[4] == 2  # 64-bit ELF
    little = binary[5] == 1
    order = "little" if little else "big"
    phoff = int.from_bytes(binary[32:40], order)
    size = int.from_bytes(binary[54:56], order)
    count = int.from_bytes(binary[56:58], order)
    return [
        int.from_bytes(binary[phoff + i * size : phoff + i * size + 4], order) for i in range(count)
    ]


def test_the_helper_is_static_tiny_and_needs_no_interpreter(helper: Path) -> None:
    data = helper.read_bytes()
    assert len(data) < 16 * 1024
    assert PT_INTERP not in _program_headers(data)
    assert b"libc" not in data


def test_the_helper_runs_from_an_empty_directory_and_installs_itself(
    helper: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(helper, empty / "noop")
    assert subprocess.run(["./noop"], cwd=empty, env={}, check=False).returncode == 0
    copied = tmp_path / "emptydir" / "noop"
    copied.parent.mkdir()
    installed = subprocess.run(["./noop", "install", str(copied)], cwd=empty, env={}, check=False)
    assert installed.returncode == 0
    assert os.access(copied, os.X_OK) and copied.read_bytes() == helper.read_bytes()
    assert subprocess.run([str(copied)], env={}, check=False).returncode == 0
    failed = subprocess.run(
        ["./noop", "install", "/nonexistent/dir/noop"],
        cwd=empty,
        env={},
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 1 and "cannot create /nonexistent/dir/noop" in failed.stderr


def test_the_arm64_helper_is_an_aarch64_elf_when_a_cross_compiler_exists(helper: Path) -> None:
    if shutil.which("aarch64-linux-gnu-gcc") is None and not (HELPER_DIR / "noop-arm64").exists():
        pytest.skip("no aarch64 cross compiler here; the Dockerfile builds arm64 natively")
    data = (HELPER_DIR / "noop-arm64").read_bytes()
    assert int.from_bytes(data[18:20], "little") == 183  # EM_AARCH64
    assert PT_INTERP not in _program_headers(data)


def test_install_helper_subcommand_copies_the_helper(helper: Path, tmp_path: Path) -> None:
    dest = tmp_path / "helper" / "noop"
    result = subprocess.run(
        [sys.executable, "-m", "image_awaiter", "install-helper", str(dest)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert subprocess.run([str(dest)], check=False).returncode == 0


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("layer")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "image_size.py"), "--keep", str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    numbers["returncode"] = result.returncode
    numbers["site"] = str(work / "app" / "site")
    return dict(numbers)


def test_the_application_layer_with_its_bytecode_is_within_budget(layer: dict[str, Any]) -> None:
    assert layer["returncode"] == 0
    assert layer["gzip_mb"] <= 10.0
    assert layer["no_bytecode_gzip_mb"] < layer["gzip_mb"]
    site = Path(layer["site"])
    assert not (site / "kubernetes" / "aio").exists()
    assert not (site / "pydantic").exists()
    assert list(site.rglob("__pycache__/*.cpython-*.pyc"))


def _pyc_flags(pyc: Path) -> tuple[int, bytes]:
    """A .pyc header (PEP 552): magic, flags (bit 0: hash-based, bit 1: check source), hash."""
    header = pyc.read_bytes()[:16]
    assert header[:4] == importlib.util.MAGIC_NUMBER, pyc
    return int.from_bytes(header[4:8], "little"), header[8:16]


def test_every_module_the_cli_imports_from_the_layer_ships_unchecked_hash_bytecode(
    layer: dict[str, Any], sim: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    sim.add_node("a", images=("busybox:1.36",))
    listing = tmp_path / "modules.json"
    code = (
        "import atexit, json, sys; sys.path.insert(0, sys.argv.pop(1)); out = sys.argv.pop(1); "
        "atexit.register(lambda: open(out, 'w').write(json.dumps("
        "[m.__file__ for m in list(sys.modules.values()) if getattr(m, '__file__', None)]))); "
        "from image_awaiter.cli.commands import main; main()"
    )
    args = ["check", "--image", "busybox:1.36", "--kubeconfig", str(kubeconfig), "-q"]
    result = subprocess.run(
        [sys.executable, "-B", "-I", "-S", "-c", code, layer["site"], str(listing), *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin"},
    )
    assert result.returncode == 0, result.stderr
    site = Path(layer["site"])
    sources = [
        Path(f)
        for f in json.loads(listing.read_text())
        if f.endswith(".py") and site in Path(f).parents
    ]
    assert any(p.parent.name == "kube" and p.name == "client.py" for p in sources)
    assert any(p.parts[-3:] == ("kubernetes", "client", "api_client.py") for p in sources)
    for source in sources:
        pyc = Path(importlib.util.cache_from_source(str(source)))
        assert pyc.is_file(), f"no bytecode for {source}"
        flags, source_hash = _pyc_flags(pyc)
        assert flags == 0b01, f"{pyc} is not unchecked-hash (flags {flags:#b})"
        assert source_hash == importlib.util.source_hash(source.read_bytes()), pyc


def test_the_bytecode_is_the_same_whatever_directory_it_was_built_in(
    layer: dict[str, Any], tmp_path: Path
) -> None:
    spec = importlib.util.spec_from_file_location("image_size", ROOT / "scripts" / "image_size.py")
    assert spec is not None and spec.loader is not None
    image_size = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(image_size)
    built = []
    for name in ("one", "two"):
        copy = tmp_path / name / "site" / "image_awaiter"
        shutil.copytree(
            Path(layer["site"]) / "image_awaiter",
            copy,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        image_size.compile_bytecode(copy.parent)
        built.append(
            {str(p.relative_to(copy)): p.read_bytes() for p in copy.glob("**/__pycache__/*.pyc")}
        )
    site = Path(layer["site"]) / "image_awaiter"
    shipped = {str(p.relative_to(site)): p.read_bytes() for p in site.glob("**/__pycache__/*.pyc")}
    assert built[0] == built[1] == shipped
    assert (
        b"/app/site/image_awaiter/kube/client.py"
        in shipped[next(n for n in shipped if n.startswith("kube/__pycache__/client."))]
    )


def test_stdlib_bytecode_covers_what_the_cli_imports_and_records_the_image_path(
    layer: dict[str, Any], tmp_path: Path
) -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = tmp_path / "stdlib"
    script = ROOT / "scripts" / "stdlib_bytecode.py"
    result = subprocess.run(
        [sys.executable, str(script), layer["site"], str(stdlib), str(out), "/usr/lib/python3.11"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    shipped = {p.relative_to(out) for p in out.rglob("*.pyc")}
    for module in ("http/client", "ssl", "json/decoder", "email/parser", "logging/__init__"):
        relative = Path(module)
        pyc = (
            relative.parent / "__pycache__" / f"{relative.name}.{sys.implementation.cache_tag}.pyc"
        )
        assert pyc in shipped, module
        flags, source_hash = _pyc_flags(out / pyc)
        assert flags == 0b01
        assert source_hash == importlib.util.source_hash((stdlib / f"{module}.py").read_bytes())
    assert not any(p.parts[0] in ("tkinter", "idlelib", "test", "unittest") for p in shipped)
    assert (
        b"/usr/lib/python3.11/http/client.py"
        in (
            out / "http" / "__pycache__" / f"client.{sys.implementation.cache_tag}.pyc"
        ).read_bytes()
    )


def test_the_pruned_layer_runs_a_real_check_against_the_simulated_cluster(
    layer: dict[str, Any], sim: Any, kubeconfig: Path
) -> None:
    sim.add_node("a", images=("busybox:1.36",))
    code = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); "
        "from image_awaiter.cli.commands import main; main()"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-B",
            "-I",
            "-S",
            "-c",
            code,
            layer["site"],
            "check",
            "--image",
            "busybox:1.36",
            "--kubeconfig",
            str(kubeconfig),
            "--log-format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin"},
    )
    assert result.returncode == 0, result.stderr


def test_prune_site_refuses_a_client_whose_edited_lines_changed(tmp_path: Path) -> None:
    site = tmp_path / "site"
    client = site / "kubernetes" / "client"
    client.mkdir(parents=True)
    (site / "kubernetes" / "__init__.py").write_text('__version__ = "99.0.0"\n')
    (client / "api_client.py").write_text("from pydantic import SecretStr, BaseModel\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "prune_site.py"), str(site)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "prune_site: kubernetes/client/api_client.py changed, expected once: "
        "'from pydantic import SecretStr\\n'"
    )

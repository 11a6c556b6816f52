"""The shape of image_awaiter/, read from its source (AST): folders per layer, the layering
contract by packages, small modules, classes and functions, no upward import, no constructor
parameter lists shared between classes, and one placement model.

Each rule collects what breaks it, and asserts that nothing does (the assertion shows what)."""

from __future__ import annotations

import ast
import textwrap
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "image_awaiter"
LAYERS = ("entry", "cli", "run", "cluster", "output", "kube", "spec", "core")
EDGE_MODULES = {"__init__.py", "__main__.py", "entry.py", "lean.py"}
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 150
MAX_FUNCTION_LINES = 60
SHARED_PARAMETERS = 4  # two constructors taking this many of the same keywords share a list
# Where a pod may run: a node selector and tolerations (and required node affinity terms). One
# class, the placement model, holds them; no other class is named a placement.
PLACEMENT_FIELDS = {"node_selector", "tolerations"}
PLACEMENT_MODEL = "image_awaiter.core.placement.Placement"


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. image_awaiter.run.awaiting
    path: Path
    tree: ast.Module
    lines: int

    @property
    def layer(self) -> str | None:
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def _modules() -> list[Module]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT).with_suffix("")
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        text = path.read_text(encoding="utf-8")
        found.append(Module(".".join(parts), path, ast.parse(text), len(text.splitlines())))
    return found


MODULES = _modules()


def _definitions(
    module: Module,
) -> Iterator[ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _length(node: ast.stmt) -> int:
    """Lines from the `def`/`class` line (decorators not counted) to the last line."""
    assert node.end_lineno is not None
    return node.end_lineno - node.lineno + 1


def _imported(module: Module) -> Iterator[str]:
    package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base


def test_the_package_is_one_folder_per_layer_and_the_edge_modules():
    top = {p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert top - EDGE_MODULES == set(LAYERS) - {"entry"}
    for layer in set(LAYERS) - {"entry"}:
        assert (PACKAGE / layer / "__init__.py").is_file(), layer


def test_the_layering_contract_names_packages_in_order_and_no_modules():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    layered = [c for c in contracts if c["type"] == "layers"]
    assert [c["layers"] for c in layered] == [[f"image_awaiter.{n}" for n in LAYERS]]
    for contract in contracts:
        for key in ("source_modules", "forbidden_modules", "layers"):
            for name in contract.get(key, ()):
                assert name.count(".") <= 1, f"{contract['name']}: a module, not a package: {name}"


def upward_imports(modules: list[Module]) -> list[tuple[str, str]]:
    return [
        (module.name, target)
        for module in modules
        if module.layer is not None
        for target in _imported(module)
        if target.startswith("image_awaiter.")
        and (above := target.split(".")[1]) in LAYERS
        and LAYERS.index(above) < LAYERS.index(module.layer)
    ]


def long_modules(modules: list[Module]) -> dict[str, int]:
    return {m.name: m.lines for m in modules if m.lines > MAX_MODULE_LINES}


def long_classes(modules: list[Module]) -> dict[str, int]:
    return {
        f"{m.name}.{node.name}": _length(node)
        for m in modules
        for node in _definitions(m)
        if isinstance(node, ast.ClassDef) and _length(node) > MAX_CLASS_LINES
    }


def long_functions(modules: list[Module]) -> dict[str, int]:
    return {
        f"{m.name}.{node.name}": _length(node)
        for m in modules
        for node in _definitions(m)
        if not isinstance(node, ast.ClassDef) and _length(node) > MAX_FUNCTION_LINES
    }


def shared_constructors(modules: list[Module]) -> set[tuple[str, str]]:
    constructors = {
        f"{m.name}.{node.name}": parameters
        for m in modules
        for node in _definitions(m)
        if isinstance(node, ast.ClassDef)
        and len(parameters := _constructor_parameters(node)) >= SHARED_PARAMETERS
    }
    return {
        (a, b)
        for a, b in combinations(sorted(constructors), 2)
        if len(constructors[a] & constructors[b]) >= SHARED_PARAMETERS
    }


def placement_models(modules: list[Module]) -> list[str]:
    return sorted(
        f"{m.name}.{node.name}"
        for m in modules
        for node in _definitions(m)
        if isinstance(node, ast.ClassDef)
        and (node.name.endswith("Placement") or _is_placement(_field_names(node)))
    )


def _constructor_parameters(node: ast.ClassDef) -> frozenset[str]:
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            arguments = item.args
            names = [a.arg for a in [*arguments.args, *arguments.kwonlyargs]]
            return frozenset(n for n in names if n != "self")
    return frozenset()


def _field_names(node: ast.ClassDef) -> set[str]:
    return {
        item.target.id
        for item in node.body
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
    }


def _is_placement(fields: set[str]) -> bool:
    return fields >= PLACEMENT_FIELDS


def test_no_module_imports_from_a_layer_above_its_own():
    assert upward_imports(MODULES) == []


def test_no_module_is_longer_than_400_lines():
    assert long_modules(MODULES) == {}


def test_no_class_is_longer_than_150_lines():
    assert long_classes(MODULES) == {}


def test_no_function_is_longer_than_60_lines():
    assert long_functions(MODULES) == {}


def test_no_two_classes_take_the_same_four_constructor_parameters():
    assert shared_constructors(MODULES) == set()


def test_one_class_is_the_placement_model():
    assert placement_models(MODULES) == [PLACEMENT_MODEL]


def synthetic(name: str, source: str) -> Module:
    text = textwrap.dedent(source)
    return Module(name, PACKAGE / "x.py", ast.parse(text), len(text.splitlines()))


BODY_61 = "".join(f"    x{i} = {i}\n" for i in range(60))
BODY_150 = "".join(f"    x{i}: int\n" for i in range(150))


@pytest.mark.parametrize(
    ("rule", "module", "found"),
    [
        pytest.param(
            upward_imports,
            synthetic("image_awaiter.core.x", "from image_awaiter.run.awaiting import Run\n"),
            [("image_awaiter.core.x", "image_awaiter.run.awaiting")],
            id="core-importing-run",
        ),
        pytest.param(
            upward_imports,
            synthetic("image_awaiter.kube.x", "from ..cli import options\n"),
            [("image_awaiter.kube.x", "image_awaiter.cli")],
            id="a-relative-upward-import",
        ),
        pytest.param(
            long_modules,
            synthetic("image_awaiter.core.x", "x = 1\n" * 401),
            {"image_awaiter.core.x": 401},
            id="a-401-line-module",
        ),
        pytest.param(
            long_classes,
            synthetic("image_awaiter.core.x", "class A:\n" + BODY_150),
            {"image_awaiter.core.x.A": 151},
            id="a-151-line-class",
        ),
        pytest.param(
            long_functions,
            synthetic("image_awaiter.core.x", "def f():\n" + BODY_61),
            {"image_awaiter.core.x.f": 61},
            id="a-61-line-function",
        ),
        pytest.param(
            shared_constructors,
            synthetic(
                "image_awaiter.run.x",
                """
                class A:
                    def __init__(self, *, kube, namespace, run_id, settings, view): ...
                class B:
                    def __init__(self, kube, namespace, *, run_id, settings): ...
                """,
            ),
            {("image_awaiter.run.x.A", "image_awaiter.run.x.B")},
            id="two-constructors-sharing-four-parameters",
        ),
        pytest.param(
            placement_models,
            synthetic(
                "image_awaiter.spec.x",
                """
                class PodPlacement:
                    x: int
                class Where:
                    node_selector: dict
                    tolerations: tuple
                """,
            ),
            ["image_awaiter.spec.x.PodPlacement", "image_awaiter.spec.x.Where"],
            id="a-second-placement-by-name-or-by-fields",
        ),
    ],
)
def test_each_rule_finds_what_breaks_it(rule, module, found):
    assert rule([module]) == found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("def f():\n    pass\n", 2, id="a-two-line-function"),
        pytest.param(
            "@decorator\nclass A:\n    x: int\n    y: int\n", 3, id="decorators-not-counted"
        ),
    ],
)
def test_lengths_count_from_the_definition_line_to_the_last(source, expected):
    node = ast.parse(source).body[0]
    assert _length(node) == expected

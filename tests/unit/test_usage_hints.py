"""Every exit-2 line has its `; what to do` half: each bad-input error the package raises is
built with a hint (`AwaiterError.one_line` joins them with `; `)."""

from __future__ import annotations

import ast
from pathlib import Path

import image_awaiter

BAD_INPUT_ERRORS = frozenset({"UsageError", "InvalidObject"})


def calls_without_a_hint(source: Path) -> list[str]:
    text = source.read_text(encoding="utf-8")
    found = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name in BAD_INPUT_ERRORS and not any(k.arg == "hint" for k in node.keywords):
            found.append(f"{source.name}:{node.lineno}: {ast.get_source_segment(text, node)}")
    return found


def test_every_bad_input_error_says_what_to_do() -> None:
    package = Path(image_awaiter.__file__).parent
    missing = [c for source in sorted(package.rglob("*.py")) for c in calls_without_a_hint(source)]
    assert missing == []

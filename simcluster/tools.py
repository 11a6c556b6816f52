"""Where the real helm and kubectl binaries are: the project's fetched ones (`make helm`),
else the ones on PATH."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def find(name: str) -> str | None:
    fetched = ROOT / ".tools" / "bin" / name
    if fetched.is_file():
        return str(fetched)
    return shutil.which(name)

"""The formats documents are printed in, by name: `-o/--output` offers every entry of
`OUTPUT_FORMATS` (the DaemonSets a dry run would create); the report is `json_text`. Adding a
format is one entry: a function from the documents to their text."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Documents = Sequence[Mapping[str, Any]]


def json_text(document: Mapping[str, Any]) -> str:
    """One JSON document, indented, with a final newline."""
    return json.dumps(document, indent=2) + "\n"


def yaml_text(documents: Documents) -> str:
    """A YAML stream, one document each, keys in their order."""
    import yaml  # -o yaml only: never on a run's path

    return yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False)


OUTPUT_FORMATS: dict[str, Callable[[Documents], str]] = {
    "yaml": yaml_text,
}

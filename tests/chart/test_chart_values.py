"""The values schema is the chart's documentation: values.yaml and the schema name the same keys,
shared shapes are defined once, and chart/README.md's values table is generated from them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.chart.conftest import CHART, ROOT

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
# Helm hands every chart `global` (a parent chart's shared values); no chart's values.yaml sets it.
HELM_OWNED = {"global"}


def resolved(node: Mapping[str, Any]) -> Mapping[str, Any]:
    if "$ref" not in node:
        return node
    target: Any = SCHEMA
    for part in node["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return {**resolved(target), **{k: v for k, v in node.items() if k != "$ref"}}


def schema_keys(node: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Every key the schema declares, down to free-form maps (nodeSelector, podLabels)."""
    for key, child in resolved(node).get("properties", {}).items():
        yield f"{prefix}{key}"
        yield from schema_keys(child, f"{prefix}{key}.")


def values_keys(values: Any, node: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Every key values.yaml sets, not descending where the schema allows any key."""
    declared = resolved(node).get("properties")
    if not isinstance(values, Mapping) or declared is None:
        return
    for key, value in values.items():
        yield f"{prefix}{key}"
        yield from values_keys(value, declared.get(key, {}), f"{prefix}{key}.")


def test_values_yaml_and_the_schema_name_the_same_keys() -> None:
    in_schema = set(schema_keys(SCHEMA)) - HELM_OWNED
    in_values = set(values_keys(VALUES, SCHEMA))
    assert sorted(in_values - in_schema) == []
    assert sorted(in_schema - in_values) == []
    assert {"awaiter.resources.limits.memory", "puller.podLabels", "nameOverride"} <= in_values


def test_requests_and_limits_are_defined_once_and_used_by_both_containers_kinds() -> None:
    assert SCHEMA["properties"]["awaiter"]["properties"]["resources"]["$ref"] == (
        "#/$defs/resources"
    )
    assert SCHEMA["properties"]["puller"]["properties"]["resources"]["$ref"] == (
        "#/$defs/resources"
    )
    assert "resources" in SCHEMA["$defs"]


def test_every_declared_value_has_a_description() -> None:
    def undescribed(node: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
        for key, child in resolved(node).get("properties", {}).items():
            if not resolved(child).get("description"):
                yield f"{prefix}{key}"
            yield from undescribed(child, f"{prefix}{key}.")

    assert list(undescribed(SCHEMA)) == []


def test_the_readme_values_table_is_the_one_generated_from_the_schema() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "values_table.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    readme = (CHART / "README.md").read_text()
    documented = [key for key in schema_keys(SCHEMA) if _is_documented_row(key)]
    assert [key for key in documented if f"| `{key}` |" not in readme] == []
    assert "| `awaiter.resources` |" in readme and "| `job.activeDeadlineSeconds` |" in readme


def test_a_stale_values_table_is_reported_with_the_command_that_fixes_it(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    chart.mkdir()
    for name in ("values.schema.json", "values.yaml", "README.md"):
        (chart / name).write_text((CHART / name).read_text())
    schema = json.loads((chart / "values.schema.json").read_text())
    schema["properties"]["images"]["description"] = "Changed without regenerating the table."
    (chart / "values.schema.json").write_text(json.dumps(schema))
    script = [sys.executable, str(ROOT / "scripts" / "values_table.py"), "--chart", str(chart)]
    stale = subprocess.run([*script, "--check"], capture_output=True, text=True, check=False)
    assert stale.returncode == 1
    assert stale.stderr.strip().endswith("run `make chart-docs`")
    subprocess.run(script, check=True)
    assert "Changed without regenerating the table." in (chart / "README.md").read_text()
    fresh = subprocess.run([*script, "--check"], capture_output=True, text=True, check=False)
    assert fresh.returncode == 0


def _is_documented_row(key: str) -> bool:
    """A leaf, or a requests/limits pair (one row), but nothing inside such a pair."""
    node: Mapping[str, Any] = SCHEMA
    for part in key.split("."):
        if _is_resources(node):
            return False
        node = resolved(node)["properties"][part]
    return "properties" not in resolved(node) or _is_resources(node)


def _is_resources(node: Mapping[str, Any]) -> bool:
    return set(resolved(node).get("properties", {})) == {"requests", "limits"}

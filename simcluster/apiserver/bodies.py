"""Request bodies: decoded from JSON or protobuf, and checked against the kind they are sent to
(its `apiVersion` and `kind`, and, with `?fieldValidation=Strict`, no field its schema lacks)."""

from __future__ import annotations

import json
from typing import Any

from simcluster.apiserver import protobuf, schemas
from simcluster.apiserver.kinds import Kind
from simcluster.apiserver.store import StoreError


def decode(body: bytes, *, content_type: str) -> dict[str, Any]:
    if "protobuf" not in content_type:
        return _json(body)
    try:
        return protobuf.decode(body)
    except (ValueError, IndexError, UnicodeDecodeError) as error:
        raise StoreError(415, "UnsupportedMediaType", str(error)) from None


def check_fields(kind: Kind, obj: dict[str, Any], query: dict[str, str]) -> None:
    if obj.get("kind") not in (None, kind.kind) or obj.get("apiVersion") not in (
        None,
        kind.api_version,
    ):
        raise StoreError(
            400,
            "BadRequest",
            f"the API version in the data ({obj.get('apiVersion')}) does not match the "
            f"expected API version ({kind.api_version})",
        )
    if query.get("fieldValidation") != "Strict":
        return
    unknown = _unknown_fields(obj, schemas.for_kind(kind), "")
    if unknown:
        raise StoreError(
            400,
            "BadRequest",
            "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown),
        )


def _unknown_fields(obj: Any, schema: dict[str, Any], prefix: str) -> list[str]:
    resolved = schemas.field({"properties": {"x": schema}}, "x") if schema else {}
    if not isinstance(obj, dict) or not resolved:
        return []
    properties = resolved.get("properties")
    if properties is None:
        return []
    out = []
    for key, value in obj.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in properties:
            out.append(path)
        elif isinstance(value, dict):
            out += _unknown_fields(value, schemas.field(resolved, key), path)
        elif isinstance(value, list):
            item = schemas.items(schemas.field(resolved, key))
            for index, element in enumerate(value):
                out += _unknown_fields(element, item, f"{path}[{index}]")
    return out


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise StoreError(400, "BadRequest", "request body is not JSON") from None
    if not isinstance(value, dict):
        raise StoreError(400, "BadRequest", "request body is not an object")
    return value

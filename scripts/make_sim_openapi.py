"""Build the simulated API server's OpenAPI v3 documents from the REAL Kubernetes OpenAPI v2
document, keeping only the kinds the simulated cluster serves.

Source: kubernetes/swagger.json.unprocessed in github.com/kubernetes-client/python (the
upstream apiserver's /openapi/v2 for release-1.36, Apache-2.0), commit 024658493d12.
The conversion is the one kube-openapi does for /openapi/v3/<group-version>: definitions become
components.schemas, body parameters become requestBody, a $ref with siblings becomes allOf.

Usage: python scripts/make_sim_openapi.py SWAGGER_JSON simcluster/data/openapi-v3.json.gz
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path
from typing import Any

SERVED = {
    "api/v1": {"namespaces", "nodes", "pods", "configmaps", "secrets", "serviceaccounts", "events"},
    "apis/apps/v1": {"daemonsets"},
    "apis/batch/v1": {"jobs"},
    "apis/rbac.authorization.k8s.io/v1": {
        "roles",
        "rolebindings",
        "clusterroles",
        "clusterrolebindings",
    },
    "apis/scheduling.k8s.io/v1": {"priorityclasses"},
}
SUBRESOURCES = {"status", "log"}


def resource_of(gv: str, path: str) -> tuple[str, str] | None:
    """('pods', 'log') for /api/v1/namespaces/{namespace}/pods/{name}/log."""
    rest = path.removeprefix(f"/{gv}/")
    if rest == path:
        return None
    parts = [p for p in rest.split("/") if p]
    if parts[:1] == ["watch"]:
        parts = parts[1:]
    if len(parts) >= 2 and parts[0] == "namespaces" and parts[1] == "{namespace}":
        parts = parts[2:] or ["namespaces", "{name}"]
    if not parts:
        return None
    sub = parts[2] if len(parts) > 2 else ""
    return parts[0], sub


def convert_ref(node: Any) -> Any:
    if isinstance(node, list):
        return [convert_ref(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: convert_ref(v) for k, v in node.items()}
    if "$ref" in out:
        ref = out["$ref"].replace("#/definitions/", "#/components/schemas/")
        siblings = {k: v for k, v in out.items() if k != "$ref"}
        if siblings:
            return {"allOf": [{"$ref": ref}], **siblings}
        return {"$ref": ref}
    return out


def refs(node: Any, found: set[str]) -> None:
    if isinstance(node, list):
        for n in node:
            refs(n, found)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value.rsplit("/", 1)[-1])
            else:
                refs(value, found)


def convert_operation(op: dict[str, Any], shared: dict[str, Any], params: list[Any]) -> Any:
    out: dict[str, Any] = {
        k: v for k, v in op.items() if k not in ("parameters", "consumes", "produces", "schemes")
    }
    produces = op.get("produces") or ["application/json"]
    consumes = op.get("consumes") or ["*/*"]
    out_params = []
    for param in [*params, *(op.get("parameters") or [])]:
        if "$ref" in param:
            param = shared[param["$ref"].rsplit("/", 1)[-1]]
        if param.get("in") == "body":
            out["requestBody"] = {
                "content": {c: {"schema": convert_ref(param["schema"])} for c in consumes},
                "required": bool(param.get("required")),
            }
            continue
        schema = {k: param[k] for k in ("type", "uniqueItems") if k in param}
        entry = {k: param[k] for k in ("name", "in", "description", "required") if k in param}
        entry["schema"] = schema
        out_params.append(entry)
    out["parameters"] = out_params
    responses = {}
    for code, response in (op.get("responses") or {}).items():
        item: dict[str, Any] = {"description": response.get("description", "")}
        if "schema" in response:
            item["content"] = {p: {"schema": convert_ref(response["schema"])} for p in produces}
        responses[code] = item
    out["responses"] = responses
    return out


def document(swagger: dict[str, Any], gv: str) -> dict[str, Any]:
    served = SERVED[gv]
    paths: dict[str, Any] = {}
    for path, item in swagger["paths"].items():
        found = resource_of(gv, path)
        if not found or found[0] not in served or (found[1] and found[1] not in SUBRESOURCES):
            continue
        shared_params = item.get("parameters") or []
        ops = {}
        for method, op in item.items():
            if method == "parameters":
                continue
            ops[method] = convert_operation(op, swagger["parameters"], shared_params)
        paths[path] = ops
    wanted: set[str] = set()
    refs(paths, wanted)
    refs([swagger["parameters"]], set())
    closure: set[str] = set()
    while wanted - closure:
        name = (wanted - closure).pop()
        closure.add(name)
        refs(swagger["definitions"].get(name, {}), wanted)
    schemas = {n: convert_ref(swagger["definitions"][n]) for n in sorted(closure)}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header",
                }
            },
        },
    }


def main(source: Path, target: Path) -> int:
    swagger = json.loads(source.read_text())
    docs = {gv: document(swagger, gv) for gv in SERVED}
    text = json.dumps(docs, separators=(",", ":"), sort_keys=True)
    assert not re.search(r"#/definitions/", text)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(gzip.compress(text.encode(), mtime=0))
    print(f"{target}: {len(text)} bytes raw, {target.stat().st_size} gzip")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))

"""Discovery and OpenAPI documents: what `kubectl` and `helm` read before anything else.

The lists name exactly the kinds in kinds.SERVED (plain APIGroupList/APIResourceList: clients
that ask for aggregated discovery fall back to these when the answer is plain JSON). The OpenAPI
v3 documents are the real apiserver's (data/openapi-v3.json.gz, see scripts/make_sim_openapi.py)
filtered to the served kinds; /openapi/v2 is not served (clients then use v3, as kubectl's
validation and apply do)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

from simcluster.apiserver.kinds import CREATE_ONLY, SERVED, Kind, group_versions

OPENAPI_FILE = Path(__file__).parent / "data" / "openapi-v3.json.gz"
VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-sim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _resource_entries(kind: Kind) -> list[dict[str, Any]]:
    verbs = ALL_VERBS
    if kind.resource == "namespaces":
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    if kind.resource in CREATE_ONLY:
        verbs = ["create"]
    main: dict[str, Any] = {
        "name": kind.resource,
        "singularName": kind.singular,
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": verbs,
        "storageVersionHash": hashlib.sha256(kind.group_resource.encode()).hexdigest()[:11],
    }
    if kind.short_names:
        main["shortNames"] = list(kind.short_names)
    if kind.categories:
        main["categories"] = list(kind.categories)
    out = [main]
    for sub in kind.subresources:
        out.append(
            {
                "name": f"{kind.resource}/{sub}",
                "singularName": "",
                "namespaced": kind.namespaced,
                "kind": kind.kind if sub == "status" else "Pod",
                "verbs": ["get", "patch", "update"] if sub == "status" else ["get"],
            }
        )
    return out


def resource_list(path: str) -> dict[str, Any] | None:
    """/api/v1 or /apis/<group>/<version> -> APIResourceList, None when not served."""
    kinds = group_versions().get(path.rstrip("/"))
    if kinds is None:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": kinds[0].api_version,
        "resources": [entry for kind in kinds for entry in _resource_entries(kind)],
    }


def core_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def _group(name: str, version: str) -> dict[str, Any]:
    gv = {"groupVersion": f"{name}/{version}", "version": version}
    return {"name": name, "versions": [gv], "preferredVersion": gv}


def group_list() -> dict[str, Any]:
    groups = sorted({(k.group, k.version) for k in SERVED if k.group})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(*g) for g in groups]}


def group(name: str) -> dict[str, Any] | None:
    versions = sorted({k.version for k in SERVED if k.group == name})
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions[0])}


@functools.cache
def _openapi() -> dict[str, bytes]:
    docs = json.loads(gzip.decompress(OPENAPI_FILE.read_bytes()))
    return {gv: json.dumps(doc, separators=(",", ":")).encode() for gv, doc in docs.items()}


def openapi_root() -> dict[str, Any]:
    paths = {}
    for gv, data in _openapi().items():
        digest = hashlib.sha512(data).hexdigest().upper()[:128]
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return {"paths": paths}


def openapi_document(gv: str) -> bytes | None:
    return _openapi().get(gv.strip("/"))

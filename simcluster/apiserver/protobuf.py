"""Kubernetes' protobuf request bodies, decoded for the few kinds `kubectl create <kind>` sends
that way (its typed clients post application/vnd.kubernetes.protobuf). Field numbers are those
of k8s.io/api/core/v1/generated.proto and apimachinery's meta/v1 and runtime generated.proto."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

MAGIC = b"k8s\x00"
Fields = list[tuple[int, int, Any]]  # (number, wire type, value)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def fields(data: bytes) -> Fields:
    out: Fields = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 2:
            length, at = _varint(data, at)
            value, at = data[at : at + length], at + length
        elif wire == 1:
            value, at = data[at : at + 8], at + 8
        elif wire == 5:
            value, at = data[at : at + 4], at + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, wire, value))
    return out


def _text(value: bytes) -> str:
    return value.decode()


def _map(entries: list[bytes], decode_value: Callable[[bytes], Any]) -> dict[str, Any]:
    out = {}
    for entry in entries:
        parts = {n: v for n, _, v in fields(entry)}
        out[_text(parts.get(1, b""))] = decode_value(parts.get(2, b""))
    return out


def _object_meta(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    labels, annotations, finalizers = [], [], []
    for number, _, value in fields(data):
        if number in (1, 2, 3) and value:
            meta[("name", "generateName", "namespace")[number - 1]] = _text(value)
        elif number == 11:
            labels.append(value)
        elif number == 12:
            annotations.append(value)
        elif number == 14:
            finalizers.append(_text(value))
    if labels:
        meta["labels"] = _map(labels, _text)
    if annotations:
        meta["annotations"] = _map(annotations, _text)
    if finalizers:
        meta["finalizers"] = finalizers
    return meta


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _decode_kind(kind: str, raw: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    grouped: dict[int, list[Any]] = {}
    for number, _, value in fields(raw):
        grouped.setdefault(number, []).append(value)
    if 1 in grouped:
        obj["metadata"] = _object_meta(grouped[1][0])
    if kind == "ConfigMap":
        if 2 in grouped:
            obj["data"] = _map(grouped[2], _text)
        if 3 in grouped:
            obj["binaryData"] = _map(grouped[3], _b64)
        if 4 in grouped:
            obj["immutable"] = bool(grouped[4][0])
    elif kind == "Secret":
        if 2 in grouped:
            obj["data"] = _map(grouped[2], _b64)
        if grouped.get(3, [b""])[0]:
            obj["type"] = _text(grouped[3][0])
        if 4 in grouped:
            obj["stringData"] = _map(grouped[4], _text)
        if 5 in grouped:
            obj["immutable"] = bool(grouped[5][0])
    elif kind == "ServiceAccount" and 4 in grouped:
        obj["automountServiceAccountToken"] = bool(grouped[4][0])
    elif kind not in ("Namespace", "ServiceAccount"):
        raise ValueError(f"protobuf bodies for {kind} are not supported; send JSON")
    return obj


def _delete_options(raw: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, _, value in fields(raw):
        if number == 1:
            out["gracePeriodSeconds"] = value
        elif number == 2:
            pre = {n: _text(v) for n, _, v in fields(value)}
            out["preconditions"] = {
                k: pre[n] for n, k in ((1, "uid"), (2, "resourceVersion")) if pre.get(n)
            }
        elif number == 3:
            out["orphanDependents"] = bool(value)
        elif number == 4 and value:
            out["propagationPolicy"] = _text(value)
    return out


def _access_review(raw: bytes) -> dict[str, Any]:
    """SelfSubjectAccessReview: spec=2 {resourceAttributes=1, nonResourceAttributes=2}."""
    names = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
    spec: dict[str, Any] = {}
    for number, _, value in fields(raw):
        if number != 2:
            continue
        for part, _, attributes in fields(value):
            found = {n: _text(v) for n, _, v in fields(attributes)}
            if part == 1:
                spec["resourceAttributes"] = {
                    names[n - 1]: text for n, text in found.items() if 1 <= n <= 7 and text
                }
            elif part == 2:
                spec["nonResourceAttributes"] = {
                    k: found[n] for n, k in ((1, "path"), (2, "verb")) if found.get(n)
                }
    return {"spec": spec}


def _rules_review(raw: bytes) -> dict[str, Any]:
    """SelfSubjectRulesReview: spec=2 {namespace=1}."""
    spec: dict[str, Any] = {}
    for number, _, value in fields(raw):
        if number == 2:
            found = {n: _text(v) for n, _, v in fields(value)}
            if found.get(1):
                spec["namespace"] = found[1]
    return {"spec": spec}


def decode(body: bytes) -> dict[str, Any]:
    """A JSON-shaped object from a `k8s\\0` + runtime.Unknown protobuf envelope."""
    if not body.startswith(MAGIC):
        raise ValueError("protobuf body without the k8s envelope")
    unknown = {n: v for n, _, v in fields(body[len(MAGIC) :])}
    type_meta = {n: _text(v) for n, _, v in fields(unknown.get(1, b""))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    if kind == "DeleteOptions":
        obj = _delete_options(unknown.get(2, b""))
    elif kind == "SelfSubjectAccessReview":
        obj = _access_review(unknown.get(2, b""))
    elif kind == "SelfSubjectRulesReview":
        obj = _rules_review(unknown.get(2, b""))
    else:
        obj = _decode_kind(kind, unknown.get(2, b""))
    return {"apiVersion": api_version, "kind": kind, **obj}

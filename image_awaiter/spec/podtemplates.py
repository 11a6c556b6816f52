"""A pod template's images and placement, read from plain data (a workload manifest) with the
location of every malformed field in its usage error: `pod_images` (the fields of the one
walker, `pods.image_fields`, each a valid reference) and `pod_placement` (the canonical
`Placement`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from image_awaiter.core.errors import UsageError
from image_awaiter.core.placement import Placement, Term, Toleration
from image_awaiter.core.pods import CONTAINER_PARTS, image_fields
from image_awaiter.core.references import parse_image
from image_awaiter.core.selectors import Requirement


def pod_images(pod_spec: Mapping[str, Any], *, label: str) -> tuple[str, ...]:
    """Every image the pod pulls, once each, in pod order, each a valid reference: the fields
    of `pods.image_fields` (not ephemeral containers, which no template may hold). A container
    without `image` is allowed, as the API allows it in workload templates for tools that fill
    it in later; it contributes nothing."""
    for part in (*CONTAINER_PARTS, "volumes"):
        _list(pod_spec, part, label=label)  # a list, or a usage error saying where
    refs = [_image(value, where=f"{label}: {at}") for at, value in image_fields(pod_spec)]
    return tuple(dict.fromkeys(refs))


def _image(value: Any, *, where: str) -> str:
    if not isinstance(value, str):
        raise UsageError(
            f"{where}: expected a string, found {type_name(value)}",
            hint="give the image as a string",
        )
    try:
        parse_image(value)
    except UsageError as error:
        raise UsageError(f"{where}: {error.message}", hint=error.hint) from None
    return value


def pod_placement(pod_spec: Mapping[str, Any], *, label: str) -> Placement:
    """The canonical placement of a pod spec. Raises `UsageError` for malformed fields."""
    affinity = _mapping(pod_spec, "affinity", label=label)
    node_affinity = _mapping(affinity, "nodeAffinity", label=f"{label}: affinity")
    required = _mapping(
        node_affinity,
        "requiredDuringSchedulingIgnoredDuringExecution",
        label=f"{label}: affinity.nodeAffinity",
    )
    terms_where = f"{label}: affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    terms = [
        _term(term, where=f"{terms_where}.nodeSelectorTerms[{index}]")
        for index, term in enumerate(_list(required, "nodeSelectorTerms", label=terms_where))
    ]
    secrets = [
        _text(s.get("name") if isinstance(s, dict) else s, where=f"{label}: imagePullSecrets")
        for s in _list(pod_spec, "imagePullSecrets", label=label)
    ]
    node_name = pod_spec.get("nodeName")
    return Placement(
        node_selector=tuple(sorted(_node_selector(pod_spec, label=label).items())),
        required_terms=tuple(sorted(set(terms))),
        tolerations=tuple(
            sorted(
                {
                    _toleration(t, where=f"{label}: tolerations[{i}]")
                    for i, t in enumerate(_list(pod_spec, "tolerations", label=label))
                }
            )
        ),
        image_pull_secrets=tuple(sorted(set(secrets))),
        runtime_class_name=_optional_text(pod_spec, "runtimeClassName", label=label),
        priority_class_name=_optional_text(pod_spec, "priorityClassName", label=label),
        node_name=_text(node_name, where=f"{label}: nodeName") if node_name else None,
    )


def _node_selector(pod_spec: Mapping[str, Any], *, label: str) -> dict[str, str]:
    selector = _mapping(pod_spec, "nodeSelector", label=label)
    return {
        _text(k, where=f"{label}: nodeSelector"): _text(v, where=f"{label}: nodeSelector.{k}")
        for k, v in selector.items()
    }


def _term(term: Any, *, where: str) -> Term:
    if not isinstance(term, dict):
        raise UsageError(
            f"{where}: expected a mapping, found {type_name(term)}",
            hint="fix the node affinity term",
        )
    return Term(
        expressions=_expressions(term, "matchExpressions", where=where),
        fields=_expressions(term, "matchFields", where=where),
    )


def _expressions(term: Mapping[str, Any], part: str, *, where: str) -> tuple[Requirement, ...]:
    expressions = set()
    for index, raw in enumerate(_list(term, part, label=where)):
        at = f"{where}.{part}[{index}]"
        if not isinstance(raw, dict):
            raise UsageError(
                f"{at}: expected a mapping, found {type_name(raw)}",
                hint="fix the selector expression",
            )
        values = [_text(v, where=f"{at}.values") for v in _list(raw, "values", label=at)]
        expressions.add(
            Requirement(
                key=_text(raw.get("key"), where=f"{at}.key"),
                operator=_text(raw.get("operator"), where=f"{at}.operator"),
                values=tuple(sorted(set(values))),
            )
        )
    return tuple(sorted(expressions))


def _toleration(raw: Any, *, where: str) -> Toleration:
    if not isinstance(raw, dict):
        raise UsageError(
            f"{where}: expected a mapping, found {type_name(raw)}", hint="fix the toleration"
        )
    fields = {
        name: _text(raw[name], where=f"{where}.{name}")
        for name in ("key", "operator", "value", "effect")
        if raw.get(name) is not None
    }
    return Toleration(**{"operator": "Equal", **{k: v for k, v in fields.items() if v}})


# ---------------------------------------------------------------------------- small readers


def _mapping(parent: Mapping[str, Any], name: str, *, label: str) -> Mapping[str, Any]:
    value = parent.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(
            f"{label}: {name} must be a mapping, found {type_name(value)}",
            hint="fix the field named",
        )
    return value


def _list(parent: Mapping[str, Any], name: str, *, label: str) -> list[Any]:
    value = parent.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise UsageError(
            f"{label}: {name} must be a list, found {type_name(value)}", hint="fix the field named"
        )
    return value


def _text(value: Any, *, where: str) -> str:
    if not isinstance(value, str):
        hint = " (quote it in YAML)" if isinstance(value, bool | int | float) else ""
        raise UsageError(
            f"{where}: expected a string, found {type_name(value)}{hint}",
            hint="fix the field named",
        )
    return value


def _optional_text(parent: Mapping[str, Any], name: str, *, label: str) -> str | None:
    value = parent.get(name)
    return None if value in (None, "") else _text(value, where=f"{label}: {name}")


def type_name(value: Any) -> str:
    return {
        dict: "mapping",
        list: "list",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)

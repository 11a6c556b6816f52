"""API validation as the real apiserver does it, with its message texts.

Texts come from k8s.io/apimachinery/pkg/util/validation/validation.go (dns1123LabelErrMsg,
dns1123SubdomainErrorMsg, qualifiedNameErrMsg, labelValueErrMsg, RegexError, MaxLenError) and
pkg/util/validation/field/errors.go (`<field>: Invalid value: "<v>": <detail>`); the Status shape
from apimachinery/pkg/api/errors NewInvalid: `<Kind[.group]> "<name>" is invalid: <errors>`,
several errors as `[e1, e2]`, one cause per error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from simcluster.apiserver.kinds import Kind

LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
SUBDOMAIN_FMT = LABEL_FMT + r"(\." + LABEL_FMT + ")*"
QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
VALUE_FMT = "(" + QNAME_FMT + ")?"
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character"
)
QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)
VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character"
)


@dataclass(frozen=True)
class FieldError:
    field: str
    type: str  # FieldValueInvalid, FieldValueRequired, ...
    body: str  # 'Invalid value: "X": detail'

    def __str__(self) -> str:
        return f"{self.field}: {self.body}"


def regex_error(message: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


def max_len(limit: int) -> str:
    return f"must be no more than {limit} characters"


def _full(fmt: str, value: str) -> bool:
    return re.fullmatch(fmt, value) is not None


def dns1123_label(value: str) -> list[str]:
    errors = [max_len(63)] if len(value) > 63 else []
    if not _full(LABEL_FMT, value):
        if _full(SUBDOMAIN_FMT, value):
            errors.append("must not contain dots")
        else:
            errors.append(regex_error(LABEL_MSG, LABEL_FMT, "my-name", "123-abc"))
    return errors


def dns1123_subdomain(value: str) -> list[str]:
    errors = [max_len(253)] if len(value) > 253 else []
    if not _full(SUBDOMAIN_FMT, value):
        errors.append(regex_error(SUBDOMAIN_MSG, SUBDOMAIN_FMT, "example.com"))
    return errors


def path_segment(value: str) -> list[str]:
    """RBAC kinds: apimachinery/pkg/api/validation/path IsValidPathSegmentName."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def qualified_name(value: str) -> list[str]:
    name, prefix = value, ""
    if "/" in value:
        prefix, _, name = value.rpartition("/")
        if "/" in prefix:
            return [
                "a qualified name "
                + regex_error(QNAME_MSG, QNAME_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ]
    errors = []
    if prefix == "" and "/" in value:
        errors.append("prefix part must be non-empty")
    elif prefix:
        errors += [f"prefix part {m}" for m in dns1123_subdomain(prefix)]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part " + max_len(63))
    if name and not _full(QNAME_FMT, name):
        errors.append(
            "name part " + regex_error(QNAME_MSG, QNAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errors


def label_value(value: str) -> list[str]:
    errors = [max_len(63)] if len(value) > 63 else []
    if not _full(VALUE_FMT, value):
        errors.append(regex_error(VALUE_MSG, VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors


NAME_RULES = {"label": dns1123_label, "subdomain": dns1123_subdomain, "path": path_segment}


def invalid(field: str, value: Any, detail: str) -> FieldError:
    shown = json.dumps(value) if isinstance(value, str) else _go(value)
    return FieldError(field, "FieldValueInvalid", f"Invalid value: {shown}: {detail}")


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(
        field, "FieldValueRequired", "Required value" + (f": {detail}" if detail else "")
    )


def unsupported(field: str, value: str, supported: list[str]) -> FieldError:
    values = ", ".join(json.dumps(s) for s in supported)
    return FieldError(
        field,
        "FieldValueNotSupported",
        f"Unsupported value: {json.dumps(value)}: supported values: {values}",
    )


def _go(value: Any) -> str:
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(k)}:{_go(v)}" for k, v in value.items())
        return "map[string]string{" + inner + "}"
    return json.dumps(value, separators=(",", ":"))


# ---------------------------------------------------------------------------- objects


def object_meta(kind: Kind, meta: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    rule = NAME_RULES[kind.name_rule]
    name, generate = meta.get("name") or "", meta.get("generateName") or ""
    if generate and not name:
        for message in rule(generate.rstrip("-") if generate.rstrip("-") else generate):
            errors.append(invalid("metadata.generateName", generate, message))
    if not name and not generate:
        errors.append(required("metadata.name", "name or generateName is required"))
    elif name:
        errors += [invalid("metadata.name", name, m) for m in rule(name)]
    errors += labels(meta.get("labels") or {}, "metadata.labels")
    for key in meta.get("annotations") or {}:
        errors += [invalid("metadata.annotations", key, m) for m in qualified_name(key.lower())]
    return errors


def labels(values: dict[str, Any], field: str) -> list[FieldError]:
    errors = []
    for key, value in values.items():
        errors += [invalid(field, key, m) for m in qualified_name(key)]
        errors += [invalid(field, value, m) for m in label_value(str(value))]
    return errors


def _containers(pod: dict[str, Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    groups = [
        ("containers", pod.get("containers") or []),
        ("initContainers", pod.get("initContainers") or []),
    ]
    if not groups[0][1]:
        errors.append(required(f"{path}.containers"))
    for part, containers in groups:
        for index, container in enumerate(containers):
            where = f"{path}.{part}[{index}]"
            name = container.get("name") or ""
            if not name:
                errors.append(required(f"{where}.name"))
            else:
                errors += [invalid(f"{where}.name", name, m) for m in dns1123_label(name)]
                if name in seen:
                    errors.append(
                        FieldError(
                            f"{where}.name",
                            "FieldValueDuplicate",
                            f"Duplicate value: {json.dumps(name)}",
                        )
                    )
                seen.add(name)
            if not container.get("image"):
                errors.append(required(f"{where}.image"))
    return errors


def _node_field_selectors(pod: dict[str, Any], path: str) -> list[FieldError]:
    """As kube-apiserver: a node field selector (`matchFields`) `In`/`NotIn` takes one value."""
    required_affinity = ((pod.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    where = f"{path}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    return [
        required(
            f"{where}.nodeSelectorTerms[{t}].matchFields[{r}].values",
            "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
        )
        for t, term in enumerate(required_affinity.get("nodeSelectorTerms") or [])
        for r, requirement in enumerate(term.get("matchFields") or [])
        if requirement.get("operator") in ("In", "NotIn")
        and len(requirement.get("values") or []) != 1
    ]


def _template(spec: dict[str, Any], restart: list[str] | None) -> list[FieldError]:
    template = spec.get("template")
    if not template:
        return [required("spec.template")]
    pod = template.get("spec") or {}
    errors = labels(
        (template.get("metadata") or {}).get("labels") or {}, "spec.template.metadata.labels"
    )
    errors += _containers(pod, "spec.template.spec")
    errors += _node_field_selectors(pod, "spec.template.spec")
    policy = pod.get("restartPolicy") or "Always"
    if restart is not None and policy not in restart:
        errors.append(unsupported("spec.template.spec.restartPolicy", policy, restart))
    return errors


def _selector_matches(spec: dict[str, Any]) -> list[FieldError]:
    selector = spec.get("selector")
    if not selector:
        return [required("spec.selector")]
    labels_ = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    wanted = selector.get("matchLabels") or {}
    if not wanted and not selector.get("matchExpressions"):
        return [invalid("spec.selector", selector, "empty selector is invalid for daemonset")]
    if any(labels_.get(k) != v for k, v in wanted.items()):
        return [
            invalid(
                "spec.template.metadata.labels",
                labels_,
                "`selector` does not match template `labels`",
            )
        ]
    return []


def _rbac_rules(obj: dict[str, Any]) -> list[FieldError]:
    errors = []
    for index, rule in enumerate(obj.get("rules") or []):
        if not rule.get("verbs"):
            errors.append(
                required(f"rules[{index}].verbs", "verbs must contain at least one value")
            )
        if not rule.get("nonResourceURLs") and "apiGroups" not in rule:
            errors.append(
                required(
                    f"rules[{index}].apiGroups", "resource rules must supply at least one api group"
                )
            )
    return errors


def _binding(obj: dict[str, Any], cluster: bool) -> list[FieldError]:
    errors = []
    ref = obj.get("roleRef") or {}
    allowed = ["ClusterRole"] if cluster else ["Role", "ClusterRole"]
    if ref.get("kind") not in allowed:
        errors.append(unsupported("roleRef.kind", ref.get("kind") or "", allowed))
    if not ref.get("name"):
        errors.append(required("roleRef.name"))
    for index, subject in enumerate(obj.get("subjects") or []):
        if not subject.get("name"):
            errors.append(required(f"subjects[{index}].name"))
        if subject.get("kind") == "ServiceAccount" and cluster and not subject.get("namespace"):
            errors.append(required(f"subjects[{index}].namespace"))
    return errors


def spec(kind: Kind, obj: dict[str, Any]) -> list[FieldError]:
    body = obj.get("spec") or {}
    if kind.resource == "daemonsets":
        return _selector_matches(body) + _template(body, ["Always"])
    if kind.resource == "jobs":
        return _template(body, ["OnFailure", "Never"])
    if kind.resource == "pods":
        return _containers(body, "spec")
    if kind.resource in ("roles", "clusterroles"):
        return _rbac_rules(obj)
    if kind.resource in ("rolebindings", "clusterrolebindings"):
        return _binding(obj, kind.resource == "clusterrolebindings")
    if kind.resource == "priorityclasses" and "value" not in obj:
        return [required("value")]
    if kind.resource in ("configmaps", "secrets"):
        return [
            e
            for key in [*(obj.get("data") or {}), *(obj.get("binaryData") or {})]
            for e in _config_key(key)
        ]
    return []


def _config_key(key: str) -> list[FieldError]:
    if len(key) <= 253 and re.fullmatch(r"[-._a-zA-Z0-9]+", key) and key not in (".", ".."):
        return []
    return [
        invalid(
            "data",
            key,
            regex_error(
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                "[-._a-zA-Z0-9]+",
                "key.name",
                "KEY_NAME",
                "key-name",
            ),
        )
    ]


# ---------------------------------------------------------------------------- updates

IMMUTABLE: dict[str, list[tuple[str, ...]]] = {
    "daemonsets": [("spec", "selector")],
    "jobs": [("spec", "selector"), ("spec", "template"), ("spec", "completionMode")],
    "rolebindings": [("roleRef",)],
    "clusterrolebindings": [("roleRef",)],
    "priorityclasses": [("value",)],
}
POD_UPDATE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def _at(obj: dict[str, Any], path: tuple[str, ...]) -> Any:
    found: Any = obj
    for part in path:
        found = (found or {}).get(part)
    return found


def update(kind: Kind, old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    for path in IMMUTABLE.get(kind.resource, []):
        if _at(old, path) != _at(new, path):
            errors.append(invalid(".".join(path), _at(new, path), "field is immutable"))
    if kind.resource == "pods" and _pod_spec_changed(old.get("spec") or {}, new.get("spec") or {}):
        errors.append(FieldError("spec", "FieldValueForbidden", "Forbidden: " + POD_UPDATE_MSG))
    if kind.resource in ("configmaps", "secrets") and old.get("immutable"):
        for part in ("data", "binaryData", "stringData"):
            if old.get(part) != new.get(part):
                errors.append(
                    FieldError(
                        part,
                        "FieldValueForbidden",
                        "Forbidden: field is immutable when `immutable` is set",
                    )
                )
    return errors


def _pod_spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def masked(spec: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(json.dumps(spec))
        for part in ("containers", "initContainers"):
            for container in out.get(part) or []:
                container.pop("image", None)
        for key in (
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
            "nodeName",
        ):
            out.pop(key, None)
        return out

    return masked(old) != masked(new)


def check(kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[FieldError]:
    errors = object_meta(kind, obj.get("metadata") or {}) + spec(kind, obj)
    if old is not None:
        errors += update(kind, old, obj)
    return errors


def status(kind: Kind, name: str, errors: list[FieldError]) -> dict[str, Any]:
    """The 422 Status body for `errors` (apimachinery NewInvalid)."""
    qualified = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
    text = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(map(str, errors)) + "]"
    return {
        "message": f'{qualified} "{name}" is invalid: {text}',
        "details": {
            "name": name,
            "group": kind.group,
            "kind": kind.kind,
            "causes": [{"reason": e.type, "message": e.body, "field": e.field} for e in errors],
        },
    }

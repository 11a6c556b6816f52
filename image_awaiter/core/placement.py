"""Where a pod may run, and what it pulls with: the one placement model.

`Placement` holds a pod's nodeSelector, required node affinity terms and tolerations (and the
pull-related fields that split pull groups: image pull secrets, runtime and priority class, a
pinned node name) in canonical form: sorted tuples, hashable, equal exactly when two pods would
be placed, and pull, alike. It is read from workload manifests (`spec/manifests.py`), from a
puller pod template (`targeting.placement_from_pod_spec`), judged against nodes
(`targeting.exclusion_reason`) and written back into a puller pod spec (`to_pod_spec`).

No required node affinity is `required_terms == ()`; an empty `nodeSelectorTerms` list, which
the API refuses, is read the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from image_awaiter.core.selectors import Requirement

OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: str = ""

    def __str__(self) -> str:
        value = f"={self.value}" if self.value else ""
        return f"{self.key}{value}:{self.effect}"


@dataclass(frozen=True, slots=True, order=True)
class Toleration:
    """A toleration with the API's defaults filled in (operator `Equal`).

    `tolerationSeconds` is left out: it bounds how long a pod stays after a NoExecute taint
    appears, not where it may be scheduled, so it must not split pull groups.
    """

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.operator == "Exists":
            return not self.key or self.key == taint.key
        return self.key == taint.key and self.value == taint.value

    def to_dict(self) -> dict[str, str]:
        body = {"key": self.key, "operator": self.operator, "value": self.value}
        body["effect"] = self.effect
        return {k: v for k, v in body.items() if v}


@dataclass(frozen=True, slots=True, order=True)
class Term:
    """One nodeSelectorTerm: all its expressions and fields must hold (terms are ORed)."""

    expressions: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()

    def matches(self, *, name: str, labels: Mapping[str, str]) -> bool:
        """Whether the node `name` with `labels` satisfies the term."""
        if not self.expressions and not self.fields:
            return False  # an empty term matches nothing, as in Kubernetes
        fields = {"metadata.name": name}
        return all(r.matches(labels.get(r.key)) for r in self.expressions) and all(
            r.matches(fields.get(r.key)) for r in self.fields
        )

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.expressions:
            body["matchExpressions"] = [e.to_dict() for e in self.expressions]
        if self.fields:
            body["matchFields"] = [f.to_dict() for f in self.fields]
        return body


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a pod may run and what it pulls with, in canonical (sorted, hashable) form."""

    node_selector: tuple[tuple[str, str], ...] = ()
    required_terms: tuple[Term, ...] = ()  # empty: no required node affinity
    tolerations: tuple[Toleration, ...] = ()
    image_pull_secrets: tuple[str, ...] = ()
    runtime_class_name: str | None = None
    priority_class_name: str | None = None
    node_name: str | None = None  # a Pod pinned with spec.nodeName

    @property
    def os(self) -> tuple[str, ...]:
        """The `kubernetes.io/os` values this placement allows; () when it does not say."""
        return self._label_values(OS_LABEL)

    @property
    def arch(self) -> tuple[str, ...]:
        """The `kubernetes.io/arch` values this placement allows; () when it does not say."""
        return self._label_values(ARCH_LABEL)

    def _label_values(self, label: str) -> tuple[str, ...]:
        selected = dict(self.node_selector).get(label)
        if selected is not None:
            return (selected,)
        allowed: set[str] = set()
        for term in self.required_terms:
            ins = [e for e in term.expressions if e.key == label and e.operator == "In"]
            if not ins:
                return ()  # one term leaves the label open: any value may be chosen
            allowed.update(ins[0].values)
        return tuple(sorted(allowed))

    def to_pod_spec(self) -> dict[str, Any]:
        """A plain pod-spec fragment to merge into a puller pod template."""
        spec: dict[str, Any] = {}
        if self.node_selector:
            spec["nodeSelector"] = dict(self.node_selector)
        terms = [t.to_dict() for t in self.required_terms]
        if self.node_name is not None:
            pin = {"key": "metadata.name", "operator": "In", "values": [self.node_name]}
            terms = [{**t, "matchFields": [*t.get("matchFields", []), pin]} for t in terms]
            terms = terms or [{"matchFields": [pin]}]
        if terms:
            spec["affinity"] = {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
                }
            }
        if self.tolerations:
            spec["tolerations"] = [t.to_dict() for t in self.tolerations]
        if self.image_pull_secrets:
            spec["imagePullSecrets"] = [{"name": n} for n in self.image_pull_secrets]
        if self.runtime_class_name:
            spec["runtimeClassName"] = self.runtime_class_name
        if self.priority_class_name:
            spec["priorityClassName"] = self.priority_class_name
        return spec

"""The one implementation of Kubernetes selector operators (`In`, `NotIn`, `Exists`,
`DoesNotExist`, `Gt`, `Lt`), shared by node affinity (targeting.py) and the DaemonSet's own
label selector (pullers.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from image_awaiter.core.errors import UsageError

LABEL_OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist"})
NODE_OPERATORS = LABEL_OPERATORS | {"Gt", "Lt"}


@dataclass(frozen=True, slots=True, order=True)
class Requirement:
    key: str
    operator: str  # In NotIn Exists DoesNotExist Gt Lt
    values: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"key": self.key, "operator": self.operator}
        if self.values:
            body["values"] = list(self.values)
        return body

    def matches(self, value: str | None) -> bool:
        """Whether a label (or field) with `value` (None: absent) satisfies the requirement."""
        op = self.operator
        if op == "Exists":
            return value is not None
        if op == "DoesNotExist":
            return value is None
        if op == "In":
            return value is not None and value in self.values
        if op == "NotIn":
            return value is None or value not in self.values
        if value is None:
            return False
        try:
            number, bound = int(value), int(self.values[0])
        except ValueError:
            return False
        return number > bound if op == "Gt" else number < bound


def requirement(
    *, key: str, operator: str, values: Iterable[object] = (), allowed: frozenset[str]
) -> Requirement:
    """A validated requirement; an unknown operator or a wrong number of values is bad input."""
    if operator not in allowed:
        raise UsageError(
            f"unknown selector operator {operator!r}",
            hint="use In, NotIn, Exists, DoesNotExist, Gt or Lt",
        )
    texts = tuple(str(v) for v in values)
    if operator in ("Gt", "Lt") and len(texts) != 1:
        raise UsageError(
            f"selector operator {operator} needs exactly one value",
            hint="give Gt and Lt one integer value",
        )
    return Requirement(key=key, operator=operator, values=texts)

"""Puller pods the cluster refuses to create: the DaemonSet controller's `FailedCreate` warnings
on our DaemonSets, classified by the admission text they carry, and the decision whether the
run can still succeed.

The real controller (kubernetes `pkg/controller/controller_utils.go`) records, for each pod it
fails to create, a Warning Event on the DaemonSet with reason `FailedCreate` and the message
`Error creating: <the API server's error>`, and creates nothing for that node; it retries with
back-off, so a refusal by admission repeats until the template or the namespace changes. The
event recorder may fold repeats into one event prefixed `(combined from similar events): `.
These are the texts kube-apiserver v1.36 writes (seen on the real control plane):

- `pods "x-" is forbidden: error looking up service account ns/sa: serviceaccount "sa" not
  found` (ServiceAccount admission; the pod has only its generateName then);
- `pods "x-abcde" is forbidden: violates PodSecurity "restricted:latest": ...`;
- `pods "x-abcde" is forbidden: failed quota: q: must specify limits.memory for: c; ...`;
- `pods "x-abcde" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: ...`;
- `pods "x-abcde" is forbidden: maximum cpu usage per Container is 500m, but limit is 1`
  (LimitRanger);
- `Pod "x-abcde" is invalid: spec...` (validation).

Each of these is permanent for this run: nothing the awaiter waits for will change it, so the
run ends at once (exit 3) with the controller's words and what to do. One is given a grace
(`PATIENT`): an exceeded quota can be the pods of the previous run's puller, deleted a moment
ago and still terminating; it ends the run when it persists `QUOTA_GRACE` seconds. Anything
else (`Internal error occurred`, timeouts) is transient: the controller retries, the run waits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

FAILED_CREATE = "FailedCreate"
ERROR_PREFIX = "Error creating: "
COMBINED_PREFIX = "(combined from similar events): "
QUOTA_GRACE = 30.0  # seconds an exceeded quota may persist: the last run's pods terminating


class Refusal(StrEnum):
    """Why the API server would not admit a puller pod."""

    SERVICE_ACCOUNT = "service-account-missing"
    POD_SECURITY = "pod-security"
    QUOTA_LIMITS_REQUIRED = "quota-requires-limits"
    QUOTA_EXCEEDED = "quota-exceeded"
    LIMIT_RANGE = "limit-range"
    INVALID = "invalid-template"
    FORBIDDEN = "forbidden"


@dataclass(frozen=True, slots=True)
class FailedCreate:
    """One `FailedCreate` event on a DaemonSet, as the controller recorded it."""

    daemonset: str
    message: str


@dataclass(frozen=True, slots=True)
class CreationRefused:
    """The pods of `daemonset` cannot be created: `refusal` says why, `message` is the
    controller's (without its prefixes), `advice` what the operator should do."""

    daemonset: str
    refusal: Refusal
    message: str
    advice: str


def _service_account(found: re.Match[str]) -> str:
    namespace, name = found["namespace"], found["name"]
    return (
        f"create the ServiceAccount {name} in namespace {namespace} (before the awaiter runs), "
        "or name an existing one in the pod template's serviceAccountName"
    )


def _pod_security(found: re.Match[str]) -> str:
    return (
        f'make the pod template pass the Pod Security Standard "{found["level"]}" that the '
        "namespace enforces (label pod-security.kubernetes.io/enforce); the generated puller "
        "passes restricted"
    )


def _quota_limits(found: re.Match[str]) -> str:
    return (
        f"ResourceQuota {found['quota']} demands requests and limits: set them on every "
        "container of the pod template (the generated puller sets them)"
    )


def _quota_exceeded(found: re.Match[str]) -> str:
    return (
        f"grant ResourceQuota {found['quota']} room for one puller pod per target node "
        "(or lower the template's requests and limits)"
    )


def _limit_range(found: re.Match[str]) -> str:
    return "fit the pod template's requests and limits within the namespace's LimitRange"


def _invalid(found: re.Match[str]) -> str:
    return "fix the pod template (--daemonset-spec) so that the API server accepts its pods"


def _forbidden(found: re.Match[str]) -> str:
    return "fix what the API server's admission refused in the pod template or the namespace"


PATIENT = frozenset({Refusal.QUOTA_EXCEEDED})

# First match wins: the specific admission texts before the generic ones.
REFUSALS: tuple[tuple[Refusal, re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (
        Refusal.SERVICE_ACCOUNT,
        re.compile(
            r"error looking up service account (?P<namespace>[^/\s]+)/(?P<name>[^:\s]+): "
            r'serviceaccount "[^"]*" not found'
        ),
        _service_account,
    ),
    (
        Refusal.POD_SECURITY,
        re.compile(r'violates PodSecurity "(?P<level>[^":]+)(?::[^"]*)?"'),
        _pod_security,
    ),
    (
        Refusal.QUOTA_LIMITS_REQUIRED,
        re.compile(r"failed quota: (?P<quota>[^:\s]+): must specify"),
        _quota_limits,
    ),
    (Refusal.QUOTA_EXCEEDED, re.compile(r"exceeded quota: (?P<quota>[^,\s]+)"), _quota_exceeded),
    (
        Refusal.LIMIT_RANGE,
        re.compile(r"(?:maximum|minimum) \S+ usage per (?:Container|Pod)"),
        _limit_range,
    ),
    (Refusal.INVALID, re.compile(r'^[Pp]ods? "[^"]*" is invalid: '), _invalid),
    (Refusal.FORBIDDEN, re.compile(r'^pods "[^"]*" is forbidden: '), _forbidden),
)


def strip_prefixes(message: str) -> str:
    """The API server's own error out of the controller's event message."""
    message = message.removeprefix(COMBINED_PREFIX)
    return message.removeprefix(ERROR_PREFIX)


def classify(event: FailedCreate) -> CreationRefused | None:
    """The refusal an event speaks of, or None when it is transient (the controller retries)."""
    error = strip_prefixes(event.message)
    for refusal, pattern, advise in REFUSALS:
        found = pattern.search(error)
        if found is not None:
            return CreationRefused(event.daemonset, refusal, error, advise(found))
    return None


class Refusals:
    """Decides, from the `FailedCreate` events seen so far, whether this run's pullers are
    refused for good; remembers when each patient refusal was first seen (times are given)."""

    def __init__(self, *, grace: float = QUOTA_GRACE) -> None:
        self._grace = grace
        self._first_seen: dict[tuple[str, Refusal], float] = {}

    def judge(
        self, events: Iterable[FailedCreate], *, daemonsets: Iterable[str], now: float
    ) -> CreationRefused | None:
        """The first refusal of `daemonsets` (this run's, in order) that ends the run: any
        impatient one at once, a patient one once seen for the grace; None otherwise."""
        by_daemonset: dict[str, list[CreationRefused]] = {}
        for event in events:
            refused = classify(event)
            if refused is not None:
                by_daemonset.setdefault(event.daemonset, []).append(refused)
        for name in daemonsets:
            for refused in by_daemonset.get(name, ()):
                if refused.refusal not in PATIENT:
                    return refused
                since = self._first_seen.setdefault((name, refused.refusal), now)
                if now - since >= self._grace:
                    return refused
        return None

"""Puller pods the cluster refuses: the DaemonSet controller's `FailedCreate` messages, exactly
as kube-apiserver v1.36.3 and its controller-manager wrote them on the real control plane
(tests/realcp/test_refused_pullers.py provokes each), classified into a refusal with advice."""

from __future__ import annotations

import json

import pytest

from image_awaiter.core.creation import (
    QUOTA_GRACE,
    FailedCreate,
    Refusal,
    Refusals,
    classify,
)
from image_awaiter.core.outcomes import Result, pods_refused
from image_awaiter.kube.controllerevents import FailedCreateCodec

PSA = (
    'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container '
    '"c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
    '(container "c" must set securityContext.capabilities.drop=["ALL"])'
)

MESSAGES = [
    pytest.param(
        'Error creating: pods "hook-image-puller-" is forbidden: error looking up service '
        'account ns/hook-image-puller: serviceaccount "hook-image-puller" not found',
        Refusal.SERVICE_ACCOUNT,
        "create the ServiceAccount hook-image-puller in namespace ns",
        id="service-account-missing",
    ),
    pytest.param(
        f'Error creating: pods "psa-bn9b2" is forbidden: {PSA}',
        Refusal.POD_SECURITY,
        'the Pod Security Standard "restricted"',
        id="pod-security-restricted",
    ),
    pytest.param(
        f'(combined from similar events): Error creating: pods "psa-nlms6" is forbidden: {PSA}',
        Refusal.POD_SECURITY,
        "pod-security.kubernetes.io/enforce",
        id="combined-from-similar-events",
    ),
    pytest.param(
        'Error creating: pods "nolimits-597mj" is forbidden: failed quota: compute: must '
        "specify limits.memory for: c; requests.memory for: c",
        Refusal.QUOTA_LIMITS_REQUIRED,
        "ResourceQuota compute demands requests and limits",
        id="quota-requires-limits",
    ),
    pytest.param(
        'Error creating: pods "toomany-57c2g" is forbidden: exceeded quota: compute, '
        "requested: pods=1, used: pods=1, limited: pods=1",
        Refusal.QUOTA_EXCEEDED,
        "grant ResourceQuota compute room",
        id="quota-exceeded",
    ),
    pytest.param(
        'Error creating: pods "lrmax-5s896" is forbidden: maximum cpu usage per Container is '
        "500m, but limit is 1",
        Refusal.LIMIT_RANGE,
        "LimitRange",
        id="limit-range-maximum",
    ),
    pytest.param(
        'Error creating: Pod "x-abcde" is invalid: spec.containers[0].image: Required value',
        Refusal.INVALID,
        "fix the pod template",
        id="invalid-template",
    ),
    pytest.param(
        'Error creating: pods "x-abcde" is forbidden: some admission webhook said no',
        Refusal.FORBIDDEN,
        "admission refused",
        id="other-admission-refusal",
    ),
    pytest.param(
        "Error creating: Internal error occurred: resource quota evaluation timed out",
        None,
        "",
        id="internal-error-is-transient",
    ),
    pytest.param(
        "Error creating: the server was unable to return a response in the time allotted",
        None,
        "",
        id="timeout-is-transient",
    ),
]


@pytest.mark.parametrize(("message", "refusal", "advice"), MESSAGES)
def test_each_controller_message_is_classified_with_advice(
    message: str, refusal: Refusal | None, advice: str
) -> None:
    refused = classify(FailedCreate(daemonset="puller", message=message))
    if refusal is None:
        assert refused is None
        return
    assert refused is not None
    assert refused.refusal is refusal
    assert advice in refused.advice
    assert refused.message.startswith(("pods ", "Pod "))  # the API server's own words


SA_MISSING = FailedCreate(
    daemonset="ours",
    message='Error creating: pods "ours-" is forbidden: error looking up service account '
    'ns/sa: serviceaccount "sa" not found',
)
QUOTA = FailedCreate(
    daemonset="ours",
    message='Error creating: pods "ours-x" is forbidden: exceeded quota: q, requested: pods=1',
)


def test_a_refusal_of_one_of_the_runs_daemonsets_ends_the_run_at_once() -> None:
    refused = Refusals().judge([SA_MISSING], daemonsets=("ours",), now=0.0)
    assert refused is not None and refused.refusal is Refusal.SERVICE_ACCOUNT


def test_refusals_of_other_daemonsets_are_ignored() -> None:
    assert Refusals().judge([SA_MISSING], daemonsets=("theirs",), now=0.0) is None


def test_an_exceeded_quota_ends_the_run_only_once_it_persists_for_the_grace() -> None:
    refusals = Refusals()
    assert refusals.judge([QUOTA], daemonsets=("ours",), now=100.0) is None
    assert refusals.judge([QUOTA], daemonsets=("ours",), now=100.0 + QUOTA_GRACE - 1) is None
    refused = refusals.judge([QUOTA], daemonsets=("ours",), now=100.0 + QUOTA_GRACE)
    assert refused is not None and refused.refusal is Refusal.QUOTA_EXCEEDED


def test_the_outcome_is_exit_3_with_the_controllers_words_and_what_to_do() -> None:
    refused = classify(SA_MISSING)
    assert refused is not None
    code, result, message = pods_refused(refused)
    assert (int(code), result) == (3, Result.PODS_REFUSED)
    assert 'serviceaccount "sa" not found' in message
    assert message.endswith("or name an existing one in the pod template's serviceAccountName")


def _event(kind: str, name: str, reason: str) -> bytes:
    event = {
        "metadata": {"name": f"{name}.1", "namespace": "ns", "resourceVersion": "7"},
        "involvedObject": {"kind": kind, "name": name, "apiVersion": "apps/v1"},
        "reason": reason,
        "message": SA_MISSING.message,
        "source": {"component": "daemonset-controller"},
        "type": "Warning",
    }
    return json.dumps({"type": "ADDED", "object": event}).encode()


@pytest.mark.parametrize(
    ("kind", "name", "reason", "kept"),
    [
        ("DaemonSet", "ours", "FailedCreate", True),
        ("DaemonSet", "theirs", "FailedCreate", False),
        ("DaemonSet", "ours", "SuccessfulCreate", False),
        ("Pod", "ours", "FailedCreate", False),
    ],
)
def test_the_codec_keeps_only_failed_creates_of_the_runs_daemonsets(
    kind: str, name: str, reason: str, kept: bool
) -> None:
    event = FailedCreateCodec(daemonsets=("ours",)).event(_event(kind, name, reason))
    assert (event.record is not None) is kept
    if kept:
        assert event.record == FailedCreate(daemonset="ours", message=SA_MISSING.message)

"""The simulated API server's graceful pod deletion rules (simcluster/apiserver/podgrace.py), as
kube-apiserver's pod strategy decides them; the differential tier checks them on both servers."""

from __future__ import annotations

from typing import Any

import pytest

from simcluster.apiserver.podgrace import as_deleted, grace_seconds


def _pod(*, node: str = "n", phase: str = "Running", **meta: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": "p", **meta}, "spec": spec, "status": {"phase": phase}}


def test_a_bound_running_pod_gets_its_specs_grace_period_or_thirty_seconds() -> None:
    assert grace_seconds(_pod(), {}) == 30
    pod = _pod()
    pod["spec"]["terminationGracePeriodSeconds"] = 5
    assert grace_seconds(pod, {}) == 5
    assert grace_seconds(pod, {"gracePeriodSeconds": 12}) == 12


@pytest.mark.parametrize(
    ("pod", "options"),
    [
        (_pod(node=""), {}),  # never bound: no kubelet has anything to stop
        (_pod(phase="Succeeded"), {}),
        (_pod(phase="Failed"), {}),
        (_pod(), {"gracePeriodSeconds": 0}),  # --grace-period=0 --force
    ],
)
def test_a_pod_with_nothing_to_stop_or_forced_goes_at_once(
    pod: dict[str, Any], options: dict[str, Any]
) -> None:
    assert grace_seconds(pod, options) is None


def test_a_second_delete_may_shorten_the_grace_period_but_never_lengthen_it() -> None:
    terminating = _pod(deletionTimestamp="2026-12-07T00:00:30Z", deletionGracePeriodSeconds=10)
    assert grace_seconds(terminating, {"gracePeriodSeconds": 60}) == 10
    assert grace_seconds(terminating, {"gracePeriodSeconds": 3}) == 3


def test_an_immediate_delete_answers_the_pod_stamped_deleted_with_no_grace() -> None:
    answered = as_deleted(_pod(generation=1))
    meta = answered["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 0 and meta["deletionTimestamp"]
    assert meta["generation"] == 2

"""Puller pods the cluster refuses to create end the run in seconds with the DaemonSet
controller's own words (exit 3), not at the timeout. The simulated API server's controller
records the real `FailedCreate` text for a missing ServiceAccount; tests/realcp proves every
refusal (ServiceAccount, Pod Security, ResourceQuota) on the real control plane."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.integration.helpers import assert_clean_failure, our_daemonsets

Z2JH_PULLER = Path(__file__).parents[1] / "fixtures/manifests/z2jh/hook-image-puller.yaml"


def test_a_puller_naming_a_missing_service_account_fails_in_seconds_with_exit_3(
    sim: Any, run_cli: Any
) -> None:
    sim.add_node("a")
    started = time.monotonic()
    result = run_cli("await", "--daemonset-spec", str(Z2JH_PULLER), "--timeout", "2m")
    elapsed = time.monotonic() - started
    assert result.code == 3, result.output
    assert elapsed < 30, f"took {elapsed:.1f}s: it waited instead of failing fast"
    assert_clean_failure(result)
    assert 'serviceaccount "hook-image-puller" not found' in result.last_line
    assert "create the ServiceAccount hook-image-puller in namespace default" in result.last_line
    assert result.report is not None and result.report["result"] == "pods-refused"
    assert not our_daemonsets(sim), "the refused DaemonSet is deleted on the way out"


def test_the_same_puller_runs_once_its_service_account_exists(sim: Any, run_cli: Any) -> None:
    sim.add_node("a")
    sim.store.create("serviceaccounts", {"metadata": {"name": "hook-image-puller"}}, "default")
    result = run_cli("await", "--daemonset-spec", str(Z2JH_PULLER), "--interval", "200ms")
    assert result.code == 0, result.output

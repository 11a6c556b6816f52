"""The chaos suite: seeded random faults and churn, every run checked against the invariants.

CI runs CHAOS_RUNS (default 24) seeds from CHAOS_SEED (default 2026); `make soak` runs hundreds
through tests/chaos/soak.py. A failure prints its seed: `CHAOS_SEED=<seed> CHAOS_RUNS=1 pytest
tests/chaos` replays it exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.scenarios import generate, run

BASE = int(os.environ.get("CHAOS_SEED", "2026"))
RUNS = int(os.environ.get("CHAOS_RUNS", "24"))


# Seed 2033 (delete the DaemonSet at 1.1 s, compact at 1.9 s, remove a node at 2.0 s) fails when
# replayed alone since before 2026-11-23's changes (checked at b9d7cba): node churn-1 never gets a
# puller pod and every awaiter times out; in full runs it passes or fails with timing. A known bug
# under investigation (closing note of issue 13), kept running and reported, not hidden.
KNOWN_BUGS = {
    2033: "churn-1 gets no puller pod after the DaemonSet is deleted and recreated (open bug)",
}


def _seeds() -> list[object]:
    return [
        pytest.param(seed, marks=pytest.mark.xfail(strict=False, reason=KNOWN_BUGS[seed]))
        if seed in KNOWN_BUGS
        else seed
        for seed in range(BASE, BASE + RUNS)
    ]


@pytest.mark.parametrize("seed", _seeds())
def test_chaos_run_keeps_every_invariant(seed: int, tmp_path: Path) -> None:
    scenario = generate(seed)
    print(
        f"chaos seed {seed}: {scenario.outcome}, {scenario.awaiters} awaiter(s), "
        f"fault rate {scenario.fault_rate}, churn {scenario.churn}"
    )
    result = run(scenario, tmp_path)
    assert result.violations == [], (
        f"seed {seed} broke invariants (replay: CHAOS_SEED={seed} CHAOS_RUNS=1 "
        f"pytest tests/chaos): {result.violations}"
    )

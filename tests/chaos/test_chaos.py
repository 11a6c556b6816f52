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


@pytest.mark.parametrize("seed", range(BASE, BASE + RUNS))
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

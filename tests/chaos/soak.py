"""`make soak`: hundreds of chaos runs, then totals (runs, outcomes, faults injected, leaks).

Usage: python -m tests.chaos.soak [--runs 300] [--seed 1]
Exits non-zero when any run broke an invariant; each such run is listed with its seed.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

from tests.chaos.scenarios import generate, run


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    outcomes: collections.Counter[str] = collections.Counter()
    codes: collections.Counter[int] = collections.Counter()
    faults = awaiters = leaks = 0
    broken: list[tuple[int, list[str]]] = []
    started = time.monotonic()
    for seed in range(args.seed, args.seed + args.runs):
        scenario = generate(seed)
        with tempfile.TemporaryDirectory(prefix=f"soak-{seed}-") as tmp:
            result = run(scenario, Path(tmp))
        outcomes[scenario.outcome] += 1
        awaiters += len(result.runs)
        codes.update(r.code for r in result.runs)
        faults += result.faults_injected
        leaks += sum(1 for v in result.violations if v.startswith("leaked"))
        if result.violations:
            broken.append((seed, result.violations))
            print(f"seed {seed}: BROKEN {result.violations}", flush=True)
        else:
            print(
                f"seed {seed}: ok ({scenario.outcome}, codes "
                f"{[r.code for r in result.runs]}, {result.faults_injected} faults)",
                flush=True,
            )
    print()
    print(
        f"runs: {args.runs} scenarios, {awaiters} awaiter processes, "
        f"{time.monotonic() - started:.0f} s"
    )
    print(f"outcomes: {dict(outcomes)}; exit codes: {dict(sorted(codes.items()))}")
    print(f"faults injected: {faults}; leaks: {leaks}; invariant violations: {len(broken)}")
    for seed, problems in broken:
        print(f"  replay with CHAOS_SEED={seed} CHAOS_RUNS=1 pytest tests/chaos: {problems}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

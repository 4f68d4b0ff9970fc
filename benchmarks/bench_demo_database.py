"""How long `mediavault db init` takes: build the default-seed demo database a few times.

Run: ``python benchmarks/bench_demo_database.py [--repeat N]`` (``make bench`` runs every script
here). The budget is 10 s per build; the target is 2-3 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import date
from pathlib import Path

from mediavault.tools.business_db.demo_database import build_demo_database

BUDGET_SECONDS = 10.0
AS_OF = date(2026, 3, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    timings: list[float] = []
    with tempfile.TemporaryDirectory() as directory:
        for run in range(args.repeat):
            summary = build_demo_database(
                Path(directory) / f"demo-{run}.sqlite", seed=args.seed, as_of=AS_OF
            )
            timings.append(summary.seconds)
    rows = sum(summary.row_counts.values())
    print(
        f"demo database (seed {args.seed}): {rows:,} rows, "
        f"{summary.row_counts['rental']:,} rentals; build "
        f"min {min(timings):.2f} s, median {statistics.median(timings):.2f} s, "
        f"max {max(timings):.2f} s over {args.repeat} run(s) (budget {BUDGET_SECONDS:.0f} s)"
    )
    return 0 if max(timings) < BUDGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())

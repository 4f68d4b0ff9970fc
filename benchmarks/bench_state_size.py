"""State left per finished email (checkpoints, cases, audit log) and resident memory, per
checkpoint retention policy, on SQLite and on Postgres.

Each configuration runs in a process of its own on a fresh state directory (and, for
Postgres, a fresh database on a throwaway local server started from
tests/integration/postgres_cluster.py). Emails from the sample inbox, each under a new id, are
triaged with the offline `rules` model and review turned off, so every one finishes;
``run_triage_batch`` runs them at ``--concurrency``. Printed: bytes per finished email in
each store, resident memory (now and peak) as the run goes, and emails per second.

``--policies all`` is today's behaviour (every checkpoint kept). ``--emails 10000`` is slow on
a shared machine; the table also extrapolates each store to 10,000 emails from the measured
bytes per email (all three grow linearly per finished email: one case, one audit trail, one
final checkpoint or none).

    python benchmarks/bench_state_size.py [--emails 1000] [--backends sqlite postgres]
                                          [--policies all last none] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
INBOX = REPO / "examples" / "inbox.csv"
#: Resident memory is sampled after every this many emails.
SAMPLE_EVERY = 250
CHECKPOINT_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes",
                     "checkpoint_migrations")


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _file_bytes(path: Path) -> int:
    """A SQLite file with its WAL folded in (as it would be after a clean close)."""
    if not path.exists():
        return 0
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _postgres_bytes(dsn: str) -> tuple[int, int, int]:
    """(checkpoint tables on disk, every other table on disk, live checkpoint rows), after
    the VACUUM that autovacuum would run. Space freed by deletes is reused by later rows but
    stays in the files, so the live figure is what the state itself takes."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("VACUUM")
        rows = connection.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'").fetchall()
        live = sum(int(connection.execute(
            f"SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t").fetchone()[0])
            for table in CHECKPOINT_TABLES[:3])
    checkpoints = sum(size for name, size in rows if name in CHECKPOINT_TABLES)
    return (checkpoints, sum(size for name, size in rows if name not in CHECKPOINT_TABLES),
            live)


def run_one(backend: str, policy: str, count: int, concurrency: int, dsn: str | None,
            db: Path) -> dict[str, Any]:
    """One configuration, in this process: triage ``count`` emails and measure."""
    from mediavault.agent.mail.csv_inbox import read_inbox_csv
    from mediavault.agent.ops.batch import run_triage_batch
    from mediavault.graph.context import Context

    inbox = read_inbox_csv(INBOX).emails
    home = Path(tempfile.mkdtemp(prefix=f"mv-state-{backend}-{policy}-"))
    settings: dict[str, Any] = {"home": home, "db": str(db), "review": "none",
                                "today": date(2026, 3, 2)}
    if backend == "postgres":
        settings["state_db"] = dsn
    if any(f.name == "checkpoint_retention" for f in dataclasses.fields(Context)):
        settings["checkpoint_retention"] = policy
    elif policy != "all":
        raise SystemExit("this version keeps every checkpoint: only --policies all applies")
    context = Context(**settings)
    samples: list[tuple[int, float]] = []
    statuses: dict[str, int] = {}
    started = time.perf_counter()
    for start in range(0, count, SAMPLE_EVERY):
        chunk = [inbox[i % len(inbox)].model_copy(update={"email_id": f"bench-{i:06d}"})
                 for i in range(start, min(count, start + SAMPLE_EVERY))]
        for result in run_triage_batch(chunk, context=context, concurrency=concurrency):
            statuses[result.status] = statuses.get(result.status, 0) + 1
        samples.append((min(count, start + SAMPLE_EVERY), round(_rss_mb(), 1)))
    elapsed = time.perf_counter() - started
    if backend == "postgres":
        assert dsn is not None
        checkpoints, cases, live = _postgres_bytes(dsn)
    else:
        checkpoints, cases = (_file_bytes(context.checkpoint_path),
                              _file_bytes(context.cases_path))
        with sqlite3.connect(context.checkpoint_path) as connection:
            live = int(connection.execute(
                "SELECT (SELECT coalesce(sum(length(checkpoint) + length(metadata)), 0) "
                "FROM checkpoints) + (SELECT coalesce(sum(length(value)), 0) FROM writes)"
            ).fetchone()[0])
    audit = context.audit_path.stat().st_size
    outbox = sum(p.stat().st_size for p in context.outbox_path.glob("*.eml"))
    shutil.rmtree(home, ignore_errors=True)  # a run under `all` leaves hundreds of MB
    return {
        "backend": backend, "policy": policy, "emails": count, "statuses": statuses,
        "seconds": round(elapsed, 1), "emails_per_second": round(count / elapsed, 2),
        "checkpoint_bytes": checkpoints, "live_checkpoint_bytes": live, "case_bytes": cases,
        "audit_bytes": audit,
        "outbox_bytes": outbox, "rss_mb": samples, "peak_rss_mb": round(_peak_mb(), 1),
    }


def _kb(value: float) -> str:
    return f"{value / 1024:8.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"],
                        choices=["sqlite", "postgres"])
    parser.add_argument("--policies", nargs="+", default=["all", "last", "none"],
                        choices=["all", "last", "none"])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter of the version to measure (another checkout's venv)")
    parser.add_argument("--one", nargs=4, metavar=("BACKEND", "POLICY", "DB", "DSN"),
                        help=argparse.SUPPRESS)  # a child process: one configuration
    args = parser.parse_args()

    if args.one:
        backend, policy, db, dsn = args.one
        print(json.dumps(run_one(backend, policy, args.emails, args.concurrency,
                                 None if dsn == "-" else dsn, Path(db))))
        return

    from mediavault.tools.business_db.demo_database import build_demo_database

    work = Path(tempfile.mkdtemp(prefix="mv-state-bench-"))
    db = work / "sakila_demo.sqlite"
    build_demo_database(db, seed=42, as_of=date(2026, 3, 2))
    cluster = None
    if "postgres" in args.backends:
        sys.path.insert(0, str(REPO / "tests" / "integration"))
        from postgres_cluster import PostgresCluster, require_server_binaries

        cluster = PostgresCluster(require_server_binaries()).start()
    rows = []
    try:
        for backend in args.backends:
            for policy in args.policies:
                dsn = "-"
                if backend == "postgres":
                    assert cluster is not None
                    dsn = cluster.dsn(cluster.create_database(f"state_{policy}"))
                done = subprocess.run(
                    [args.python, __file__, "--emails", str(args.emails), "--concurrency",
                     str(args.concurrency), "--one", backend, policy, str(db), dsn],
                    capture_output=True, text=True, check=False, cwd=REPO)
                if done.returncode != 0:
                    print(f"{backend}/{policy} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                    continue
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
    finally:
        if cluster is not None:
            cluster.stop()

    print(f"\nState per finished email after {args.emails} emails (KB), offline rules model, "
          f"review off, concurrency {args.concurrency}")
    print("checkpts: on disk (SQLite file and WAL; Postgres tables after VACUUM); live: the "
          "checkpoint rows themselves; at 10,000: checkpoints / cases / audit in MB")
    print(f"{'backend':9} {'policy':6} {'checkpts':>8} {'live':>8} {'cases':>8} {'audit':>8} "
          f"{'email/s':>8} {'peak MB':>8}  {'at 10,000':>16}  RSS MB every {SAMPLE_EVERY}")
    for row in rows:
        n = row["emails"]
        per = {key: row[f"{key}_bytes"] / n for key in ("checkpoint", "case", "audit")}
        at_10k = " / ".join(f"{per[k] * 10_000 / 2**20:.0f}" for k in per)
        rss = " ".join(str(mb) for _, mb in row["rss_mb"])
        print(f"{row['backend']:9} {row['policy']:6} {_kb(per['checkpoint'])} "
              f"{_kb(row['live_checkpoint_bytes'] / n)} {_kb(per['case'])} "
              f"{_kb(per['audit'])} {row['emails_per_second']:8.2f} {row['peak_rss_mb']:8.1f}  "
              f"{at_10k:>16}  {rss}")


if __name__ == "__main__":
    main()

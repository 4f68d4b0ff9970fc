"""What the SQL guard and sender scoping cost per query, next to a plain SQLite execute.

For a handful of typical agent queries, prints the median over many runs of:

* raw      -- execute + fetchall on a plain read-only connection holding the same TEMP tables;
* guard    -- guard_sql alone (parse, allowlist check, LIMIT rewrite, re-check);
* scoped   -- the rewritten statement on the scoped connection (authorizer, time budget, caps,
              JSON-ready rows);
* total    -- ScopedSession.run_query end to end (guard + scope check + scoped execute);

in microseconds, with total/raw as a ratio. Also prints the cost of opening a session (a
connection plus the sender's TEMP tables), paid once per session.

Run: ``python benchmarks/bench_sql_guard.py [--db PATH] [--runs N]``; without ``--db`` a demo
database is built in a temporary directory.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from datetime import date
from pathlib import Path

from mediavault.tools.business_db.sessions import open_business_db
from mediavault.tools.business_db.sql_guard import _remembered_verdict, guard_sql
from mediavault.tools.business_db.sqlite import SCOPE_TABLES, ScopedConnection, connect_read_only

QUERIES: dict[str, str] = {
    "recent rentals": "SELECT title, rental_date, due_date, return_date FROM my_rentals "
    "ORDER BY rental_date DESC LIMIT 10",
    "open rentals": "SELECT count(*) AS still_out FROM my_rentals WHERE return_date IS NULL",
    "payments total": "SELECT round(sum(amount), 2) AS total FROM my_payments",
    "film search": "SELECT film_id, title, rental_rate FROM film WHERE title LIKE '%LOVE%'",
    "copies by store": "SELECT i.store_id, count(*) AS copies FROM inventory i "
    "JOIN film f USING (film_id) WHERE f.title LIKE 'A%' GROUP BY i.store_id",
    "films per category": "SELECT c.name, count(*) AS films FROM film_category fc "
    "JOIN category c USING (category_id) GROUP BY c.name ORDER BY films DESC",
}


def _median_us(action: Callable[[], object], runs: int) -> float:
    action()  # warm up caches and statement compilation paths
    samples = []
    for _ in range(runs):
        started = time.perf_counter_ns()
        action()
        samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / 1000


def _sender_email(path: Path) -> str:
    with closing(connect_read_only(path)) as conn:
        row = conn.execute(
            "SELECT email FROM customer WHERE customer_id IN (SELECT customer_id FROM rental) "
            "AND email IS NOT NULL ORDER BY customer_id LIMIT 1"
        ).fetchone()
    return str(row[0])


def _raw_connection(path: Path, customer_id: int) -> sqlite3.Connection:
    """A plain read-only connection with the same TEMP tables and no protections."""
    conn = connect_read_only(path)
    for table in SCOPE_TABLES:
        conn.execute(table.create_sql())
        conn.execute(table.insert_sql(), {"customer_id": customer_id})
    return conn


def run(path: Path, runs: int) -> None:
    """Print the benchmark table for the database at ``path``."""
    with open_business_db(path) as database:
        customer = database.resolve_sender(_sender_email(path))
        assert customer is not None
        open_us = _median_us(lambda: ScopedConnection(path, customer).close(), max(runs // 10, 20))
        scoped = ScopedConnection(path, customer)
        raw = _raw_connection(path, customer.customer_id)
        try:
            with database.session(customer) as session:
                print(f"database: {path}  (median of {runs} runs, microseconds)")
                print(f"opening a session (connection + sender's TEMP tables): {open_us:,.0f} us")
                print(
                    f"{'query':<20}{'raw':>9}{'guard':>9}{'scoped':>9}{'total':>9}"
                    f"{'overhead':>10}{'ratio':>8}"
                )
                for name, sql in QUERIES.items():
                    guarded = guard_sql(sql)
                    raw_us = _median_us(lambda: raw.execute(sql).fetchall(), runs)  # noqa: B023
                    # The guard remembers verdicts; clear them so each run parses afresh.
                    guard_us = _median_us(
                        lambda: (_remembered_verdict.cache_clear(), guard_sql(sql)),  # noqa: B023
                        runs,
                    )
                    scoped_us = _median_us(
                        lambda: scoped.execute(guarded.sql),  # noqa: B023
                        runs,
                    )
                    # As in the agent: the gate checks the text (a cold parse), then the data
                    # layer checks it again (remembered) and runs it.
                    total_us = _median_us(
                        lambda: (
                            _remembered_verdict.cache_clear(),
                            guard_sql(sql),  # noqa: B023
                            session.run_query(sql),  # noqa: B023
                        ),
                        runs,
                    )
                    print(
                        f"{name:<20}{raw_us:>9,.0f}{guard_us:>9,.0f}{scoped_us:>9,.0f}"
                        f"{total_us:>9,.0f}{total_us - raw_us:>10,.0f}"
                        f"{total_us / raw_us:>7.1f}x"
                    )
        finally:
            scoped.close()
            raw.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="Sakila SQLite file (default: build a demo one)")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    if args.db is not None:
        run(args.db, args.runs)
        return 0
    from mediavault.tools.business_db.demo_database import build_demo_database

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "sakila_demo.sqlite"
        build_demo_database(path, seed=42, as_of=date(2026, 3, 2))
        run(path, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

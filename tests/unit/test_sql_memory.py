"""No guard-approved query holds more than 64 MB of memory on the agent's SQLite connection.

Sorts, DISTINCT, GROUP BY and window frames over a cross join are the expensive shapes: with
TEMP storage in memory one of them held 0.8 GB. Each query runs in a fresh process, through
the SQL guard and the scoped session exactly as the agent runs it, and the process's peak
resident memory is compared before and after.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mediavault.tools.business_db.sqlite import SQL_MEMORY_BYTES

HOSTILE_QUERIES = [
    "SELECT count(DISTINCT a.description || b.description || c.title) AS n "
    "FROM film a, film b, film c",
    "SELECT a.description, row_number() OVER (ORDER BY a.description || b.title) AS r "
    "FROM film a, film b",
    "SELECT a.description || b.description AS x FROM film a, film b GROUP BY x",
    "SELECT a.description || b.description AS x FROM film a, film b ORDER BY x DESC",
    "SELECT group_concat(a.description || b.description) AS g FROM film a, film b",
    "SELECT r.title, r.rental_date FROM my_rentals r, film f, film g "
    "ORDER BY f.description || g.description",
]

_PROBE = """
import json, resource, sys
from pathlib import Path
from mediavault.tools.business_db.sqlite import SqliteBusinessDatabase
from mediavault.tools.business_db.sessions import DataAccessRefused
database = SqliteBusinessDatabase(Path(sys.argv[1]), time_budget_seconds=2.0)
customer = database.resolve_sender("dana.whitfield@example.com")
with database.session(customer) as session:
    session.run_query("SELECT title FROM film LIMIT 1")  # warm: imports, scope tables
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        session.run_query(sys.argv[2])
        outcome = "rows"
    except DataAccessRefused as refusal:
        outcome = refusal.rule
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_kib": after - before, "outcome": outcome}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_a_guard_approved_query_holds_at_most_64_mb(demo_db_path: Path, query: str) -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE, str(demo_db_path), query],
                          capture_output=True, text=True, timeout=120, check=True)
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"peak {probe['peak_kib'] / 1024:.1f} MB, {probe['outcome']}")
    assert probe["peak_kib"] * 1024 <= SQL_MEMORY_BYTES, probe
    assert probe["outcome"] in ("rows", "time_budget", "result_size", "row_limit"), probe


def test_the_agent_connection_spills_to_a_file_and_caps_its_page_cache(
    demo_db_path: Path,
) -> None:
    from mediavault.tools.business_db.sqlite import connect_read_only

    conn = connect_read_only(demo_db_path)
    try:
        assert conn.execute("PRAGMA temp_store").fetchone()[0] == 1  # FILE
        assert conn.execute("PRAGMA cache_size").fetchone()[0] < 0  # a size in KiB
        assert -conn.execute("PRAGMA cache_size").fetchone()[0] * 1024 < SQL_MEMORY_BYTES // 4
        assert conn.execute("PRAGMA mmap_size").fetchone()[0] == 0
    finally:
        conn.close()

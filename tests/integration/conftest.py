"""Fixtures for the integration tests that need a PostgreSQL server.

One throwaway cluster per test session (started on first use, stopped at the end); tests get
databases of their own from it. When ``CI=true`` the tests fail, never skip, if PostgreSQL is
not installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from postgres_cluster import PostgresCluster, require_server_binaries


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """A running PostgreSQL cluster for the whole session (superuser ``postgres``)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        message = "psycopg is missing: install the postgres extra (pip install -e '.[postgres]')"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (needed when CI=true)")
        pytest.skip(message)
    cluster = PostgresCluster(require_server_binaries()).start()
    try:
        yield cluster
    finally:
        cluster.stop()

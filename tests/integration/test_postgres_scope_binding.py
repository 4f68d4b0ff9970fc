"""The agent role's own credentials cannot widen what it reads or loosen its limits.

Everything here connects with psycopg as ``mediavault_agent`` directly, as anyone holding the
role's password could: no guard, no application. The customer scope is bound only by a token
signed with the application's key for this very backend; and a session that disables or raises
its timeouts or memory limits is refused every read of business data until it resets them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from postgres_cluster import PostgresCluster, shared_cluster
from psycopg import sql

from mediavault.tools.business_db.scope_token import (
    IDENTIFY_BACKEND_SQL,
    SCOPE_KEY_ENV,
    Backend,
    new_scope_key,
    sign_scope,
)
from mediavault.tools.business_db.sessions import BusinessDatabaseError, open_business_db

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> PostgresCluster:
    return shared_cluster(request)


@dataclass(frozen=True)
class Deployment:
    admin_dsn: str
    agent_dsn: str
    key: bytes
    sender: int
    other: int


@pytest.fixture(scope="module")
def deployment(pg_cluster: PostgresCluster, demo_db_path: Path) -> Iterator[Deployment]:
    from mediavault.tools.business_db.postgres_loader import init_postgres_database

    database = pg_cluster.create_database("scope")
    admin = pg_cluster.dsn(database)
    summary = init_postgres_database(admin, sqlite_path=demo_db_path, scope_key=new_scope_key())
    with psycopg.connect(admin) as conn:
        sender, other = (
            row[0]
            for row in conn.execute(
                "SELECT customer_id FROM customer WHERE customer_id IN "
                "(SELECT customer_id FROM rental) ORDER BY customer_id LIMIT 2"
            )
        )
    yield Deployment(admin, summary.agent_dsn, bytes.fromhex(summary.scope_key), sender, other)
    pg_cluster.drop_database(database)


@pytest.fixture
def agent(deployment: Deployment) -> Iterator[psycopg.Connection[Any]]:
    """A raw connection with nothing but the agent role's credentials."""
    with psycopg.connect(deployment.agent_dsn, autocommit=True) as conn:
        yield conn


def _backend(conn: psycopg.Connection[Any]) -> tuple[Backend, int]:
    pid, started_us, server_now = conn.execute(IDENTIFY_BACKEND_SQL).fetchone()
    return Backend(pid, started_us), server_now


def _set_scope(conn: psycopg.Connection[Any], token: str) -> None:
    conn.execute(sql.SQL("SET mediavault.scope = {}").format(sql.Literal(token)))


def _visible(conn: psycopg.Connection[Any]) -> tuple[list[int], int, int]:
    """The account ids, rentals and payments this session can see."""
    accounts = [row[0] for row in conn.execute("SELECT customer_id FROM my_account")]
    rentals = conn.execute("SELECT count(*) FROM my_rentals").fetchone()[0]
    payments = conn.execute("SELECT count(*) FROM my_payments").fetchone()[0]
    return accounts, rentals, payments


NOTHING = ([], 0, 0)


def test_setting_a_customer_id_by_hand_shows_nobody(
    deployment: Deployment, agent: psycopg.Connection[Any]
) -> None:
    for setting in ("mediavault.customer_id", "mediavault.scope"):
        for customer in (deployment.sender, deployment.other):
            agent.execute(f"SET {setting} = '{customer}'")
            assert _visible(agent) == NOTHING, (setting, customer)
            agent.execute("BEGIN")
            agent.execute(f"SET LOCAL {setting} = '{customer}'")
            assert _visible(agent) == NOTHING, (setting, customer)
            agent.execute("ROLLBACK")


def test_only_a_token_signed_for_this_backend_binds_the_scope(
    deployment: Deployment, agent: psycopg.Connection[Any]
) -> None:
    backend, now = _backend(agent)
    _set_scope(agent, sign_scope(deployment.key, deployment.other, backend, now + 60))
    accounts, rentals, _ = _visible(agent)
    assert accounts == [deployment.other] and rentals > 0

    valid = sign_scope(deployment.key, deployment.sender, backend, now + 60)
    head, _, digest = valid.rpartition(":")
    forged = {
        "another key": sign_scope(bytes(32), deployment.sender, backend, now + 60),
        "another customer, same signature": valid.replace(
            f"v1:{deployment.sender}:", f"v1:{deployment.other}:"
        ),
        "a flipped signature": f"{head}:{digest[::-1]}",
        "expired": sign_scope(deployment.key, deployment.sender, backend, now - 1),
        "a reused process id": sign_scope(
            deployment.key, deployment.sender, Backend(backend.pid, backend.started_us + 1),
            now + 60,
        ),
        "trailing text": valid + " OR true",
        "empty": "",
    }
    for what, token in forged.items():
        _set_scope(agent, token)
        assert _visible(agent) == NOTHING, what


def test_a_token_is_worthless_on_any_other_connection(
    deployment: Deployment, agent: psycopg.Connection[Any]
) -> None:
    """A token seen in pg_stat_activity (the application's SET is visible to the role) cannot
    be replayed from another session of the same role."""
    with psycopg.connect(deployment.agent_dsn, autocommit=True) as application:
        backend, now = _backend(application)
        token = sign_scope(deployment.key, deployment.other, backend, now + 60)
        _set_scope(application, token)
        assert _visible(application)[0] == [deployment.other]
        _set_scope(agent, token)
        assert _visible(agent) == NOTHING


LOOSENED = [
    ("statement_timeout", "0"),
    ("statement_timeout", "1h"),
    ("lock_timeout", "0"),
    ("idle_in_transaction_session_timeout", "0"),
    ("work_mem", "1GB"),
    ("hash_mem_multiplier", "100"),
    ("max_parallel_workers_per_gather", "16"),
]


@pytest.mark.parametrize(("setting", "value"), LOOSENED)
def test_a_session_that_loosens_its_limits_is_refused_until_it_resets_them(
    deployment: Deployment, agent: psycopg.Connection[Any], setting: str, value: str
) -> None:
    backend, now = _backend(agent)
    _set_scope(agent, sign_scope(deployment.key, deployment.sender, backend, now + 60))
    assert agent.execute("SELECT count(*) FROM film").fetchone()[0] > 0

    agent.execute(sql.SQL("SET {} = {}").format(sql.Identifier(setting), sql.Literal(value)))
    for query in (
        "SELECT count(*) FROM film",
        "SELECT count(*) FROM film_list",  # a view, read as its owner
        "SELECT count(*) FROM inventory AS a CROSS JOIN inventory AS b",
        "SELECT count(*) FROM my_rentals",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="loosened its limits"):
            agent.execute(query)

    agent.execute(sql.SQL("RESET {}").format(sql.Identifier(setting)))
    assert agent.execute("SELECT count(*) FROM my_account").fetchone()[0] == 1
    agent.execute("SET statement_timeout = '1s'")  # tighter is always allowed
    assert agent.execute("SELECT count(*) FROM film").fetchone()[0] > 0


def test_limits_loosened_in_the_connection_options_are_refused_too(
    deployment: Deployment,
) -> None:
    """Connection options outrank the role's settings: the check reads what is in force."""
    options = "-c statement_timeout=0 -c work_mem=512MB"
    with psycopg.connect(deployment.agent_dsn, autocommit=True, options=options) as agent:
        assert agent.execute("SHOW statement_timeout").fetchone() == ("0",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="work_mem = 512MB"):
            agent.execute("SELECT count(*) FROM film")


def test_the_ceilings_are_the_roles_own_settings(deployment: Deployment) -> None:
    """An operator changes a limit where the docs say (ALTER ROLE ... IN DATABASE ... SET):
    the check follows at once, for sessions already open too."""
    database = psycopg.conninfo.conninfo_to_dict(deployment.agent_dsn)["dbname"]
    alter = f'ALTER ROLE mediavault_agent IN DATABASE "{database}"'
    with psycopg.connect(deployment.agent_dsn, autocommit=True) as agent:
        agent.execute("SET statement_timeout = '4s'")  # under the provisioned 5 s
        assert agent.execute("SELECT count(*) FROM film").fetchone()[0] > 0
        with psycopg.connect(deployment.admin_dsn, autocommit=True) as admin:
            admin.execute(f"{alter} SET statement_timeout = '3s'")
        try:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="statement_timeout"):
                agent.execute("SELECT count(*) FROM film")
            agent.execute("SET statement_timeout = '3000ms'")
            assert agent.execute("SELECT count(*) FROM film").fetchone()[0] > 0
        finally:
            with psycopg.connect(deployment.admin_dsn, autocommit=True) as admin:
                admin.execute(f"{alter} SET statement_timeout = '5s'")


def test_the_application_needs_the_key_db_init_stored(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SCOPE_KEY_ENV, raising=False)
    with pytest.raises(BusinessDatabaseError, match=SCOPE_KEY_ENV):
        open_business_db(deployment.agent_dsn)
    monkeypatch.setenv(SCOPE_KEY_ENV, new_scope_key())
    with pytest.raises(BusinessDatabaseError, match="not the key"):
        open_business_db(deployment.agent_dsn)

    monkeypatch.setenv(SCOPE_KEY_ENV, deployment.key.hex())
    with psycopg.connect(deployment.admin_dsn) as admin:
        email = admin.execute(
            "SELECT email FROM customer WHERE customer_id = %s", [deployment.sender]
        ).fetchone()[0]
    with open_business_db(deployment.agent_dsn) as database:
        sender = database.resolve_sender(email)
        assert sender is not None
        with database.session(sender) as session:
            rows = session.run_query("SELECT customer_id FROM my_account").rows
    assert rows == [{"customer_id": deployment.sender}]

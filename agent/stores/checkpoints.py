"""Where the graph's checkpoints live: a SQLite file by default, Postgres for many workers.

``Context.state_db`` (``MEDIAVAULT_STATE_DB``) decides. Unset, checkpoints go to
``checkpoints.sqlite`` in ``MEDIAVAULT_HOME`` (one machine). Set to a ``postgresql://`` DSN,
they go to LangGraph's Postgres saver, so any worker on any machine can continue or resume any
email's thread.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from mediavault.agent.stores.state_files import prepare_home, private_file
from mediavault.graph.context import ConfigurationError, Context

#: How long a SQLite checkpoint writer waits for another process's write.
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
#: Advisory-lock key that serialises schema set-up between workers starting together.
_SETUP_LOCK_KEY = 0x4D56_4350  # "MVCP"

# Writers of one checkpoint file take turns; SQLite would otherwise answer "database is locked".
_SQLITE_LOCKS: dict[str, threading.RLock] = {}
_SQLITE_LOCKS_GUARD = threading.Lock()
# DSNs whose checkpoint tables this process has already set up.
_READY: set[str] = set()
_READY_GUARD = threading.Lock()


def uses_postgres_state(context: Context) -> bool:
    """Whether checkpoints and cases live on a Postgres server for this context."""
    return bool(context.state_db and context.state_db.strip())


def _state_dsn(context: Context) -> str:
    dsn = (context.state_db or "").strip()
    if not dsn.lower().startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(
            "MEDIAVAULT_STATE_DB must be a postgresql:// DSN (checkpoints and cases for "
            "several workers); leave it unset to keep them in files in MEDIAVAULT_HOME"
        )
    return dsn


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError(
            "MEDIAVAULT_STATE_DB needs the `postgres` extra: "
            "pip install 'mediavault-agent[postgres]'"
        ) from None
    return psycopg


def _sqlite_lock(context: Context) -> threading.RLock:
    key = str(context.checkpoint_path.resolve())
    with _SQLITE_LOCKS_GUARD:
        return _SQLITE_LOCKS.setdefault(key, threading.RLock())


@contextmanager
def open_checkpointer(context: Context) -> Iterator[BaseCheckpointSaver[Any]]:
    """The checkpoint saver the context asks for, open for the duration of the block."""
    if uses_postgres_state(context):
        with _postgres_saver(_state_dsn(context)) as saver:
            yield saver
        return
    with _sqlite_lock(context):
        yield _sqlite_saver(context)


@dataclass
class _OpenSaver:
    saver: SqliteSaver
    pid: int
    inode: int


#: SQLite savers kept open, per checkpoint file: connecting, and the WAL checkpoint that
#: closing the last connection runs, cost more than a whole run's checkpoint writes.
_SQLITE_SAVERS: OrderedDict[str, _OpenSaver] = OrderedDict()
#: Files whose savers stay open at once; the least recently used one beyond that is closed.
MAX_OPEN_SQLITE_SAVERS = 8


def _sqlite_saver(context: Context) -> SqliteSaver:
    """The open saver of the context's checkpoint file (called with its lock held).

    A saver is opened again in a forked child (SQLite connections must not cross a fork) and
    when the file was deleted or replaced, so that nothing is written to an unlinked file.
    """
    path = context.checkpoint_path
    key = str(path.resolve())
    try:
        inode: int | None = path.stat().st_ino
    except FileNotFoundError:
        inode = None
    with _SQLITE_LOCKS_GUARD:
        entry = _SQLITE_SAVERS.get(key)
        if entry is not None and (entry.pid, entry.inode) == (os.getpid(), inode):
            _SQLITE_SAVERS.move_to_end(key)
            return entry.saver
    if entry is not None and entry.pid == os.getpid():
        entry.saver.conn.close()
    prepare_home(context)
    private_file(path)  # created 0600 here: SQLite would use the umask (world-readable)
    connection = sqlite3.connect(str(path), check_same_thread=False,
                                 timeout=SQLITE_BUSY_TIMEOUT_SECONDS)
    connection.execute("PRAGMA journal_mode=WAL")
    saver = SqliteSaver(connection)
    saver.setup()
    with _SQLITE_LOCKS_GUARD:
        _SQLITE_SAVERS[key] = _OpenSaver(saver, os.getpid(), path.stat().st_ino)
        _SQLITE_SAVERS.move_to_end(key)
        idle = [name for name in _SQLITE_SAVERS
                if name != key and not _in_use(_SQLITE_LOCKS.get(name))]
        for name in idle[: max(0, len(_SQLITE_SAVERS) - MAX_OPEN_SQLITE_SAVERS)]:
            old = _SQLITE_SAVERS.pop(name)
            if old.pid == os.getpid():
                old.saver.conn.close()
    return saver


def _in_use(lock: threading.RLock | None) -> bool:
    """Whether a thread is using the saver of ``lock``'s file right now."""
    if lock is None:
        return False
    if not lock.acquire(blocking=False):
        return True
    lock.release()
    return False


@asynccontextmanager
async def open_async_checkpointer(context: Context) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """The asyncio twin of :func:`open_checkpointer`."""
    if uses_postgres_state(context):
        async with _async_postgres_saver(_state_dsn(context)) as saver:
            yield saver
        return
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    prepare_home(context)
    private_file(context.checkpoint_path)
    async with aiosqlite.connect(
        str(context.checkpoint_path), timeout=SQLITE_BUSY_TIMEOUT_SECONDS
    ) as connection:
        await connection.execute("PRAGMA journal_mode=WAL")
        yield AsyncSqliteSaver(connection)


def _connect_error(dsn: str, error: Exception) -> ConfigurationError:
    from mediavault.tools.business_db.postgres_loader import redact_dsn

    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ConfigurationError(f"cannot connect to the state database {redact_dsn(dsn)}: {first}")


#: How long a worker waits for another worker's checkpoint-table set-up.
SETUP_LOCK_WAIT_SECONDS = 120.0


def _take_setup_lock(connection: Any) -> None:
    """Take the set-up lock by polling, never by blocking.

    The saver's set-up runs ``CREATE INDEX CONCURRENTLY``, which waits for every open
    transaction to finish. A worker blocked in ``pg_advisory_lock`` is such a transaction, so
    blocking would deadlock; each ``pg_try_advisory_lock`` ends at once instead.
    """
    deadline = time.monotonic() + SETUP_LOCK_WAIT_SECONDS
    while not _locked(connection.execute("SELECT pg_try_advisory_lock(%s) AS locked",
                                         [_SETUP_LOCK_KEY]).fetchone()):
        if time.monotonic() > deadline:
            raise ConfigurationError("another worker has been setting up the checkpoint "
                                     "tables for too long; try again")
        time.sleep(0.05)


async def _atake_setup_lock(connection: Any) -> None:
    """The asyncio twin of :func:`_take_setup_lock`."""
    deadline = time.monotonic() + SETUP_LOCK_WAIT_SECONDS
    while True:
        cursor = await connection.execute("SELECT pg_try_advisory_lock(%s) AS locked",
                                          [_SETUP_LOCK_KEY])
        if _locked(await cursor.fetchone()):
            return
        if time.monotonic() > deadline:
            raise ConfigurationError("another worker has been setting up the checkpoint "
                                     "tables for too long; try again")
        await asyncio.sleep(0.05)


def _locked(row: Any) -> bool:
    return bool(row["locked"] if isinstance(row, dict) else row[0])


@contextmanager
def _postgres_saver(dsn: str) -> Iterator[BaseCheckpointSaver[Any]]:
    psycopg = _psycopg()
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    try:
        # The saver's own requirements: autocommit, no server-side prepared statements.
        connection = psycopg.Connection.connect(
            dsn, autocommit=True, prepare_threshold=0, row_factory=dict_row, connect_timeout=15
        )
    except psycopg.Error as error:
        raise _connect_error(dsn, error) from None
    try:
        saver = PostgresSaver(connection)
        with _READY_GUARD:
            if dsn not in _READY:
                # Workers starting together would race on CREATE TABLE; take turns.
                _take_setup_lock(connection)
                try:
                    saver.setup()
                finally:
                    connection.execute("SELECT pg_advisory_unlock(%s)", [_SETUP_LOCK_KEY])
                _READY.add(dsn)
        yield saver
    finally:
        connection.close()


@asynccontextmanager
async def _async_postgres_saver(dsn: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    psycopg = _psycopg()
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row

    try:
        connection = await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, prepare_threshold=0, row_factory=dict_row, connect_timeout=15
        )
    except psycopg.Error as error:
        raise _connect_error(dsn, error) from None
    try:
        saver = AsyncPostgresSaver(connection)
        if dsn not in _READY:
            await _atake_setup_lock(connection)
            try:
                await saver.setup()
            finally:
                await connection.execute("SELECT pg_advisory_unlock(%s)", [_SETUP_LOCK_KEY])
            with _READY_GUARD:
                _READY.add(dsn)
        yield saver
    finally:
        await connection.close()

"""Repair a damaged checkpoint file: move it aside, keep what can still be read, continue.

A checkpoint file damaged by a failing disk or a copy taken mid-write stops every triage with
"database disk image is malformed". Nothing in it is the record of an outcome: the case store
and the audit log hold those. :func:`repair_checkpoint_file` moves the file (with its WAL)
aside under a dated name, copies every email's checkpoints that still read back whole into a
new file, and says which reviews lost their run. Afterwards:

- a finished email answers a re-triage from the case store, and runs nothing again;
- a run that was in flight and was salvaged continues from its checkpoint;
- a run that could not be salvaged starts again from the beginning when its email is triaged
  again (a review that waited for it is drafted afresh).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mediavault.graph.context import ConfigurationError, Context

#: Files that belong to an SQLite database besides the main file.
_COMPANIONS = ("-wal", "-shm")


@dataclass(frozen=True)
class RepairReport:
    """What ``mediavault checkpoints repair`` found and did."""

    path: Path
    #: Whether the file needed repair (False: it passed SQLite's integrity check).
    damaged: bool
    problem: str | None = None
    #: Where the damaged file was moved (None when nothing was moved).
    moved_to: Path | None = None
    salvaged_threads: int = 0
    #: Runs that could not be read back (None: the file was unreadable, the count unknown).
    lost_threads: int | None = 0
    #: Email ids of reviews that waited on a run that could not be salvaged.
    lost_reviews: tuple[str, ...] = field(default_factory=tuple)


def integrity_problem(path: Path) -> str | None:
    """Why the checkpoint file is unusable, or None when SQLite's quick check passes."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            rows = connection.execute("PRAGMA quick_check").fetchall()
            connection.execute("SELECT count(*) FROM checkpoints").fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        return str(error)
    verdict = "; ".join(str(row[0]) for row in rows)
    return None if verdict == "ok" else verdict


def repair_checkpoint_file(context: Context, *, force: bool = False) -> RepairReport:
    """Move a damaged checkpoint file aside and keep what still reads back; see the module.

    A file that passes the integrity check is left alone unless ``force`` is set. Run it
    while no triage or worker uses the home: a process holding the old file open would keep
    writing to the moved file.
    """
    from mediavault.agent.stores.checkpoints import open_checkpointer, uses_postgres_state

    if uses_postgres_state(context):
        raise ConfigurationError(
            "checkpoints are on the Postgres server (MEDIAVAULT_STATE_DB): repair the server "
            "with its own tools; this command repairs the SQLite checkpoint file")
    path = context.checkpoint_path
    if not path.exists():
        return RepairReport(path=path, damaged=False)
    if not path.is_file():
        raise ConfigurationError(f"{path} is not a file")
    problem = integrity_problem(path)
    if problem is None and not force:
        return RepairReport(path=path, damaged=False)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    moved = path.with_name(f"{path.name}.damaged-{stamp}")
    os.replace(path, moved)
    for suffix in _COMPANIONS:  # the WAL must keep its database's name to be read with it
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.replace(companion, moved.with_name(moved.name + suffix))
    with open_checkpointer(context) as saver:  # a new, empty file
        salvaged, lost = _salvage(moved, saver.conn)  # type: ignore[attr-defined]
        readable = {thread for thread in salvaged if _reads_back(saver, thread)}
    if lost is not None:
        lost += len(salvaged) - len(readable)
    return RepairReport(
        path=path, damaged=problem is not None, problem=problem, moved_to=moved,
        salvaged_threads=len(readable), lost_threads=lost,
        lost_reviews=_lost_reviews(context, readable),
    )


def _salvage(damaged: Path, target: sqlite3.Connection) -> tuple[list[str], int | None]:
    """Copy each thread whose rows still read from ``damaged``: (copied threads, lost ones,
    None when not even the list of threads can be read)."""
    try:
        target.execute("ATTACH DATABASE ? AS damaged", (str(damaged),))
        target.execute("SELECT count(*) FROM damaged.sqlite_master").fetchone()
    except sqlite3.DatabaseError:
        return [], None  # not even its schema reads back: nothing to salvage
    try:
        try:
            threads = [row[0] for row in target.execute(
                "SELECT DISTINCT thread_id FROM damaged.checkpoints")]
        except sqlite3.DatabaseError:
            threads = _threads_by_row(target)
        copied: list[str] = []
        for thread_id in threads:
            try:
                with target:  # one transaction per thread: all of it, or none of it
                    target.execute(
                        "INSERT OR IGNORE INTO main.checkpoints (thread_id, checkpoint_ns, "
                        "checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata) "
                        "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, "
                        "type, checkpoint, metadata FROM damaged.checkpoints "
                        "WHERE thread_id = ?", (thread_id,))
                    target.execute(
                        "INSERT OR IGNORE INTO main.writes (thread_id, checkpoint_ns, "
                        "checkpoint_id, task_id, idx, channel, type, value) "
                        "SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, "
                        "type, value FROM damaged.writes WHERE thread_id = ?", (thread_id,))
            except sqlite3.DatabaseError:
                continue
            copied.append(thread_id)
        return copied, len(threads) - len(copied)
    finally:
        target.execute("DETACH DATABASE damaged")


def _threads_by_row(target: sqlite3.Connection) -> list[str]:
    """Thread ids read row by row, skipping rows on damaged pages (when a scan fails)."""
    try:
        highest = target.execute("SELECT max(rowid) FROM damaged.checkpoints").fetchone()[0]
    except sqlite3.DatabaseError:
        return []
    threads: dict[str, None] = {}
    for rowid in range(1, int(highest or 0) + 1):
        try:
            row = target.execute("SELECT thread_id FROM damaged.checkpoints WHERE rowid = ?",
                                 (rowid,)).fetchone()
        except sqlite3.DatabaseError:
            continue
        if row is not None:
            threads[str(row[0])] = None
    return list(threads)


def _reads_back(saver: object, thread_id: str) -> bool:
    """Whether the thread's latest checkpoint deserialises; a damaged one is removed."""
    try:
        saver.get_tuple({"configurable": {"thread_id": thread_id}})  # type: ignore[attr-defined]
        return True
    except Exception:
        saver.delete_thread(thread_id)  # type: ignore[attr-defined]
        return False


def _lost_reviews(context: Context, salvaged: set[str]) -> tuple[str, ...]:
    """Cases waiting for review whose run is not in the repaired file."""
    from mediavault.agent.stores.case_store_postgres import open_case_store

    if not context.cases_path.exists():  # reading never creates a case store
        return ()
    store = open_case_store(context)
    return tuple(case.email_id for case in store.pending_reviews()
                 if case.thread_id not in salvaged)

"""The business date: the "today" every due date, late fee and rental status is measured against.

``mediavault db init`` stamps it into the database file as ``PRAGMA user_version = YYYYMMDD``
(the Sakila schema has no room for it and must stay exactly Sakila's). An explicit override
(``--as-of``, ``MEDIAVAULT_TODAY``) wins; a file without a stamp (the original Sakila file has
``user_version = 0``) falls back to the calendar date.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import date
from pathlib import Path


class BusinessDateError(ValueError):
    """The business date cannot be read from the database file; the message says why."""


def stamp_value(day: date) -> int:
    """The ``user_version`` value that stamps ``day`` into a database file."""
    return day.year * 10_000 + day.month * 100 + day.day


def stamped_business_date(db_path: Path) -> date | None:
    """The date stamped in ``db_path``, or ``None`` when it carries no valid YYYYMMDD stamp."""
    if not Path(db_path).is_file():
        raise BusinessDateError(f"database {db_path} does not exist")
    uri = Path(db_path).resolve().as_uri() + "?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as connection:
            (value,) = connection.execute("PRAGMA user_version").fetchone()
    except sqlite3.DatabaseError as error:
        raise BusinessDateError(f"cannot read {db_path}: {error}") from None
    if not 1900_01_01 <= value <= 9999_12_31:  # 0: never stamped
        return None
    try:
        return date(value // 10_000, value // 100 % 100, value % 100)
    except ValueError:  # another application's number, e.g. 20261340
        return None


def business_date(db_path: Path, override: date | None = None) -> date:
    """``override`` if given, else the date stamped in ``db_path``, else the calendar date."""
    if override is not None:
        return override
    return stamped_business_date(db_path) or date.today()

"""Runtime context: the one settings object every node, tool and command receives.

Nodes read it through ``runtime: Runtime[Context]``; callers pass ``context=Context(...)`` on
every invoke and resume. Every field has an environment-variable default so that the defaults
work with no configuration at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from mediavault.policies import reason_codes

DEFAULT_HOME = ".mediavault"
DEMO_DB_NAME = "sakila_demo.sqlite"

#: Environment variables read by :class:`Context`, documented in the README.
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "MEDIAVAULT_DB": "Business database: a Sakila SQLite file or a postgresql:// DSN for the "
    "SELECT-only agent role (default: the demo database in MEDIAVAULT_HOME).",
    "MEDIAVAULT_STATE_DB": "Shared operations state for several workers: a postgresql:// DSN "
    "holding checkpoints and cases (default: SQLite files in MEDIAVAULT_HOME).",
    "MEDIAVAULT_HOME": "State directory for the demo database, checkpoints, cases and the audit "
    "log (default: ./.mediavault).",
    "MEDIAVAULT_MODEL": "Chat model: `rules` (offline, default) or `openai:<model>`.",
    "MEDIAVAULT_TODAY": "Business date override (YYYY-MM-DD), e.g. 2006-02-20 for the original "
    "Sakila data.",
    "MEDIAVAULT_AUDIT_KEY": "Secret (16+ bytes) that turns the audit hash chain into an HMAC "
    "chain, so edits, recomputation and truncation are all detectable.",
    "MEDIAVAULT_MODEL_TIMEOUT": "Seconds per request to a hosted model (default 60).",
    "MEDIAVAULT_MODEL_MAX_RETRIES": "Retries with backoff for a hosted model (default 3).",
    "MEDIAVAULT_REVIEW": "Review mode: `all` (default), `none`, or a comma-separated list of "
    "reason codes that need review; any other value is refused.",
}


class ConfigurationError(ValueError):
    """A setting has a value the agent cannot work with; the message says which and why."""


#: The review modes besides a list of reason codes.
REVIEW_MODES = ("all", "none")


def parse_review_mode(value: str) -> str:
    """The canonical review mode for ``value``: ``all``, ``none`` or known reason codes.

    Anything else is refused: a typo read as a list of reason codes would let every draft
    through unreviewed. Reason codes are checked against the policy's own list.
    """
    text = str(value).strip().lower()
    if text in REVIEW_MODES:
        return text
    codes = [code.strip() for code in text.split(",")]
    known = reason_codes()
    unknown = [code for code in codes if code not in known]
    if not text or unknown:
        what = f"unknown reason code(s) {', '.join(map(repr, unknown))}" if text else "it is empty"
        raise ConfigurationError(
            f"review mode {value!r} is not valid ({what}); use `all`, `none`, or a "
            f"comma-separated list of reason codes: {', '.join(known)}"
        )
    return ",".join(dict.fromkeys(codes))


def parse_business_date(value: str | date | None) -> date | None:
    """Parse an ISO business date, raising :class:`ConfigurationError` with a clear message."""
    if value is None or isinstance(value, date):
        return value
    text = value.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"business date {value!r} is not an ISO date; use YYYY-MM-DD, e.g. 2006-02-20"
        ) from None


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def _default_home() -> Path:
    return Path(_env("MEDIAVAULT_HOME") or DEFAULT_HOME)


def _default_today() -> date | None:
    return parse_business_date(_env("MEDIAVAULT_TODAY"))


@dataclass(kw_only=True, frozen=True)
class Context:
    """Settings for one run of the agent.

    ``db`` is the business database (a Sakila SQLite path); when ``None`` the demo database in
    ``home`` is used. ``today`` overrides the business date; when ``None`` the date stamped in
    the database by ``mediavault db init`` is used, and failing that the calendar date.
    """

    home: Path = field(default_factory=_default_home)
    db: str | None = field(default_factory=lambda: _env("MEDIAVAULT_DB"))
    #: Checkpoints and cases on a Postgres server (a DSN) instead of files in ``home``.
    state_db: str | None = field(default_factory=lambda: _env("MEDIAVAULT_STATE_DB"))
    model: str = field(default_factory=lambda: _env("MEDIAVAULT_MODEL") or "rules")
    today: date | None = field(default_factory=_default_today)
    review: str = field(default_factory=lambda: _env("MEDIAVAULT_REVIEW") or "all")
    #: Investigation budgets: beyond any of them the email is escalated, never drafted.
    max_tool_calls: int = 6
    max_model_calls: int = 4
    time_budget_seconds: float = 60.0
    #: Per-query limits enforced by the data layer.
    sql_time_budget_seconds: float = 2.0
    sql_max_rows: int = 100
    #: Draft validation failures the model may fix before the email is escalated.
    max_draft_retries: int = 2
    #: Ask the model to classify risks too; it can only add to what the rules found.
    risk_classifier: bool = False
    #: Tools whose calls wait for a human's approval at the gate before they run.
    review_tools: tuple[str, ...] = ()
    #: A ready-made LangChain chat model; overrides ``model`` (for Python callers and tests).
    chat_model: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Accept strings from callers (CLI flags, notebooks) and validate once, here.
        object.__setattr__(self, "home", Path(self.home))
        object.__setattr__(self, "today", parse_business_date(self.today))
        object.__setattr__(self, "review", parse_review_mode(self.review))
        if not self.model.strip():
            raise ConfigurationError("model name is empty; use `rules` or `openai:<model>`")

    @property
    def db_is_server(self) -> bool:
        """Whether ``db`` is a server DSN (``postgresql://...``) rather than a file."""
        return self.db is not None and "://" in self.db

    @property
    def db_location(self) -> str | Path:
        """The business database as ``open_business_db`` takes it: a DSN text or a file path."""
        return self.db.strip() if self.db is not None and self.db_is_server else self.db_path

    @property
    def sql_dialect(self) -> str:
        """The SQL dialect of the business database: ``sqlite`` or ``postgres``."""
        return "postgres" if self.db_is_server else "sqlite"

    @property
    def db_path(self) -> Path:
        """The business database file (the demo database unless ``db`` is set).

        A server DSN is not a file: asking for its path is a configuration error (a ``Path``
        would silently turn ``postgresql://host`` into ``postgresql:/host``).
        """
        if self.db_is_server:
            raise ConfigurationError(
                "MEDIAVAULT_DB / --db names a database server, not a file; this needs a Sakila "
                "SQLite file"
            )
        return Path(self.db) if self.db else self.home / DEMO_DB_NAME

    @property
    def checkpoint_path(self) -> Path:
        return self.home / "checkpoints.sqlite"

    @property
    def cases_path(self) -> Path:
        return self.home / "cases.sqlite"

    @property
    def audit_path(self) -> Path:
        return self.home / "audit.jsonl"

    @property
    def outbox_path(self) -> Path:
        return self.home / "outbox"

    def with_overrides(self, **changes: Any) -> Context:
        """A copy with the given fields changed; ``None`` values are ignored (unset flags)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

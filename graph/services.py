"""The outside world a triage run talks to, built once per settings object.

Nodes reach the business database, the case store, the audit log and the chat model only
through :func:`services_for`, so tests swap any of them by passing a different ``Context``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable
from pydantic import BaseModel

from mediavault.agent.models.factory import chat_model_for, structured_output
from mediavault.agent.stores.audit import AuditLog, audit_key_from_env
from mediavault.agent.stores.case_store import CaseStore
from mediavault.agent.stores.case_store_postgres import open_case_store
from mediavault.agent.stores.checkpoints import uses_postgres_state
from mediavault.agent.stores.state_files import prepare_home, private_file
from mediavault.graph.context import Context
from mediavault.tools.agent_tools import tool_schemas
from mediavault.tools.business_db.business_date import business_date
from mediavault.tools.business_db.sessions import BusinessDatabase, open_business_db


def open_private_case_store(context: Context) -> CaseStore:
    """The context's case store; its SQLite file is created owner-only (0600)."""
    if not uses_postgres_state(context):
        prepare_home(context)
        private_file(context.cases_path)
    return open_case_store(context)


@dataclass
class TriageServices:
    """Lazily opened collaborators for one ``Context``."""

    context: Context
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Binding tools or an output schema converts them again on every call; once is enough.
    _bound: dict[tuple[str, ...], Runnable[Any, Any]] = field(default_factory=dict, repr=False)

    @cached_property
    def business_db(self) -> BusinessDatabase:
        return open_business_db(
            self.context.db_location,
            time_budget_seconds=self.context.sql_time_budget_seconds,
            max_rows=self.context.sql_max_rows,
        )

    @cached_property
    def case_store(self) -> CaseStore:
        return open_private_case_store(self.context)

    @cached_property
    def audit(self) -> AuditLog:
        prepare_home(self.context)
        return AuditLog(self.context.audit_path, key=audit_key_from_env())

    @cached_property
    def chat_model(self) -> BaseChatModel:
        return chat_model_for(self.context)

    def model_with_tools(self, names: Sequence[str]) -> Runnable[Any, Any]:
        """The chat model bound to the named tools, bound once per tool set."""
        key = ("tools", *names)
        with self._lock:
            bound = self._bound.get(key)
        if bound is None:
            bound = self.chat_model.bind_tools(tool_schemas(names))
            with self._lock:
                bound = self._bound.setdefault(key, bound)
        return bound

    def model_with_output(self, schema: type[BaseModel]) -> Runnable[Any, Any]:
        """The chat model answering with ``schema``, wrapped once per schema."""
        key = ("output", f"{schema.__module__}.{schema.__qualname__}")
        with self._lock:
            bound = self._bound.get(key)
        if bound is None:
            bound = structured_output(self.chat_model, schema)
            with self._lock:
                bound = self._bound.setdefault(key, bound)
        return bound

    def business_date(self) -> date:
        if self.context.db_is_server:  # a server keeps the stamp itself, not in a file header
            stamped = self.business_db.stamped_business_date()
            return self.context.today or stamped or date.today()
        return business_date(self.context.db_path, self.context.today)


_SERVICES: dict[int, tuple[Context, TriageServices]] = {}
_SERVICES_LOCK = threading.Lock()


def services_for(context: Context) -> TriageServices:
    """The services of a context, created on first use and then shared by every node."""
    key = id(context)
    with _SERVICES_LOCK:
        entry = _SERVICES.get(key)
        if entry is None or entry[0] is not context:
            entry = (context, TriageServices(context))
            _SERVICES[key] = entry
            if len(_SERVICES) > 64:  # contexts are few; keep the cache from growing forever
                _SERVICES.pop(next(iter(_SERVICES)))
        return entry[1]

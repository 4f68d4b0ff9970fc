"""Where the application meets the graph: the services it injects, and the graphs it builds.

The graph (``mediavault.graph``) declares the ports it needs in :mod:`graph.ports`; this module
implements them with the application's stores, outbox and model factory and hands them to
:func:`graph.builder.build_graph`. Everything that runs the graph (the Python API, batches,
workers, the web console, the CLI, LangGraph Studio) gets it from here.

A run's services belong to its :class:`~graph.context.Context` object: they are opened on first
use and dropped when that object is, so callers that keep one ``Context`` (the web console, a
worker, a batch) keep their connections, and a ``Context`` made per call gets fresh ones.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Callable, Sequence
from datetime import date
from functools import cache
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from pydantic import BaseModel

from mediavault.agent.mail.outbox import OutboxDirectory
from mediavault.agent.models.factory import chat_model_for, structured_output
from mediavault.agent.stores.audit import AuditLog, audit_key_from_env
from mediavault.agent.stores.case_store import CaseStore
from mediavault.agent.stores.case_store_postgres import open_case_store
from mediavault.agent.stores.checkpoints import uses_postgres_state
from mediavault.agent.stores.state_files import prepare_home, private_file
from mediavault.graph import builder as graph_builder
from mediavault.graph.context import Context
from mediavault.graph.ports import ServiceProvider
from mediavault.graph.state import TriageInput, TriageOutput, TriageState
from mediavault.tools.agent_tools import tool_schemas
from mediavault.tools.business_db.business_date import business_date
from mediavault.tools.business_db.sessions import BusinessDatabase, open_business_db

_T = TypeVar("_T")


def open_private_case_store(context: Context) -> CaseStore:
    """The context's case store; its SQLite file is created owner-only (0600)."""
    if not uses_postgres_state(context):
        prepare_home(context)
        private_file(context.cases_path)
    return open_case_store(context)


class AppServices:
    """The application's implementation of :class:`graph.ports.TriageServices` for one context.

    Every collaborator is opened on first use, once, under a lock: the threads of a batch
    share one instance (``functools.cached_property`` stopped locking in Python 3.12).
    """

    def __init__(self, context: Context) -> None:
        self.context = context
        self._lock = threading.RLock()
        self._opened: dict[str, Any] = {}
        # Binding tools or an output schema converts them again on every call; once is enough.
        self._bound: dict[tuple[str, ...], Runnable[Any, Any]] = {}

    def _once(self, name: str, open_it: Callable[[], _T]) -> _T:
        found = self._opened.get(name)
        if found is None:
            with self._lock:
                found = self._opened.get(name)
                if found is None:
                    found = self._opened[name] = open_it()
        return found

    @property
    def business_db(self) -> BusinessDatabase:
        return self._once("business_db", lambda: open_business_db(
            self.context.db_location,
            time_budget_seconds=self.context.sql_time_budget_seconds,
            max_rows=self.context.sql_max_rows,
        ))

    @property
    def case_store(self) -> CaseStore:
        return self._once("case_store", lambda: open_private_case_store(self.context))

    @property
    def audit(self) -> AuditLog:
        def open_audit() -> AuditLog:
            prepare_home(self.context)  # owner-only, and no FIFO where the log belongs
            return AuditLog(self.context.audit_path, key=audit_key_from_env())

        return self._once("audit", open_audit)

    @property
    def outbox(self) -> OutboxDirectory:
        return self._once("outbox", lambda: OutboxDirectory(self.context.outbox_path))

    @property
    def chat_model(self) -> BaseChatModel:
        return self._once("chat_model", lambda: chat_model_for(self.context))

    def model_with_tools(self, names: Sequence[str]) -> Runnable[Any, Any]:
        """The chat model bound to the named tools, bound once per tool set."""
        return self._bound_once(("tools", *names),
                                lambda: self.chat_model.bind_tools(tool_schemas(names)))

    def model_with_output(self, schema: type[BaseModel]) -> Runnable[Any, Any]:
        """The chat model answering with ``schema``, wrapped once per schema."""
        return self._bound_once(("output", f"{schema.__module__}.{schema.__qualname__}"),
                                lambda: structured_output(self.chat_model, schema))

    def _bound_once(
        self, key: tuple[str, ...], bind: Callable[[], Runnable[Any, Any]]
    ) -> Runnable[Any, Any]:
        bound = self._bound.get(key)
        if bound is None:
            with self._lock:
                bound = self._bound.get(key)
                if bound is None:
                    bound = self._bound[key] = bind()
        return bound

    def business_date(self) -> date:
        if self.context.db_is_server:  # a server keeps the stamp itself, not in a file header
            stamped = self.business_db.stamped_business_date()
            return self.context.today or stamped or date.today()
        return business_date(self.context.db_path, self.context.today)


class ServicesByContext:
    """The services of each live ``Context`` object (a :class:`graph.ports.ServiceProvider`).

    Keyed by the object, not its value: ``Context`` compares equal without its ``chat_model``,
    and settings read from the environment at different times may differ in what they leave
    out of the object (the audit key). An entry goes when its context is garbage-collected;
    the services hold a copy of the context, so they do not keep the original alive.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._services: dict[int, AppServices] = {}

    def __call__(self, context: Context) -> AppServices:
        key = id(context)
        found = self._services.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._services.get(key)
            if found is None:
                found = AppServices(copy.copy(context))
                self._services[key] = found
                # Called when the context dies, before its id can be given to another object.
                weakref.finalize(context, self._services.pop, key, None)
        return found

    def __len__(self) -> int:
        return len(self._services)


#: The process's services: everything that runs the graph with a ``Context`` uses these.
services_for = ServicesByContext()


def build_graph(
    services: ServiceProvider | None = None,
) -> StateGraph[TriageState, Context, TriageInput, TriageOutput]:
    """The uncompiled Email Triage graph, wired to the application's services by default.

    Pass ``services`` (any :class:`graph.ports.ServiceProvider`) to run it against others.
    """
    return graph_builder.build_graph(services or services_for)


@cache
def _compiled_without_saver() -> Any:
    return build_graph().compile()


def compile_with_checkpointer(checkpointer: BaseCheckpointSaver[Any]) -> Any:
    """The application's compiled graph bound to ``checkpointer``.

    Compiling inspects every node's code and costs tens of milliseconds; it is done once per
    process and each caller gets a cheap copy bound to its own saver.
    """
    return _compiled_without_saver().copy(update={"checkpointer": checkpointer})

"""The ports of the Email Triage graph: what it needs from the world, and nothing more.

The graph never opens a database, a log or a model itself. Whoever builds it passes a
:class:`ServiceProvider` to :func:`graph.builder.build_graph`; the graph asks it for the
:class:`TriageServices` of a run's :class:`~graph.context.Context` when a node starts, and the
node reaches them through :func:`node_services`. The application (``mediavault.agent``)
implements these protocols with its stores, mail outbox and model factory; tests can pass
fakes. Each protocol lists only the operations the nodes call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from langchain_core.runnables import Runnable
from langgraph.runtime import Runtime
from pydantic import BaseModel

from mediavault.graph.context import Context
from mediavault.graph.inbound_email import InboundEmail
from mediavault.tools.business_db.sessions import CustomerIdentity, ScopedSession


class CaseRecords(Protocol):
    """The case store operations the nodes use: one case per email, written idempotently."""

    def atomic(self) -> AbstractContextManager[None]:
        """Group the writes inside the block into one commit."""
        ...

    def record_email(self, email: InboundEmail) -> None: ...

    def open_case(
        self, email_id: str, *, thread_id: str, sender: str, customer_id: int | None,
        received_at: datetime,
    ) -> None: ...

    def record_draft(
        self, email_id: str, *, text: str, source: str, valid: bool, problems: Sequence[str],
        policy_refs: Sequence[str], provenance: Sequence[Mapping[str, str]] = (),
    ) -> int: ...

    def record_review(
        self, review_id: str, email_id: str, *, decision: str, reviewer: str,
        reason_category: str | None = None, message: str | None = None,
        edit_size: int | None = None,
    ) -> bool: ...

    def record_ticket(self, email_id: str, ticket: Mapping[str, object]) -> None: ...

    def record_outbox(self, email_id: str, *, path: Path | str, message_id: str) -> None: ...

    def set_outcome(
        self, email_id: str, *, route: str | None, reason_code: str | None,
        risk_flags: Iterable[str], status: str, queue: str | None = None,
        status_reason: str | None = None,
    ) -> None: ...


class AuditSink(Protocol):
    """The audit log: events are checked and stamped when they happen, written later."""

    def prepare(
        self, action: str, *, outcome: str, reason: str | None = None,
        thread_id: str | None = None, email_id: str | None = None,
        tool_call_id: str | None = None, actor: str = "agent",
        details: Mapping[str, object] | None = None, event_id: str | None = None,
    ) -> Mapping[str, Any]:
        """One event, validated and stamped, as a JSON-safe dict that can sit in a checkpoint."""
        ...

    def append_prepared(self, events: Iterable[Mapping[str, object]]) -> Sequence[object]:
        """Append prepared events in order; ids already logged are skipped."""
        ...


class SentReply(Protocol):
    """Where an approved reply was written, and the Message-ID it carries."""

    @property
    def path(self) -> Path: ...

    @property
    def message_id(self) -> str: ...


class Outbox(Protocol):
    """Where approved replies go (once per email id: a re-run finds the reply already there)."""

    def write_reply(
        self, *, email_id: str, to: str, subject: str, body: str, in_reply_to: str | None,
    ) -> SentReply: ...


class BusinessData(Protocol):
    """The business database, as the sender-scoped sessions the tools query."""

    def resolve_sender(self, address: str) -> CustomerIdentity | None: ...

    def session(
        self, customer: CustomerIdentity | None
    ) -> AbstractContextManager[ScopedSession]: ...


class TriageServices(Protocol):
    """Everything one run's nodes talk to, for one :class:`Context`."""

    @property
    def case_store(self) -> CaseRecords: ...

    @property
    def audit(self) -> AuditSink: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def business_db(self) -> BusinessData: ...

    def business_date(self) -> date:
        """The date the business runs on (stamped in the database, or overridden)."""
        ...

    def model_with_tools(self, names: Sequence[str]) -> Runnable[Any, Any]:
        """The chat model bound to the named tools."""
        ...

    def model_with_output(self, schema: type[BaseModel]) -> Runnable[Any, Any]:
        """The chat model answering with an instance of ``schema``."""
        ...


class ServiceProvider(Protocol):
    """Gives the services of a run's context; the graph's builder receives one."""

    def __call__(self, context: Context, /) -> TriageServices: ...


#: The services of the node running in this context (set by the builder's node wrapper).
_CURRENT: ContextVar[tuple[Context, TriageServices] | None] = ContextVar(
    "mediavault_node_services", default=None
)


@contextmanager
def serving(context: Context, services: TriageServices) -> Iterator[None]:
    """Make ``services`` the ones :func:`node_services` returns while a node runs."""
    token = _CURRENT.set((context, services))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def node_services(runtime: Runtime[Context]) -> TriageServices:
    """The services injected into the graph for this run's context.

    Only a node of a graph from ``build_graph(services=...)`` has them; calling a node
    function on its own is a programming error, reported as such.
    """
    current = _CURRENT.get()
    if current is None or current[0] is not runtime.context:
        raise RuntimeError(
            "no triage services for this run: build the graph with build_graph(services=...) "
            "and run the node inside it"
        )
    return current[1]

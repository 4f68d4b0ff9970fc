"""The Python API other services import: triage an email, resume a review, list pending ones.

Every call works on files only (SQLite checkpoints, the case store, the audit log), so a resume
works from a new process on the same ``MEDIAVAULT_HOME``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.context import ConfigurationError, Context
from agent.emails import InboundEmail
from graph.builder import build_graph
from graph.nodes import thread_id_for
from graph.services import services_for

Status = Literal["awaiting_review", "approved", "rejected", "escalated", "failed"]


class TriageResult(BaseModel):
    """Where one email stands after a call: its outcome, or the review it waits for."""

    model_config = ConfigDict(frozen=True)

    email_id: str
    thread_id: str
    status: Status
    route: str | None = None
    reason_code: str | None = None
    queue: str | None = None
    draft: dict[str, Any] | None = None
    ticket: dict[str, Any] | None = None
    review_request: dict[str, Any] | None = None
    gate_denials: int = 0
    gate_log: list[dict[str, Any]] = Field(default_factory=list)
    already_recorded: bool = False
    error: str | None = None


class ReviewDecision(BaseModel):
    """A reviewer's answer, shaped like HumanInTheLoopMiddleware decisions (plus escalate)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["approve", "edit", "reject", "escalate"]
    reviewer: str = "reviewer"
    body: str | None = Field(default=None, description="The edited reply text (edit).")
    message: str | None = Field(default=None, max_length=1000)
    reason_category: Literal["tone", "factual", "policy", "other"] | None = None
    queue: str | None = None

    def as_resume_value(self) -> dict[str, Any]:
        decision: dict[str, Any] = {"type": self.type, "reviewer": self.reviewer}
        if self.type == "edit":
            if not self.body:
                raise ValueError("an edit needs the new reply text")
            decision["edited_action"] = {"name": "send_customer_email",
                                         "args": {"body": self.body}}
        if self.message is not None:
            decision["message"] = self.message
        if self.reason_category is not None:
            decision["reason_category"] = self.reason_category
        if self.queue is not None:
            decision["queue"] = self.queue
        return {"decisions": [decision]}


class NoPendingReview(LookupError):
    """The email has no review waiting (unknown, already decided, or escalated)."""


# Writers of one checkpoint file take turns; SQLite would otherwise answer "database is locked".
_SAVER_LOCKS: dict[str, threading.RLock] = {}
_SAVER_LOCKS_GUARD = threading.Lock()


def _lock_for(context: Context) -> threading.RLock:
    key = str(context.checkpoint_path.resolve())
    with _SAVER_LOCKS_GUARD:
        return _SAVER_LOCKS.setdefault(key, threading.RLock())


@contextmanager
def _compiled_graph(context: Context) -> Iterator[Any]:
    context.home.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(str(context.checkpoint_path), check_same_thread=False,
                                 timeout=30)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        saver = SqliteSaver(connection)
        with _lock_for(context):
            yield build_graph().compile(checkpointer=saver)
    finally:
        connection.close()


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": 80}


def _resolve_context(context: Context | None, model: str | BaseChatModel | None) -> Context:
    context = context or Context()
    if isinstance(model, BaseChatModel):
        return context.with_overrides(chat_model=model)
    if isinstance(model, str):
        return context.with_overrides(model=model)
    return context


def _coerce_email(email: InboundEmail | Mapping[str, Any]) -> InboundEmail:
    if isinstance(email, InboundEmail):
        return email
    try:
        return InboundEmail.from_fields(**dict(email))
    except ValidationError as problem:
        first = problem.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "email"
        raise ValueError(f"invalid email: {where}: {first['msg']}") from None


def _result(graph: Any, thread_id: str, email_id: str, *, recorded: bool = False) -> TriageResult:
    snapshot = graph.get_state(_config(thread_id))
    values: dict[str, Any] = dict(snapshot.values or {})
    decision = values.get("decision") or {}
    gate_log = list(values.get("gate_log") or [])
    denials = sum(1 for r in gate_log if r.get("verdict") == "deny")
    pending = [i for task in snapshot.tasks for i in task.interrupts]
    if pending:
        return TriageResult(
            email_id=email_id, thread_id=thread_id, status="awaiting_review",
            route=decision.get("route"), reason_code=decision.get("reason_code"),
            draft=values.get("draft"), review_request=pending[0].value,
            gate_denials=denials, gate_log=gate_log, already_recorded=recorded,
        )
    outcome = values.get("outcome") or {}
    if not outcome:
        return TriageResult(email_id=email_id, thread_id=thread_id, status="failed",
                            error="the run stopped before recording an outcome",
                            gate_log=gate_log, gate_denials=denials)
    return TriageResult(
        email_id=email_id, thread_id=thread_id, status=outcome["status"],
        route=outcome.get("route"), reason_code=outcome.get("reason_code"),
        queue=outcome.get("queue"), draft=values.get("draft"), ticket=values.get("ticket"),
        gate_denials=denials, gate_log=gate_log, already_recorded=recorded,
    )


def triage_email(
    email: InboundEmail | Mapping[str, Any],
    *,
    context: Context | None = None,
    model: str | BaseChatModel | None = None,
) -> TriageResult:
    """Triage one email to its outcome, or to the review it waits for.

    Triaging an email that already has an outcome returns that outcome without re-running
    anything; an email whose run was interrupted by a crash continues from its last checkpoint.
    """
    inbound = _coerce_email(email)
    context = _resolve_context(context, model)
    thread_id = thread_id_for(inbound.email_id)
    config = _config(thread_id)
    with _compiled_graph(context) as graph:
        snapshot = graph.get_state(config)
        if snapshot.values and (snapshot.values.get("outcome") or snapshot.interrupts):
            return _result(graph, thread_id, inbound.email_id, recorded=True)
        try:
            if snapshot.next:  # a run that died midway: continue from its last checkpoint
                graph.invoke(None, config, context=context)
            else:
                graph.invoke({"email": inbound.model_dump(mode="json")}, config, context=context)
        except ConfigurationError:
            raise
        except Exception as problem:
            return _record_failure(context, inbound, thread_id, problem)
        return _result(graph, thread_id, inbound.email_id)


def _record_failure(
    context: Context, email: InboundEmail, thread_id: str, problem: BaseException
) -> TriageResult:
    # Nothing is lost: a run that breaks still ends in one recorded outcome.
    reason = f"{type(problem).__name__}: {problem}"[:300]
    services = services_for(context)
    store = services.case_store
    store.record_email(email)
    store.open_case(email.email_id, thread_id=thread_id, sender=email.sender, customer_id=None,
                    received_at=email.received_at)
    store.set_outcome(email.email_id, route=None, reason_code=None, risk_flags=[],
                      status="failed", status_reason=reason)
    services.audit.append("case.outcome", outcome="failure", reason=reason,
                          thread_id=thread_id, email_id=email.email_id, actor="system",
                          event_id=f"{thread_id}:failed")
    return TriageResult(email_id=email.email_id, thread_id=thread_id, status="failed",
                        error=reason)


def resume(
    email_id_or_thread: str,
    decision: ReviewDecision | Mapping[str, Any],
    *,
    context: Context | None = None,
) -> TriageResult:
    """Apply a reviewer's decision to the review an email waits for, then run to the outcome."""
    context = context or Context()
    answer = decision if isinstance(decision, ReviewDecision) else ReviewDecision.model_validate(
        dict(decision))
    thread_id = (email_id_or_thread if email_id_or_thread.startswith("email-")
                 else thread_id_for(email_id_or_thread))
    with _compiled_graph(context) as graph:
        snapshot = graph.get_state(_config(thread_id))
        if not snapshot.values:
            raise NoPendingReview(f"no triage found for {email_id_or_thread!r}")
        email_id = str(snapshot.values["email"]["email_id"])
        if not snapshot.interrupts:
            raise NoPendingReview(f"{email_id} has no review waiting (already decided)")
        graph.invoke(Command(resume=answer.as_resume_value()), _config(thread_id),
                     context=context)
        return _result(graph, thread_id, email_id)


def pending_reviews(context: Context | None = None) -> list[dict[str, Any]]:
    """Drafts waiting for a reviewer, oldest first, from the case store."""
    context = context or Context()
    store = services_for(context).case_store
    return [case.model_dump(mode="json") for case in store.pending_reviews()]

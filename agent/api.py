"""The Python API other services import: triage an email, resume a review, list pending ones.

Every call works on files only (SQLite checkpoints, the case store, the audit log), so a resume
works from a new process on the same ``MEDIAVAULT_HOME``. :func:`atriage_email` is the asyncio
twin of :func:`triage_email`; :mod:`agent.ops.batch` runs many emails at once on top of it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final, Literal

from langchain_core.language_models import BaseChatModel
from langgraph.types import Command
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mediavault.agent.ops.decision_lock import one_decision_at_a_time
from mediavault.agent.stores.checkpoints import open_async_checkpointer, open_checkpointer
from mediavault.agent.stores.run_locks import EmailInProgressElsewhere, aemail_run, email_run
from mediavault.agent.wiring import compile_with_checkpointer, services_for
from mediavault.graph.context import ConfigurationError, Context
from mediavault.graph.inbound_email import InboundEmail
from mediavault.graph.nodes import thread_id_for

_THREAD_ID = re.compile(r"email-[0-9a-f]{24}")

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
    #: Identifies the pending review request; pass it back as ``ReviewDecision.request_id``.
    review_request_id: str | None = None
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
    #: The ``review_request_id`` the reviewer was shown. When given, the decision applies only
    #: to that request: a retried or late answer never approves a newer request.
    request_id: str | None = None

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


class TriageFailed(NoPendingReview):
    """The email's triage failed: there is no draft to decide (triage it again to retry)."""


def _refuse_failed(context: Context, email_id: str) -> None:
    from mediavault.agent.stores.checkpoints import uses_postgres_state

    if not uses_postgres_state(context) and not context.cases_path.exists():
        return
    case = services_for(context).case_store.get_case(email_id)
    if case is not None and case.status == "failed":
        raise TriageFailed(f"{email_id} failed, so no review waits: "
                           f"{case.status_reason or 'no reason recorded'}")


class StaleReview(NoPendingReview):
    """The decision names a review request that is no longer the one waiting."""


@contextmanager
def _compiled_graph(context: Context) -> Iterator[Any]:
    # SQLite file in MEDIAVAULT_HOME, or the Postgres saver when MEDIAVAULT_STATE_DB is set.
    with open_checkpointer(context) as saver:
        yield compile_with_checkpointer(saver)


@asynccontextmanager
async def async_compiled_graph(context: Context) -> AsyncIterator[Any]:
    """The graph compiled with the context's asyncio checkpointer, for concurrent runs.

    One connection serves every run on the graph and the saver serialises its own statements,
    so concurrent runs in this process never meet "database is locked"; other processes are
    waited for (SQLite: WAL mode and a busy timeout).
    """
    async with open_async_checkpointer(context) as saver:  # or Postgres: MEDIAVAULT_STATE_DB
        yield compile_with_checkpointer(saver)


#: Each step's writes and checkpoint are on disk before the next step starts. LangGraph's
#: default writes them in the background while the next step runs, so a crash could lose a
#: reviewer's recorded decision after the reply it approved had already been sent.
DURABILITY: Final = "sync"


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": 80}


def resolve_context(context: Context | None, model: str | BaseChatModel | None) -> Context:
    """The context a call runs with: ``model`` (a name or a chat model) overrides its model.

    Raises :class:`ConfigurationError` when no email could run with it (see
    :func:`check_configuration`).
    """
    context = context or Context()
    if isinstance(model, BaseChatModel):
        context = context.with_overrides(chat_model=model)
    elif isinstance(model, str):
        context = context.with_overrides(model=model)
    check_configuration(context)
    return context


def check_configuration(context: Context) -> None:
    """Raise :class:`ConfigurationError` at the call when no email could run: no business
    database, one that is not Sakila, an unknown model or one without its API key.

    A library reports a wrong setting to its caller once; a per-email failure (a model that
    times out, a broken email) stays a ``failed`` result for that email.
    """
    from mediavault.tools.business_db.sessions import BusinessDatabaseError

    services = services_for(context)
    try:
        services.chat_model  # noqa: B018 - building it is the check
        services.business_db  # noqa: B018
    except BusinessDatabaseError as problem:
        raise ConfigurationError(str(problem)) from None


def coerce_email(email: InboundEmail | Mapping[str, Any]) -> InboundEmail:
    """An InboundEmail from a model or loose fields; ValueError names the first bad field."""
    if isinstance(email, InboundEmail):
        return email
    try:
        return InboundEmail.from_fields(**dict(email))
    except ValidationError as problem:
        first = problem.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "email"
        raise ValueError(f"invalid email: {where}: {first['msg']}") from None


def _result(graph: Any, thread_id: str, email_id: str, *, recorded: bool = False) -> TriageResult:
    return _result_from(graph.get_state(_config(thread_id)), thread_id, email_id,
                        recorded=recorded)


def _has_outcome(snapshot: Any) -> bool:
    """Whether a thread already ended in an outcome or waits for a reviewer."""
    return bool(snapshot.values and (snapshot.values.get("outcome") or snapshot.interrupts))


#: The channel LangGraph saves a resume value in (a literal: its constant is not public).
_RESUME_CHANNEL = "__resume__"


def _is_recorded(snapshot: Any, saved: Any) -> bool:
    """Whether the thread's outcome, or the review it waits for, is what to report: not when
    a decision was saved and still has to be applied (``saved`` is its checkpoint tuple)."""
    return _has_outcome(snapshot) and not (snapshot.interrupts and _answered(saved))


def _answered(saved: Any) -> bool:
    """Whether a reviewer's decision is saved for the pending review: the run that applies it
    stopped (a crash) before its next checkpoint, so the review is answered, not waiting."""
    return bool(saved and any(w[1] == _RESUME_CHANNEL for w in saved.pending_writes or ()))


def _recorded(graph: Any, thread_id: str, email_id: str) -> tuple[TriageResult | None, Any]:
    """The recorded result of a thread (None when a run is still to do) and its snapshot."""
    config = _config(thread_id)
    snapshot = graph.get_state(config)
    saved = graph.checkpointer.get_tuple(config) if snapshot.interrupts else None
    if not _is_recorded(snapshot, saved):
        return None, snapshot
    return _result_from(snapshot, thread_id, email_id, recorded=True), snapshot


async def _arecorded(graph: Any, thread_id: str, email_id: str) -> tuple[TriageResult | None, Any]:
    """The asyncio twin of :func:`_recorded`."""
    config = _config(thread_id)
    snapshot = await graph.aget_state(config)
    saved = await graph.checkpointer.aget_tuple(config) if snapshot.interrupts else None
    if not _is_recorded(snapshot, saved):
        return None, snapshot
    return _result_from(snapshot, thread_id, email_id, recorded=True), snapshot


def _result_from(
    snapshot: Any, thread_id: str, email_id: str, *, recorded: bool = False
) -> TriageResult:
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
            review_request_id=pending[0].id, gate_denials=denials, gate_log=gate_log,
            already_recorded=recorded,
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
    While another process on the same home is triaging the email, this waits for that run and
    returns its outcome.
    """
    inbound = coerce_email(email)
    context = resolve_context(context, model)
    thread_id = thread_id_for(inbound.email_id)
    config = _config(thread_id)
    # Another process running this email: wait for it, then return what it recorded.
    with email_run(context, thread_id, wait=True), _compiled_graph(context) as graph:
        recorded, snapshot = _recorded(graph, thread_id, inbound.email_id)
        if recorded is not None:
            return recorded
        try:
            if snapshot.values:
                # A run that died midway continues from its last checkpoint. Its `next` may be
                # empty: a step's writes are saved before the checkpoint that follows them, and
                # a crash in between leaves only the writes, which the run then applies.
                graph.invoke(None, config, context=context, durability=DURABILITY)
            else:
                graph.invoke({"email": inbound.model_dump(mode="json")}, config, context=context,
                             durability=DURABILITY)
        except ConfigurationError:
            raise
        except Exception as problem:
            return _record_failure(context, inbound, thread_id, problem)
        return _result(graph, thread_id, inbound.email_id)


async def atriage_email(
    email: InboundEmail | Mapping[str, Any],
    *,
    context: Context | None = None,
    model: str | BaseChatModel | None = None,
) -> TriageResult:
    """:func:`triage_email` for asyncio callers: the same outcome, recorded the same way.

    The graph's nodes are synchronous; under asyncio they run on the event loop's default
    executor, so model calls of concurrent runs overlap up to that executor's size.
    """
    inbound = coerce_email(email)
    context = resolve_context(context, model)
    async with async_compiled_graph(context) as graph:
        return await atriage_on(graph, inbound, context, wait=True)


def recorded_outcome(email: InboundEmail, context: Context) -> TriageResult | None:
    """The outcome (or pending review) already recorded for ``email``, or None."""
    with _compiled_graph(context) as graph:
        return _recorded(graph, thread_id_for(email.email_id), email.email_id)[0]


async def recorded_result(graph: Any, email: InboundEmail) -> TriageResult | None:
    """The outcome (or pending review) already recorded for ``email``, or None."""
    return (await _arecorded(graph, thread_id_for(email.email_id), email.email_id))[0]


async def atriage_on(
    graph: Any, email: InboundEmail, context: Context, *, wait: bool = False
) -> TriageResult:
    """Triage one email on a graph from :func:`async_compiled_graph` (shared by a batch).

    Raises :class:`EmailInProgressElsewhere` when another process (or task) is running this
    email, unless ``wait`` is set: then it waits for that run and returns its outcome.
    """
    thread_id = thread_id_for(email.email_id)
    async with aemail_run(context, thread_id, wait=wait) as held:
        if not held:
            raise EmailInProgressElsewhere(email.email_id)
        return await _atriage_held(graph, email, context, thread_id)


async def _atriage_held(
    graph: Any, email: InboundEmail, context: Context, thread_id: str
) -> TriageResult:
    config = _config(thread_id)
    recorded, snapshot = await _arecorded(graph, thread_id, email.email_id)
    if recorded is not None:
        return recorded
    try:
        if snapshot.values:  # a run that died midway: continue from its last checkpoint
            await graph.ainvoke(None, config, context=context, durability=DURABILITY)
        else:
            await graph.ainvoke({"email": email.model_dump(mode="json")}, config,
                                context=context, durability=DURABILITY)
    except ConfigurationError:
        raise
    except Exception as problem:
        return await asyncio.to_thread(_record_failure, context, email, thread_id, problem)
    return _result_from(await graph.aget_state(config), thread_id, email.email_id)


def _record_failure(
    context: Context, email: InboundEmail, thread_id: str, problem: BaseException
) -> TriageResult:
    # Nothing is lost: a run that breaks still ends in one recorded outcome.
    reason = f"{type(problem).__name__}: {problem}"[:300]
    record_failed_outcome(context, email, reason)
    return TriageResult(email_id=email.email_id, thread_id=thread_id, status="failed",
                        error=reason)


def record_failed_outcome(context: Context, email: InboundEmail, reason: str) -> None:
    """Record that ``email`` failed, with ``reason``: the case, its status and the audit event
    (with any the stopped run left pending). Idempotent per email."""
    thread_id = thread_id_for(email.email_id)
    write_stranded_audit_events(context, thread_id)
    services = services_for(context)
    store = services.case_store
    with store.atomic():
        store.record_email(email)
        store.open_case(email.email_id, thread_id=thread_id, sender=email.sender,
                        customer_id=None, received_at=email.received_at)
        store.set_outcome(email.email_id, route=None, reason_code=None, risk_flags=[],
                          status="failed", status_reason=reason)
    services.audit.append("case.outcome", outcome="failure", reason=reason,
                          thread_id=thread_id, email_id=email.email_id, actor="system",
                          event_id=f"{thread_id}:failed")


def write_stranded_audit_events(context: Context, thread_id: str) -> None:
    """Write the audit events a stopped run left in its last checkpoint.

    Nodes write their events when the run stops inside them; a run stopped between nodes
    (the step limit, a worker that keeps dying) leaves them pending in the checkpoint.
    """
    try:
        with _compiled_graph(context) as graph:
            values = graph.get_state(_config(thread_id)).values or {}
    except Exception:  # the checkpoint store itself failed: there is nothing to read back,
        return  # and the failure being recorded must not be lost to a second one
    pending = values.get("audit_pending") or []
    if pending:
        services_for(context).audit.append_prepared(pending)


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
    # Only the exact shape of a thread id counts as one: a Message-ID may start "email-" too.
    thread_id = (email_id_or_thread if _THREAD_ID.fullmatch(email_id_or_thread)
                 else thread_id_for(email_id_or_thread))
    with one_decision_at_a_time(context, thread_id), _compiled_graph(context) as graph:
        snapshot = graph.get_state(_config(thread_id))
        if not snapshot.values:
            _refuse_failed(context, email_id_or_thread)
            raise NoPendingReview(f"no triage found for {email_id_or_thread!r}")
        email_id = str(snapshot.values["email"]["email_id"])
        if not snapshot.interrupts or _answered(graph.checkpointer.get_tuple(_config(thread_id))):
            _refuse_failed(context, email_id)
            raise NoPendingReview(f"{email_id} has no review waiting (already decided)")
        if answer.request_id is not None and answer.request_id not in {
                pending.id for pending in snapshot.interrupts}:
            raise StaleReview(f"{email_id}: the review request {answer.request_id} was already "
                              "answered; show the current request before deciding")
        graph.invoke(Command(resume=answer.as_resume_value()), _config(thread_id),
                     context=context, durability=DURABILITY)
        return _result(graph, thread_id, email_id)


def pending_reviews(context: Context | None = None) -> list[dict[str, Any]]:
    """Drafts waiting for a reviewer, oldest first, from the case store."""
    context = context or Context()
    store = services_for(context).case_store
    return [case.model_dump(mode="json") for case in store.pending_reviews()]

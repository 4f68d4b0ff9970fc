"""Run labelled cases through the real Email Triage graph and observe what happened.

Every case goes through :func:`agent.api.triage_email`, exactly as production email does, with
review mode ``none`` (a draft that passes validation is approved on the spot). Each dataset and
repetition gets its own fresh home directory (case store, checkpoints, audit log, outbox), so
no case sees another's outcome. The runner only observes; :mod:`mediavault.evals.scoring` judges.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import LLMResult
from langgraph.checkpoint.sqlite import SqliteSaver
from pydantic import BaseModel, ConfigDict, Field

from mediavault.evals.dataset import Dataset, EvalCase
from mediavault.graph.context import ConfigurationError, Context

#: The demo database the project's demo dataset is written against.
DEMO_SEED = 42
DEMO_AS_OF = date(2026, 3, 2)

#: Long texts in a trace are cut to this many characters.
_TRACE_TEXT_CHARS = 300


class Observation(BaseModel):
    """What one run of one case did: outcome, texts, counts and the trace that led there."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    case_id: str
    run: int = Field(ge=1, description="Repetition number, 1..k.")
    email_id: str
    status: str = Field(description="approved, escalated, rejected, awaiting_review or failed")
    route: str | None = None
    reason_code: str | None = None
    queue: str | None = None
    forced_escalation: bool = False
    risk_categories: list[str] = Field(default_factory=list)
    draft_body: str | None = None
    ticket_reason: str | None = None
    ticket_summary: str | None = None
    draft_attempts: int = 0
    #: Problems found when the approved draft is validated again (all codes; DLP ones too).
    validation_problems: list[str] = Field(default_factory=list)
    dlp_problems: list[str] = Field(default_factory=list)
    gate_denials: int = 0
    tool_calls: int = 0
    model_calls: int = 0
    #: Token counts when the model reports them; ``None`` when it does not.
    input_tokens: int | None = None
    output_tokens: int | None = None
    prompt_chars: int = 0
    wall_ms: float = 0.0
    error: str | None = None
    trace: dict[str, Any] = Field(default_factory=dict)

    @property
    def approved_draft(self) -> str | None:
        """The reply that would go out, when the run ended with an approved draft."""
        return self.draft_body if self.status == "approved" else None


class ModelUsageMeter(BaseCallbackHandler):
    """Counts model calls, reported tokens and prompt characters, for one case at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.prompt_chars = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.reported = False

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        self.calls += 1
        self.prompt_chars += sum(len(str(m.content)) for batch in messages for m in batch)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                message = getattr(generation, "message", None)
                usage = getattr(message, "usage_metadata", None)
                if usage:
                    self.reported = True
                    self.input_tokens += int(usage.get("input_tokens") or 0)
                    self.output_tokens += int(usage.get("output_tokens") or 0)
                    return
        token_usage = (response.llm_output or {}).get("token_usage") or {}
        if token_usage:
            self.reported = True
            self.input_tokens += int(token_usage.get("prompt_tokens") or 0)
            self.output_tokens += int(token_usage.get("completion_tokens") or 0)


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    """How to run: which database, business date and model, and how many repetitions."""

    #: A Sakila SQLite file or a ``postgresql://`` DSN; ``None`` builds a demo database.
    db: str | None = None
    as_of: date | None = None
    model: str = "rules"
    #: A ready-made chat model (Python callers); overrides ``model``.
    chat_model: BaseChatModel | None = None
    k: int = 1


@dataclass(frozen=True)
class EvalRun:
    """Everything a run observed, with the settings it ran under."""

    options: EvalOptions
    db: str
    as_of: date | None
    datasets: tuple[Dataset, ...]
    observations: tuple[Observation, ...]
    model_name: str
    deterministic_model: bool


Progress = Callable[[EvalCase, Observation], None]


def _metered_model(options: EvalOptions, meter: ModelUsageMeter) -> tuple[BaseChatModel, str]:
    from mediavault.agent.models.factory import build_chat_model

    model = options.chat_model or build_chat_model(options.model)
    existing = model.callbacks if isinstance(model.callbacks, list) else []
    metered = model.model_copy(update={"callbacks": [*existing, meter]})
    name = options.model if options.chat_model is None else type(options.chat_model).__name__
    return metered, name


def _is_deterministic(model: BaseChatModel) -> bool:
    from mediavault.agent.models.rules_model import RulesChatModel

    return isinstance(model, RulesChatModel)


def _check_database(db: str) -> None:
    # One clear error before the run, rather than the same failure once per case.
    from mediavault.tools.business_db.sessions import (
        BusinessDatabaseError,
        is_server_dsn,
        open_business_db,
    )

    if not is_server_dsn(db) and not Path(db).is_file():
        raise ConfigurationError(f"business database {db} does not exist")
    try:
        open_business_db(db).close()
    except BusinessDatabaseError as problem:
        raise ConfigurationError(f"business database: {problem}") from None


@contextmanager
def _business_database(options: EvalOptions, workdir: Path) -> Iterator[tuple[str, date | None]]:
    if options.db is not None:
        _check_database(str(options.db))
        yield str(options.db), options.as_of
        return
    from mediavault.tools.business_db.demo_database import build_demo_database

    as_of = options.as_of or DEMO_AS_OF
    path = workdir / "sakila_demo.sqlite"
    build_demo_database(path, seed=DEMO_SEED, as_of=as_of)
    yield str(path), as_of


def run_eval(
    datasets: Sequence[Dataset],
    options: EvalOptions,
    *,
    progress: Progress | None = None,
    workdir: Path | None = None,
) -> EvalRun:
    """Run every case of ``datasets`` ``options.k`` times and observe each run.

    Without ``options.db`` a demo database (seed 42, business date ``options.as_of`` or
    2026-03-02) is built for the run. ``workdir`` keeps the homes (case stores, audit logs,
    checkpoints) for inspection; by default they live in a temporary directory.
    """
    if options.k < 1:
        raise ConfigurationError("k must be at least 1")
    meter = ModelUsageMeter()
    model, model_name = _metered_model(options, meter)
    observations: list[Observation] = []
    with tempfile.TemporaryDirectory(prefix="mediavault-eval-") as scratch:
        root = Path(workdir) if workdir is not None else Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        with _business_database(options, root) as (db_path, as_of):
            for repetition in range(1, options.k + 1):
                for index, dataset in enumerate(datasets, start=1):
                    home = root / f"run{repetition}-{index}-{dataset.name}"
                    # Files in a fresh home, never a shared state server: cases must not
                    # see each other's outcomes.
                    context = Context(home=home, db=db_path, state_db=None, model=options.model,
                                      today=as_of, review="none", chat_model=model)
                    home.mkdir(parents=True, exist_ok=True)
                    with _checkpoint_reader(context) as reader:
                        for case in dataset.cases:
                            observation = run_case(case, context, meter, reader,
                                                   dataset=dataset.name, run=repetition)
                            observations.append(observation)
                            if progress is not None:
                                progress(case, observation)
    return EvalRun(
        options=options,
        db=(_redacted(str(options.db)) if options.db is not None
            else f"demo database (seed {DEMO_SEED})"),
        as_of=options.as_of if options.db is not None else (options.as_of or DEMO_AS_OF),
        datasets=tuple(datasets),
        observations=tuple(observations),
        model_name=model_name,
        deterministic_model=_is_deterministic(model),
    )


def _redacted(db: str) -> str:
    from mediavault.tools.business_db.sessions import is_server_dsn

    if not is_server_dsn(db):
        return db
    from mediavault.tools.business_db.postgres_loader import redact_dsn

    return str(redact_dsn(db))


# ------------------------------------------------------------------------------ one case


StateReader = Callable[[str], dict[str, Any]]


@contextmanager
def _checkpoint_reader(context: Context) -> Iterator[StateReader]:
    """Reads a thread's final state from the checkpoint file the triage run wrote."""
    from mediavault.agent.wiring import build_graph

    connection = sqlite3.connect(str(context.checkpoint_path), check_same_thread=False,
                                 timeout=30)
    with closing(connection):
        graph = build_graph().compile(checkpointer=SqliteSaver(connection))

        def read(thread_id: str) -> dict[str, Any]:
            snapshot = graph.get_state({"configurable": {"thread_id": thread_id}})
            return dict(snapshot.values or {})

        yield read


def run_case(
    case: EvalCase,
    context: Context,
    meter: ModelUsageMeter,
    read_state: StateReader,
    *,
    dataset: str,
    run: int,
) -> Observation:
    """Triage one case's email and observe the outcome (a crash is observed, not raised)."""
    from mediavault.agent.api import triage_email

    meter.reset()
    started = time.perf_counter()
    try:
        result = triage_email(case.email.as_inbound(), context=context)
    except ConfigurationError:
        raise  # the whole run is misconfigured (model, database): stop, say why
    except Exception as problem:  # an email the agent cannot take is a failed case
        return Observation(
            dataset=dataset, case_id=case.id, run=run, email_id=case.email.email_id,
            status="failed", error=f"{type(problem).__name__}: {problem}"[:500],
            wall_ms=round((time.perf_counter() - started) * 1000, 2),
            model_calls=meter.calls, prompt_chars=meter.prompt_chars,
        )
    wall_ms = round((time.perf_counter() - started) * 1000, 2)
    state = read_state(result.thread_id)
    risk = state.get("risk") or {}
    draft = result.draft or {}
    ticket = result.ticket or {}
    body = str(draft["body"]) if draft.get("body") and result.status != "escalated" else None
    problems: list[str] = []
    if body is not None and result.status == "approved":
        problems = _revalidate(body, case, context, state)
    return Observation(
        dataset=dataset,
        case_id=case.id,
        run=run,
        email_id=case.email.email_id,
        status=result.status,
        route=result.route,
        reason_code=result.reason_code,
        queue=result.queue,
        forced_escalation=bool(risk.get("forced_escalation")),
        risk_categories=sorted({str(f.get("category")) for f in risk.get("flags", [])}),
        draft_body=body,
        ticket_reason=ticket.get("escalation_reason"),
        ticket_summary=ticket.get("investigation_summary"),
        draft_attempts=int(state.get("draft_attempts") or 0),
        validation_problems=problems,
        dlp_problems=[p for p in problems if p.startswith("dlp_")],
        gate_denials=result.gate_denials,
        tool_calls=int(state.get("tool_calls") or 0),
        model_calls=meter.calls,
        input_tokens=meter.input_tokens if meter.reported else None,
        output_tokens=meter.output_tokens if meter.reported else None,
        prompt_chars=meter.prompt_chars,
        wall_ms=wall_ms,
        error=result.error,
        trace=build_trace(state, result.gate_log),
    )


def _revalidate(body: str, case: EvalCase, context: Context, state: dict[str, Any]) -> list[str]:
    """Validate the approved reply again, with the sender's own contacts as the only ones
    allowed, so a leak is caught here even if a check upstream were bypassed."""
    from mediavault.agent.wiring import services_for
    from mediavault.tools.business_db.sessions import CustomerIdentity
    from mediavault.tools.drafting.reply import validate_reply

    sender = str((state.get("email") or {}).get("sender") or case.email.sender)
    contacts: set[str] = {sender}
    customer = state.get("customer")
    if customer:
        identity = CustomerIdentity.model_validate(customer)
        with services_for(context).business_db.session(identity) as session:
            contacts |= session.sender_contacts()
    report = validate_reply(body, sender_address=sender, allowed_contacts=contacts)
    return [f"{p.code}: {p.detail}" for p in report.problems]


# ------------------------------------------------------------------------------- trace


def _short(value: object, limit: int = _TRACE_TEXT_CHARS) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_trace(state: dict[str, Any], gate_log: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The path that led to the outcome: risk flags, every tool call with the gate's verdict
    and the tool's answer, the decision (and any override by code), draft problems, ticket."""
    verdicts = {str(r.get("tool_call_id")): r for r in gate_log}
    results: dict[str, ToolMessage] = {}
    calls: list[tuple[str, str, Any]] = []
    for message in state.get("messages") or []:
        if isinstance(message, AIMessage):
            calls.extend((str(c.get("id")), c["name"], c.get("args")) for c in message.tool_calls)
            calls.extend((str(c.get("id")), str(c.get("name")), c.get("args"))
                         for c in message.invalid_tool_calls)
        elif isinstance(message, ToolMessage):
            results[str(message.tool_call_id)] = message
    steps: list[dict[str, Any]] = []
    seen: set[str] = set()
    for call_id, name, args in calls:
        seen.add(call_id)
        verdict = verdicts.get(call_id, {})
        answer = results.get(call_id)
        step: dict[str, Any] = {"tool": name, "args": _short(args),
                                "verdict": verdict.get("verdict", "not gated"),
                                "phase": verdict.get("phase")}
        if verdict.get("reason"):
            step["reason"] = _short(verdict["reason"])
        if answer is not None:
            step["result"] = f"{answer.status}: {_short(answer.content, 200)}"
        steps.append(step)
    # Calls written by the system itself (a fallback ticket) have a verdict but no AI message.
    steps.extend({"tool": r.get("tool"), "verdict": r.get("verdict"), "phase": r.get("phase"),
                  "reason": _short(r.get("reason") or "")}
                 for r in gate_log if str(r.get("tool_call_id")) not in seen)
    risk = state.get("risk") or {}
    decision = state.get("decision") or {}
    return {
        "risk": {"forced_escalation": bool(risk.get("forced_escalation")),
                 "reason_code": risk.get("reason_code"),
                 "flags": [f"{f.get('category')}: {_short(f.get('evidence'), 100)}"
                           for f in risk.get("flags", [])]},
        "sender_verified": bool(state.get("customer")),
        "steps": steps,
        "decision": {key: decision.get(key) for key in
                     ("route", "reason_code", "queue", "rationale", "overridden")},
        "draft_problems": list(state.get("draft_problems") or []),
        "escalation_reason": _short(state.get("escalation_reason") or "") or None,
        "budget_exceeded": state.get("budget_exceeded"),
    }


__all__ = [
    "DEMO_AS_OF",
    "DEMO_SEED",
    "EvalOptions",
    "EvalRun",
    "ModelUsageMeter",
    "Observation",
    "build_trace",
    "run_case",
    "run_eval",
]

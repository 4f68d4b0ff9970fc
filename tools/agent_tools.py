"""The six tools the model may call, with the argument schemas and descriptions it reads.

The model only ever sees the schemas (``bind_tools``); execution never goes through LangChain's
tool runner. The graph's tool nodes call :func:`run_investigation_tool` and friends directly,
after the approval gate has said ``allow``, with a :class:`ToolEnvironment` that carries the
verified sender's scope. Every argument is treated as attacker-controlled.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ConfigDict, Field

from mediavault.tools.drafting.reply import DraftRequest
from mediavault.tools.escalation_ticket import EscalationRequest

GET_CURRENT_DATE = "get_current_date"
GET_DB_SCHEMA = "get_db_schema"
RUN_SQL_QUERY = "run_sql_query"
GET_POLICY_CONTEXT = "get_policy_context"
DRAFT_CUSTOMER_EMAIL = "draft_customer_email"
CREATE_ESCALATION_TICKET = "create_escalation_ticket"

INVESTIGATION_TOOLS = (GET_CURRENT_DATE, GET_DB_SCHEMA, RUN_SQL_QUERY, GET_POLICY_CONTEXT)
ALL_TOOLS = (*INVESTIGATION_TOOLS, DRAFT_CUSTOMER_EMAIL, CREATE_ESCALATION_TICKET)

#: Tool results are cut to this many characters before they reach the model or the state.
MAX_TOOL_RESULT_CHARS = 6_000


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GetCurrentDateArgs(_Args):
    """No arguments."""


class GetDbSchemaArgs(_Args):
    """No arguments."""


class RunSqlQueryArgs(_Args):
    query: str = Field(
        min_length=1,
        max_length=4_000,
        description="One read-only SQLite SELECT statement. The sender's own account data is in "
        "my_account, my_rentals and my_payments; the film catalog is readable. At most 100 rows.",
    )


class GetPolicyContextArgs(_Args):
    policy_area: str | None = Field(
        default=None,
        max_length=60,
        description="A policy area such as late_fees, lost_items, refunds, account, privacy, "
        "escalation, membership or communication.",
    )
    query: str | None = Field(
        default=None, max_length=500, description="Free-text search over the policy document."
    )
    top_k: int = Field(default=3, ge=1, le=10, description="How many sections to return.")


ARGUMENT_SCHEMAS: dict[str, type[BaseModel]] = {
    GET_CURRENT_DATE: GetCurrentDateArgs,
    GET_DB_SCHEMA: GetDbSchemaArgs,
    RUN_SQL_QUERY: RunSqlQueryArgs,
    GET_POLICY_CONTEXT: GetPolicyContextArgs,
    DRAFT_CUSTOMER_EMAIL: DraftRequest,
    CREATE_ESCALATION_TICKET: EscalationRequest,
}

DESCRIPTIONS: dict[str, str] = {
    GET_CURRENT_DATE: "Return today's business date (YYYY-MM-DD). Use it to judge due dates.",
    GET_DB_SCHEMA: "Describe the tables and columns you may query, marking the ones scoped to "
    "the sender's own account.",
    RUN_SQL_QUERY: "Run one read-only SELECT against the MediaVault database and return rows as "
    "JSON. Writes, PRAGMA, ATTACH and other customers' data are refused.",
    GET_POLICY_CONTEXT: "Look up MediaVault policy sections by area or by free-text query. Cite "
    "the returned section ids in your decision.",
    DRAFT_CUSTOMER_EMAIL: "Draft the reply to the sender from structured content (summary, "
    "findings, policy points, next steps). The reply always goes to the sender and is validated.",
    CREATE_ESCALATION_TICKET: "Hand the email to a human team with a structured ticket: reason "
    "code, why it needs a human, what you found, and the suggested queue.",
}


def _unavailable(**_: Any) -> str:
    # The tool objects exist so models can read their schemas; running them outside the graph's
    # gated tool nodes would skip the approval gate, so it is refused.
    raise RuntimeError("MediaVault tools run only inside the triage graph, behind the gate")


def tool_schemas(names: Sequence[str]) -> list[BaseTool]:
    """LangChain tool objects (name, description, argument schema) for ``bind_tools``."""
    return list(_tool_schemas(tuple(names)))


@cache
def _tool_schemas(names: tuple[str, ...]) -> tuple[BaseTool, ...]:
    # Built once per process: schema generation is a noticeable share of a model call's cost.
    return tuple(
        StructuredTool.from_function(
            func=_unavailable,
            name=name,
            description=DESCRIPTIONS[name],
            args_schema=ARGUMENT_SCHEMAS[name],
        )
        for name in names
    )


class ToolArgumentsInvalid(ValueError):
    """The model's arguments do not fit the tool's schema."""


def parse_arguments(tool: str, args: object) -> BaseModel:
    """Validate raw tool-call arguments, with a short message a model can act on."""
    schema = ARGUMENT_SCHEMAS.get(tool)
    if schema is None:
        raise ToolArgumentsInvalid(f"unknown tool {tool!r}")
    if not isinstance(args, dict):
        raise ToolArgumentsInvalid("arguments must be a JSON object")
    from pydantic import ValidationError

    try:
        return schema.model_validate(args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
            for err in exc.errors()[:4]
        )
        raise ToolArgumentsInvalid(f"invalid arguments for {tool}: {problems}") from None


@dataclass
class ToolResult:
    """What a tool returns: text for the model, a digest for the evidence trail."""

    content: str
    ok: bool = True
    row_count: int | None = None
    sql: str | None = None
    policy_section_ids: list[str] = field(default_factory=list)


def cap_tool_output(text: str) -> str:
    if len(text) <= MAX_TOOL_RESULT_CHARS:
        return text
    dropped = len(text) - MAX_TOOL_RESULT_CHARS
    return text[:MAX_TOOL_RESULT_CHARS] + f"\n[... {dropped} characters cut]"


@dataclass
class InvestigationEnvironment:
    """What the investigation tools may use for one email: all of it scoped to the sender."""

    business_date: Callable[[], date]
    run_query: Callable[[str], dict[str, Any]]
    describe_schema: Callable[[], str]
    search_policy: Callable[[str | None, str | None, int], list[dict[str, Any]]]


def run_investigation_tool(
    tool: str, args: BaseModel, env: InvestigationEnvironment
) -> ToolResult:
    """Run one gated investigation tool. Refusals come back as ``ok=False`` results."""
    from mediavault.tools.business_db.sessions import DataAccessRefused

    if isinstance(args, GetCurrentDateArgs):
        return ToolResult(content=env.business_date().isoformat())
    if isinstance(args, GetDbSchemaArgs):
        return ToolResult(content=cap_tool_output(env.describe_schema()))
    if isinstance(args, RunSqlQueryArgs):
        try:
            result = env.run_query(args.query)
        except DataAccessRefused as refusal:
            return ToolResult(content=f"Query refused: {refusal}", ok=False, sql=args.query)
        payload = json.dumps(result, default=str)
        return ToolResult(
            content=cap_tool_output(payload),
            row_count=int(result.get("row_count", 0)),
            sql=str(result.get("sql", args.query)),
        )
    if isinstance(args, GetPolicyContextArgs):
        try:
            hits = env.search_policy(args.policy_area, args.query, args.top_k)
        except ValueError as problem:
            return ToolResult(content=f"Policy lookup refused: {problem}", ok=False)
        return ToolResult(
            content=cap_tool_output(json.dumps(hits)),
            policy_section_ids=[str(hit["section_id"]) for hit in hits],
        )
    raise ToolArgumentsInvalid(f"{tool} is not an investigation tool")

"""`mediavault cases ...`: list the recorded cases and show one case file.

Also home of the case-file renderer that `mediavault review show` uses. Everything a customer
wrote is printed as plain text with control characters made visible, so an email cannot
restyle the operator's terminal (rich markup, ANSI escape sequences).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mediavault.agent.cli.options import HomeOption, section_rule, wide_console
from mediavault.graph.context import ConfigurationError, Context

if TYPE_CHECKING:
    from mediavault.agent.ops.case_trace import CaseTrace, TraceStep
    from mediavault.agent.ops.review_desk import CaseFile, EvidenceItem

cases_app = typer.Typer(help="List and inspect cases: one per email, with its outcome.",
                        no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True, soft_wrap=True, highlight=False).print(
        Text(f"error: {printable(message)}", style="bold red"))
    raise typer.Exit(code)


def context_for(home: Path | None, **overrides: object) -> Context:
    """The settings for an operator command; a bad setting is one error line and exit 2."""
    from mediavault.agent.stores.state_files import check_state_paths

    try:
        context = Context().with_overrides(home=home, **overrides)
        check_state_paths(context)
    except ConfigurationError as problem:
        _fail(str(problem))
    return context


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control characters shown as ``\\xNN``.

    Line breaks and tabs are kept when asked, else they become spaces: a reason or message
    written on two lines reads as one line, not as ``\\x0a``. Every other control character
    (an escape sequence, a bidi override) stays visible as its code.
    """
    out = []
    for char in text:
        if char in "\n\t\r":
            out.append(char if keep_newlines and char != "\r" else " ")
        elif ord(char) < 32 or 127 <= ord(char) < 160 or char in "\u2028\u2029":
            out.append(f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def _plain(text: str | None, *, style: str = "", keep_newlines: bool = False) -> Text:
    # Text(), never markup: "[bold]" in an email is shown as typed.
    return Text(printable(text or "", keep_newlines=keep_newlines), style=style)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def print_case_file(case: CaseFile, console: Console | None = None) -> None:
    """Print a case file for a person: email, customer, evidence, gate, draft, history."""
    console = console or wide_console()
    status = case.status.replace("_", " ")
    headline = f"Case {case.email_id}: {status}"
    if case.route:
        headline += f", route {case.route}"
    if case.reason_code:
        headline += f", {case.reason_code}"
    if case.queue:
        headline += f", queue {case.queue}"
    console.print(_plain(headline, style="bold"))
    if case.status_reason:
        console.print(_plain(f"why: {case.status_reason}"))
    if case.risk_flags:
        console.print(_plain("risk flags: " + ", ".join(case.risk_flags), style="yellow"))

    section_rule(console, "Email")
    email = case.email
    if email is not None:
        sender = f"{email.sender_name} <{email.sender}>" if email.sender_name else email.sender
        console.print(_plain(f"from: {sender}  received: {_when(case.received_at)}"))
        console.print(_plain(f"subject: {email.subject}"))
        if email.input_flags:
            console.print(_plain("input flags: " + ", ".join(email.input_flags), style="yellow"))
        console.print(_plain(email.body, keep_newlines=True))
    customer = case.customer
    if customer and customer.get("first_name") is not None:
        console.print(_plain(
            f"customer: #{customer.get('customer_id')} {customer.get('first_name')} "
            f"{customer.get('last_name')}, store {customer.get('store_id')}, "
            f"{'active' if customer.get('active') else 'inactive'}"))
    elif customer:
        console.print(_plain(f"customer: #{customer.get('customer_id')}"))
    else:
        console.print(_plain("customer: sender not verified as a customer (catalog answers only)",
                             style="yellow"))

    section_rule(console, "Evidence")
    if case.evidence:
        table = Table(show_edge=False)
        for column in ("tool", "detail", "rows", "outcome"):
            table.add_column(column, overflow="fold")
        for item in case.evidence:
            detail = item.sql or ", ".join(item.policy_section_ids)
            rows = "" if item.row_count is None else str(item.row_count)
            table.add_row(_plain(item.tool), _plain(detail), rows, _plain(item.outcome or ""))
        console.print(table)
        for item in case.evidence:
            if item.rows or (item.sql and item.row_count == 0):
                _print_query_rows(console, item)
    else:
        console.print("no investigation recorded")
    if case.policy_citations:
        console.print(_plain("policy cited: " + ", ".join(
            f"{c.section_id} ({c.title})" if c.title else f"{c.section_id} (not in the policy)"
            for c in case.policy_citations)))
    if case.decision_rationale:
        console.print(_plain(f"rationale: {case.decision_rationale}"))

    section_rule(console, "Gate verdicts")
    if case.gate_verdicts:
        table = Table(show_edge=False)
        for column in ("phase", "tool", "verdict", "reason"):
            table.add_column(column, overflow="fold")
        for verdict in case.gate_verdicts:
            style = {"deny": "red", "review": "yellow"}.get(verdict.verdict, "")
            table.add_row(_plain(verdict.phase), _plain(verdict.tool),
                          _plain(verdict.verdict, style=style), _plain(verdict.reason))
        console.print(table)
    else:
        console.print("no tool calls")

    draft = case.draft
    if draft is not None:
        validity = "valid" if draft.valid else "INVALID"
        section_rule(console, f"Draft v{draft.version} of {case.draft_versions} "
                              f"({draft.source}, {validity})")
        if draft.to or draft.subject:
            console.print(_plain(f"to: {draft.to or '-'}  subject: {draft.subject or '-'}"))
        console.print(_plain(draft.text, keep_newlines=True))
        for problem in draft.problems:
            console.print(_plain(f"problem: {problem}", style="red"))
    for problem in case.refused_problems:
        console.print(_plain(f"last edit refused: {problem}", style="red"))
    if len(case.draft_history) > 1:
        _print_draft_versions(console, case)

    if case.reviews:
        section_rule(console, "Reviews")
        table = Table(show_edge=False)
        for column in ("when", "reviewer", "decision", "reason", "message", "edit size"):
            table.add_column(column, overflow="fold")
        for review in case.reviews:
            table.add_row(_when(review.at), _plain(review.reviewer), review.decision,
                          review.reason_category or "", _plain(review.message or ""),
                          "" if review.edit_size is None else str(review.edit_size))
        console.print(table)
    if case.ticket:
        section_rule(console, "Escalation ticket")
        ticket = case.ticket
        console.print(_plain(
            f"{ticket.get('ticket_id')}: queue {ticket.get('suggested_routing')}, "
            f"priority {ticket.get('priority')}, reason {ticket.get('reason_code')}"))
        if ticket.get("escalation_reason"):
            console.print(_plain(f"why: {ticket.get('escalation_reason')}"))
    if case.outbox_path:
        console.print(_plain(f"reply in the outbox: {case.outbox_path}", style="green"))

    if case.trace:
        section_rule(console, f"Trace ({len(case.trace)} steps)")
        console.print(trace_table(_trace_of(case)))

    section_rule(console, f"Audit trail ({len(case.audit_trail)} events)")
    if case.audit_problem:
        console.print(_plain(f"audit log unreadable: {case.audit_problem}", style="red"))
    table = Table(show_edge=False)
    for column in ("when", "action", "outcome", "actor", "reason"):
        table.add_column(column, overflow="fold")
    for event in case.audit_trail:
        table.add_row(event.at.astimezone(UTC).strftime("%H:%M:%S"), _plain(event.action),
                      _plain(event.outcome), _plain(event.actor), _plain(event.reason or ""))
    console.print(table)
    if case.awaiting_review:
        console.print(_plain(
            f"waiting for review: mediavault review approve|edit|reject|escalate "
            f"{case.email_id}", style="bold"))


def _print_query_rows(console: Console, item: EvidenceItem) -> None:
    """One query's whole SQL and the rows it returned: what the draft's facts rest on."""
    console.print(_plain(f"query {item.tool_call_id or ''}: {item.sql or ''}".replace("  ", " "),
                         style="bold"))
    if not item.rows:
        console.print("  no rows")
        return
    columns = list(item.columns) or list(item.rows[0])
    table = Table(show_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in item.rows:
        table.add_row(*(_plain("" if row.get(c) is None else str(row.get(c))) for c in columns))
    console.print(table)
    if item.truncated:
        console.print(_plain(f"more rows exist: {item.truncation_note or 'cut at the cap'}",
                             style="yellow"))


def _print_draft_versions(console: Console, case: CaseFile) -> None:
    """Every version of the reply side by side, with the decisions each one met."""
    section_rule(console, f"Draft versions ({len(case.draft_history)}), oldest first")
    table = Table(show_edge=False, show_lines=True)
    for version in case.draft_history:
        table.add_column(f"v{version.version} ({version.source})", overflow="fold", ratio=1)
    table.add_row(*(_plain("; ".join(v.decisions) or "no decision yet", style="yellow")
                    for v in case.draft_history))
    table.add_row(*(_plain(v.text, keep_newlines=True) for v in case.draft_history))
    console.print(table)


def _trace_of(case: CaseFile) -> CaseTrace:
    from mediavault.agent.ops.case_trace import CaseTrace

    return CaseTrace(email_id=case.email_id, subject=case.email.subject if case.email else None,
                     status=case.status, route=case.route, reason_code=case.reason_code,
                     queue=case.queue, steps=case.trace, audit_problem=case.audit_problem)


_VERDICT_STYLES = {"allow": "green", "deny": "bold red", "review": "yellow"}
_STEP_NAMES = {"email": "email received", "safety_check": "safety check",
               "decision": "decision", "outcome": "outcome"}


def _step_name(step: TraceStep) -> str:
    if step.kind == "tool_call":
        return step.tool or "tool call"
    if step.kind == "model_call":
        return f"model ({step.phase})" if step.phase else "model"
    if step.kind == "review":
        return "review"
    return _STEP_NAMES.get(step.kind, step.action)


def trace_table(trace: CaseTrace, *, show_model_calls: bool = True) -> Table:
    """The trace as a table: step, gate verdict, what happened (one line each)."""
    table = Table(show_edge=False, box=None, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column("#", justify="right", style="dim")
    table.add_column("step", no_wrap=True)
    table.add_column("gate", no_wrap=True)
    table.add_column("what happened", overflow="fold")
    for step in trace.steps:
        if step.kind == "model_call" and not show_model_calls:
            continue
        summary = step.summary
        if step.kind == "model_call" and step.input_tokens is not None:
            summary += f" ({step.input_tokens} tokens in, {step.output_tokens or 0} out"
            summary += f", {step.duration_ms:.0f} ms)" if step.duration_ms is not None else ")"
        verdict = step.verdict or ""
        style = "bold" if step.kind in ("decision", "outcome") else ""
        table.add_row(str(step.number), _plain(_step_name(step), style=style),
                      _plain(verdict, style=_VERDICT_STYLES.get(verdict, "")),
                      _plain(summary, style="red" if verdict == "deny" else style))
        if verdict == "deny" and step.detail:
            table.add_row("", "", "", _plain(step.detail, style="dim"))
    return table


def print_case_trace(trace: CaseTrace, console: Console | None = None, *,
                     show_model_calls: bool = True) -> None:
    """Print a case's step trace for a person (the same steps ``--json`` lists)."""
    console = console or wide_console()
    headline = f"Trace of {trace.email_id}"
    if trace.subject:
        headline += f': "{trace.subject}"'
    console.print(_plain(headline, style="bold"))
    if trace.audit_problem:
        console.print(_plain(f"audit log unreadable, steps from the checkpoint only: "
                             f"{trace.audit_problem}", style="red"))
    if not trace.steps:
        console.print("no steps recorded")
        return
    console.print(trace_table(trace, show_model_calls=show_model_calls))


@cases_app.command("list")
def list_command(
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only cases with this status (awaiting_review, approved, "
                     "rejected, escalated, failed, open)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Received on or after (YYYY-MM-DD).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Received on or before (YYYY-MM-DD).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Show at most N cases.")
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """List cases, oldest received first, with status, route, reason code and queue."""
    from mediavault.agent.cli.metrics import parse_window
    from mediavault.agent.ops.review_desk import case_store_if_any
    from mediavault.agent.stores.case_store import CASE_STATUSES, OPEN_STATUS

    context = context_for(home)
    allowed = (*CASE_STATUSES, OPEN_STATUS)
    if status is not None and status not in allowed:
        _fail(f"--status {status!r} is not one of {', '.join(allowed)}")
    try:
        start, end = parse_window(since, until)
    except ValueError as problem:
        _fail(str(problem))
    store = case_store_if_any(context)
    if store is None:
        _fail(f"no case store at {context.cases_path}; triage some email first")
    cases = store.list_cases(status=status, since=start, until=end, limit=limit)
    if as_json:
        typer.echo(json.dumps([
            {"email_id": c.email_id, "received_at": c.received_at.isoformat(),
             "sender": c.sender, "subject": c.email.subject if c.email else None,
             "status": c.status, "route": c.route, "reason_code": c.reason_code,
             "queue": c.queue, "risk_flags": list(c.risk_flags),
             "decided_at": c.decided_at.isoformat() if c.decided_at else None}
            for c in cases], indent=2))
        return
    console = wide_console()
    if not cases:
        console.print("No cases match.")
        return
    table = Table(show_edge=False)
    for column in ("email id", "received", "sender", "status", "route", "reason code", "queue"):
        table.add_column(column, overflow="fold")
    for case in cases:
        table.add_row(_plain(case.email_id), _when(case.received_at), _plain(case.sender),
                      case.status.replace("_", " "), case.route or "-", case.reason_code or "-",
                      case.queue or "-")
    console.print(table)
    console.print(f"{len(cases)} case{'s' if len(cases) != 1 else ''}")


@cases_app.command("show")
def show_command(
    email_id: Annotated[str, typer.Argument(help="The email id of the case.")],
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Show one case and everything recorded about it.

    The email, customer, evidence, gate verdicts, drafts, reviews, ticket, outbox and audit
    trail.
    """
    from mediavault.agent.ops.review_desk import CaseNotFound, show_case

    context = context_for(home)
    try:
        case = show_case(email_id, context)
    except CaseNotFound as problem:
        _fail(str(problem))
    if as_json:
        typer.echo(json.dumps(case.model_dump(mode="json"), indent=2))
    else:
        print_case_file(case, wide_console())


@cases_app.command("trace")
def trace_command(
    email_id: Annotated[str, typer.Argument(help="The email id of the case.")],
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Show every step of one email's run, in order.

    The safety check and its finding, each model call, each tool call with the gate's verdict
    and a one-line result, the decision, reviews, the ticket and the outcome.
    """
    from mediavault.agent.ops.case_trace import case_trace
    from mediavault.agent.ops.review_desk import CaseNotFound

    context = context_for(home)
    try:
        trace = case_trace(email_id, context)
    except CaseNotFound as problem:
        _fail(str(problem))
    if as_json:
        typer.echo(json.dumps({**trace.model_dump(mode="json"),
                               "gate_denials": trace.gate_denials}, indent=2))
    else:
        print_case_trace(trace, wide_console())

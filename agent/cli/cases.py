"""`mediavault cases ...`: list the recorded cases and show one case file.

Also home of the case-file renderer that `mediavault review show` uses. Everything a customer
wrote is printed as plain text with control characters made visible, so an email cannot
restyle the operator's terminal (rich markup, ANSI escape sequences).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

# context_for and printable lived here first; other commands may still import them from here.
from mediavault.agent.cli.errors import context_for as context_for
from mediavault.agent.cli.errors import fail
from mediavault.agent.cli.errors import printable as printable
from mediavault.agent.cli.options import HomeOption

if TYPE_CHECKING:
    from mediavault.agent.ops.review_desk import CaseFile

cases_app = typer.Typer(help="List and inspect cases: one per email, with its outcome.",
                        no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _plain(text: str | None, *, style: str = "", keep_newlines: bool = False) -> Text:
    # Text(), never markup: "[bold]" in an email is shown as typed.
    return Text(printable(text or "", keep_newlines=keep_newlines), style=style)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def print_case_file(case: CaseFile, console: Console | None = None) -> None:
    """Print a case file for a person: email, customer, evidence, gate, draft, history."""
    console = console or Console(highlight=False, soft_wrap=True)
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

    console.print(Rule("Email"))
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

    console.print(Rule("Evidence"))
    if case.evidence:
        table = Table(show_edge=False)
        for column in ("tool", "detail", "rows", "outcome"):
            table.add_column(column, overflow="fold")
        for item in case.evidence:
            detail = item.sql or ", ".join(item.policy_section_ids)
            rows = "" if item.row_count is None else str(item.row_count)
            table.add_row(_plain(item.tool), _plain(detail), rows, _plain(item.outcome or ""))
        console.print(table)
    else:
        console.print("no investigation recorded")
    if case.policy_citations:
        console.print(_plain("policy cited: " + ", ".join(
            f"{c.section_id} ({c.title})" if c.title else f"{c.section_id} (not in the policy)"
            for c in case.policy_citations)))
    if case.decision_rationale:
        console.print(_plain(f"rationale: {case.decision_rationale}"))

    console.print(Rule("Gate verdicts"))
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
        console.print(Rule(f"Draft v{draft.version} of {case.draft_versions} "
                           f"({draft.source}, {validity})"))
        if draft.to or draft.subject:
            console.print(_plain(f"to: {draft.to or '-'}  subject: {draft.subject or '-'}"))
        console.print(_plain(draft.text, keep_newlines=True))
        for problem in draft.problems:
            console.print(_plain(f"problem: {problem}", style="red"))
    for problem in case.refused_problems:
        console.print(_plain(f"last edit refused: {problem}", style="red"))

    if case.reviews:
        console.print(Rule("Reviews"))
        table = Table(show_edge=False)
        for column in ("when", "reviewer", "decision", "reason", "message", "edit size"):
            table.add_column(column, overflow="fold")
        for review in case.reviews:
            table.add_row(_when(review.at), _plain(review.reviewer), review.decision,
                          review.reason_category or "", _plain(review.message or ""),
                          "" if review.edit_size is None else str(review.edit_size))
        console.print(table)
    if case.ticket:
        console.print(Rule("Escalation ticket"))
        ticket = case.ticket
        console.print(_plain(
            f"{ticket.get('ticket_id')}: queue {ticket.get('suggested_routing')}, "
            f"priority {ticket.get('priority')}, reason {ticket.get('reason_code')}"))
        if ticket.get("escalation_reason"):
            console.print(_plain(f"why: {ticket.get('escalation_reason')}"))
    if case.outbox_path:
        console.print(_plain(f"reply in the outbox: {case.outbox_path}", style="green"))

    console.print(Rule(f"Audit trail ({len(case.audit_trail)} events)"))
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
    from mediavault.agent.ops.pilot_report import parse_window
    from mediavault.agent.ops.review_desk import case_store_if_any
    from mediavault.agent.stores.case_store import CASE_STATUSES, OPEN_STATUS

    context = context_for(home)
    allowed = (*CASE_STATUSES, OPEN_STATUS)
    if status is not None and status not in allowed:
        fail(f"--status {status!r} is not one of {', '.join(allowed)}")
    try:
        start, end = parse_window(since, until)
    except ValueError as problem:
        fail(str(problem))
    store = case_store_if_any(context)
    if store is None:
        fail(f"no case store at {context.cases_path}; triage some email first")
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
    console = Console(highlight=False, soft_wrap=True)
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
        fail(str(problem))
    if as_json:
        typer.echo(json.dumps(case.model_dump(mode="json"), indent=2))
    else:
        print_case_file(case)

"""`mediavault metrics`: the pilot numbers over a date range, as a table, JSON or an HTML report.

The numbers come from :mod:`agent.ops.pilot_metrics`, the window, rows, plots and HTML page from
:mod:`agent.ops.pilot_report`; this module only prints.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mediavault.agent.cli.errors import fail
from mediavault.agent.cli.options import wide_console
from mediavault.agent.ops.pilot_report import (
    ELIGIBILITY_COLUMNS,
    REASON_COLUMNS,
    eligibility_rows,
    headline_rows,
    parse_window,
    reason_rows,
    render_html_report,
    window_text,
)
from mediavault.graph.context import ConfigurationError, Context

if TYPE_CHECKING:
    from mediavault.agent.ops.pilot_metrics import AutoApprovalRow, PilotMetrics



def _print_tables(metrics: PilotMetrics, eligibility: Sequence[AutoApprovalRow]) -> None:
    console = wide_console()
    console.print(Text(window_text(metrics.since, metrics.until)))
    headline = Table(title="Pilot metrics", show_edge=False)
    headline.add_column("metric")
    headline.add_column("value", justify="right")
    for label, value in headline_rows(metrics):
        headline.add_row(label, value)
    console.print(headline)
    if metrics.escalations_by_queue:
        queues = Table(title="Escalations by queue", show_edge=False)
        queues.add_column("queue")
        queues.add_column("escalations", justify="right")
        for queue, count in metrics.escalations_by_queue.items():
            queues.add_row(queue, str(count))
        console.print(queues)
    for title, columns, rows in (
        ("By reason code", REASON_COLUMNS, reason_rows(metrics)),
        ("Auto-approval eligibility (reporting only)", ELIGIBILITY_COLUMNS,
         eligibility_rows(eligibility)),
    ):
        if not rows:
            continue
        table = Table(title=title, show_edge=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)


def metrics_command(
    since: Annotated[
        str | None,
        typer.Option("--since", help="First day (YYYY-MM-DD) or date-time included."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Last day included (YYYY-MM-DD), or a date-time excluded."),
    ] = None,
    reopen_days: Annotated[
        int,
        typer.Option("--reopen-days", min=0,
                     help="A later email within this many days can re-open a case."),
    ] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
    html_path: Annotated[
        Path | None,
        typer.Option("--html", help="Also write a one-file HTML report with plots here."),
    ] = None,
    home: Annotated[
        Path | None, typer.Option("--home", help="State directory (MEDIAVAULT_HOME).")
    ] = None,
) -> None:
    """Pilot metrics over a date range, by reason code, with auto-approval eligibility.

    Deflection, escalations by queue, tone-rejected drafts, edits, time to review and
    re-opens, read from the case store. --html also writes a one-file report with plots.
    """
    from mediavault.agent.ops.pilot_metrics import auto_approval_eligibility, compute_pilot_metrics
    from mediavault.agent.ops.review_desk import case_store_if_any

    try:
        context = Context().with_overrides(home=home)
        window = parse_window(since, until)
    except (ConfigurationError, ValueError) as problem:
        fail(str(problem))
    store = case_store_if_any(context)
    if store is None:
        fail(f"no case store at {context.cases_path}; triage some email first")
    metrics = compute_pilot_metrics(store, since=window[0], until=window[1],
                                    reopen_window_days=reopen_days)
    eligibility = auto_approval_eligibility(store, since=window[0], until=window[1])
    if html_path is not None:
        cases = store.list_cases(since=window[0], until=window[1])
        try:
            page = render_html_report(metrics, eligibility, cases)
            html_path.write_text(page, encoding="utf-8")
        except RuntimeError as problem:
            fail(str(problem))
        except OSError as problem:
            fail(f"cannot write {html_path}: {problem.strerror or problem}")
    if as_json:
        typer.echo(json.dumps(
            {"metrics": metrics.model_dump(mode="json"),
             "auto_approval": [row.model_dump(mode="json") for row in eligibility]},
            indent=2))
    else:
        _print_tables(metrics, eligibility)
    if html_path is not None:
        Console(stderr=as_json, highlight=False, soft_wrap=True).print(
            Text(f"HTML report written to {html_path}"))

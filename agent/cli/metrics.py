"""`mediavault metrics`: the pilot numbers over a date range, as a table, JSON or an HTML report.

The numbers come from :mod:`agent.ops.pilot_metrics`; this module only parses the window, prints,
and draws the report's plots (route mix over time, escalations by queue, review outcomes).
The plots need matplotlib, imported only when a report is asked for.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mediavault.agent.cli.options import wide_console
from mediavault.graph.context import ConfigurationError, Context

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mediavault.agent.ops.pilot_metrics import AutoApprovalRow, PilotMetrics
    from mediavault.agent.stores.case_store import CaseRecord

#: The three plots of the report, in the order they appear.
REPORT_PLOTS: tuple[str, ...] = ("route_mix", "escalations_by_queue", "review_outcomes")
NO_OUTCOME = "no outcome yet"


def _fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True, soft_wrap=True, highlight=False).print(
        Text(f"error: {message}", style="bold red"))
    raise typer.Exit(code)


def _moment(value: str, flag: str, *, end_of_day: bool) -> datetime:
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            # A date given as --until includes that whole day.
            start = datetime.combine(day, time(), tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{flag}: {value!r} is not a date; use YYYY-MM-DD or an ISO date-time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """``--since``/``--until`` as UTC datetimes for ``[since, until)``.

    A bare date in ``--until`` counts that whole day; a date-time is taken as given (naive
    means UTC). Raises ValueError with a one-line message naming the flag.
    """
    start = _moment(since, "--since", end_of_day=False) if since else None
    end = _moment(until, "--until", end_of_day=True) if until else None
    if start is not None and end is not None and end <= start:
        raise ValueError("--until must be after --since")
    return start, end


# ------------------------------------------------------------------------------ the report


def route_mix_by_day(cases: Sequence[CaseRecord]) -> dict[date, Counter[str]]:
    """Per day received (UTC): how many emails went to a draft, to an escalation, or nowhere yet."""
    days: dict[date, Counter[str]] = {}
    for case in cases:
        route = case.route if case.status != "failed" and case.route else NO_OUTCOME
        days.setdefault(case.received_at.astimezone(UTC).date(), Counter())[route] += 1
    return dict(sorted(days.items()))


def review_outcomes(cases: Sequence[CaseRecord]) -> Counter[str]:
    """Reviewer decisions over the cases: approved, edited, rejected (by reason), escalated."""
    outcomes: Counter[str] = Counter()
    for case in cases:
        for review in case.reviews:
            if review.decision == "approve":
                outcomes["approved"] += 1
            elif review.decision == "edit":
                outcomes["edited"] += 1
            elif review.decision == "reject":
                outcomes[f"rejected: {review.reason_category or 'other'}"] += 1
            else:
                outcomes["escalated by reviewer"] += 1
    return outcomes


def _matplotlib_figure() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # matplotlib ships with the dev extra only
        raise RuntimeError(
            "the HTML report needs matplotlib: pip install matplotlib "
            "(or install the dev extra: pip install -e '.[dev]')"
        ) from None
    return Figure


def report_figures(metrics: PilotMetrics, cases: Sequence[CaseRecord]) -> dict[str, Figure]:
    """The report's plots as matplotlib figures, keyed by :data:`REPORT_PLOTS` names."""
    figure_class = _matplotlib_figure()
    from matplotlib.ticker import MaxNLocator

    figures: dict[str, Figure] = {}

    figure = figure_class(figsize=(7, 3.2), layout="constrained")
    axes = figure.add_subplot()
    days = route_mix_by_day(cases)
    labels = [day.isoformat() for day in days]
    bottom = [0] * len(days)
    for route, colour in (("draft", "#4c78a8"), ("escalate", "#f58518"), (NO_OUTCOME, "#bab0ac")):
        heights = [counts.get(route, 0) for counts in days.values()]
        if any(heights):
            axes.bar(labels, heights, bottom=bottom, label=route, color=colour, width=0.6)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_title("Route mix by day received")
    axes.set_ylabel("emails")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    if len(days) < 4:
        axes.set_xlim(-2, len(days) + 1)  # a day or two shown as bars, not as a wall
    if days:
        axes.legend(loc="upper left", fontsize="small")
        axes.tick_params(axis="x", labelrotation=45, labelsize="small")
    else:
        axes.text(0.5, 0.5, "no emails in this window", ha="center", transform=axes.transAxes)
    figures["route_mix"] = figure

    figures["escalations_by_queue"] = _bar_figure(
        figure_class, metrics.escalations_by_queue, "Escalations by queue", "#f58518",
        empty="no escalations in this window")
    figures["review_outcomes"] = _bar_figure(
        figure_class, dict(sorted(review_outcomes(cases).items())), "Review outcomes", "#54a24b",
        empty="no review decisions in this window")
    return figures


def _bar_figure(
    figure_class: type[Figure], counts: dict[str, int], title: str, colour: str, *, empty: str
) -> Figure:
    from matplotlib.ticker import MaxNLocator

    figure = figure_class(figsize=(7, 0.6 + 0.45 * max(len(counts), 2)), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title)
    if counts:
        names = list(counts)
        axes.barh(names, [counts[name] for name in names], color=colour)
        axes.invert_yaxis()  # first entry on top, as in the tables
        axes.set_xlabel("count")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        axes.text(0.5, 0.5, empty, ha="center", va="center", transform=axes.transAxes)
        axes.set_yticks([])
    return figure


def figure_png(figure: Figure) -> bytes:
    """A figure rendered as PNG bytes (no display or GUI backend needed)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _number(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.1f}{unit}"


def headline_rows(metrics: PilotMetrics) -> list[tuple[str, str]]:
    """The headline numbers as (label, formatted value) pairs, shared by table and report."""
    return [
        ("emails", str(metrics.emails)),
        ("deflection rate (approved without edit, not re-opened)",
         f"{_rate(metrics.deflection_rate)} ({metrics.deflected})"),
        ("escalation rate", f"{_rate(metrics.escalation_rate)} ({metrics.escalated})"),
        ("tone-rejected drafts",
         f"{metrics.tone_rejections} ({_rate(metrics.tone_rejection_rate)} of reviewed drafts)"),
        ("reviewed drafts", str(metrics.reviewed_drafts)),
        ("approved without edit", f"{_rate(metrics.approved_without_edit_rate)} "
                                  f"({metrics.approved_without_edit})"),
        ("edit rate", f"{_rate(metrics.edit_rate)} ({metrics.edits})"),
        ("mean edit size", _number(metrics.mean_edit_size, " characters")),
        ("time to review, mean", _number(metrics.mean_seconds_to_review, " s")),
        ("time to review, median", _number(metrics.median_seconds_to_review, " s")),
        (f"re-open rate ({metrics.reopen_window_days}-day window)",
         f"{_rate(metrics.reopen_rate)} ({metrics.reopened})"),
    ]


_REASON_COLUMNS = ("reason code", "emails", "deflected", "escalated", "reviewed",
                   "approved w/o edit", "tone rejections", "re-opened")


def _reason_rows(metrics: PilotMetrics) -> list[tuple[str, ...]]:
    return [
        (code, str(m.emails), str(m.deflected), str(m.escalated), str(m.reviewed_drafts),
         _rate(m.approved_without_edit_rate), str(m.tone_rejections), str(m.reopened))
        for code, m in metrics.by_reason_code.items()
    ]


def _eligibility_rows(rows: Sequence[AutoApprovalRow]) -> list[tuple[str, ...]]:
    return [
        (row.reason_code, "yes" if row.eligible else "no", str(row.reviewed_drafts),
         _rate(row.approved_without_edit_rate), str(row.tone_rejections), row.reason or "")
        for row in rows
    ]


_ELIGIBILITY_COLUMNS = ("reason code", "eligible", "reviewed", "approved w/o edit",
                        "tone rejections", "why not")


def _window_text(since: datetime | None, until: datetime | None) -> str:
    start = since.isoformat() if since else "the first case"
    end = until.isoformat() if until else "now"
    return f"cases received from {start} until {end} (end excluded)"


def render_html_report(
    metrics: PilotMetrics,
    eligibility: Sequence[AutoApprovalRow],
    cases: Sequence[CaseRecord],
    *,
    generated_at: datetime | None = None,
) -> str:
    """One self-contained HTML page: the numbers, tables and the plots as embedded PNGs."""
    images = {
        name: base64.b64encode(figure_png(figure)).decode("ascii")
        for name, figure in report_figures(metrics, cases).items()
    }
    stamp = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")

    def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
            for row in rows
        ) or f'<tr><td colspan="{len(columns)}">none</td></tr>'
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    plots = "".join(
        f'<figure><img alt="{name.replace("_", " ")}" '
        f'src="data:image/png;base64,{images[name]}"></figure>'
        for name in REPORT_PLOTS
    )
    queues = sorted(metrics.escalations_by_queue.items())
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>MediaVault pilot metrics</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#222}"
        "table{border-collapse:collapse;margin:0 0 1.5rem}"
        "td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}"
        "th{background:#f3f3f3}figure{margin:0 0 1.5rem}img{max-width:100%}"
        "</style></head><body>"
        "<h1>MediaVault pilot metrics</h1>"
        f"<p>{html.escape(_window_text(metrics.since, metrics.until))}. "
        f"Generated {html.escape(stamp)}.</p>"
        "<h2>Headline numbers</h2>"
        + table(("metric", "value"), headline_rows(metrics))
        + "<h2>Plots</h2>" + plots
        + "<h2>Escalations by queue</h2>"
        + table(("queue", "escalations"), [(q, str(n)) for q, n in queues])
        + "<h2>By reason code</h2>" + table(_REASON_COLUMNS, _reason_rows(metrics))
        + "<h2>Auto-approval eligibility (reporting only)</h2>"
        + table(_ELIGIBILITY_COLUMNS, _eligibility_rows(eligibility))
        + "</body></html>\n"
    )


# ----------------------------------------------------------------------------- the command


def _print_tables(metrics: PilotMetrics, eligibility: Sequence[AutoApprovalRow]) -> None:
    console = wide_console()
    console.print(Text(_window_text(metrics.since, metrics.until)))
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
        ("By reason code", _REASON_COLUMNS, _reason_rows(metrics)),
        ("Auto-approval eligibility (reporting only)", _ELIGIBILITY_COLUMNS,
         _eligibility_rows(eligibility)),
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
        _fail(str(problem))
    store = case_store_if_any(context)
    if store is None:
        _fail(f"no case store at {context.cases_path}; triage some email first")
    metrics = compute_pilot_metrics(store, since=window[0], until=window[1],
                                    reopen_window_days=reopen_days)
    eligibility = auto_approval_eligibility(store, since=window[0], until=window[1])
    if html_path is not None:
        cases = store.list_cases(since=window[0], until=window[1])
        try:
            page = render_html_report(metrics, eligibility, cases)
            html_path.write_text(page, encoding="utf-8")
        except RuntimeError as problem:
            _fail(str(problem))
        except OSError as problem:
            _fail(f"cannot write {html_path}: {problem.strerror or problem}")
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

"""`mediavault eval`: run labelled datasets through the agent and report how it did.

A thin layer over :mod:`evals`: load the datasets, run them (``--k`` times each), score, write
results.jsonl, summary.md, summary.json and report.html, and print the headline figures.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mediavault.agent.cli.errors import fail
from mediavault.graph.context import ConfigurationError, Context, parse_business_date

#: Exit code for bad input: an unreadable dataset, a missing database, an unknown model.
EXIT_BAD_INPUT = 2

_err = Console(stderr=True, soft_wrap=True, highlight=False)


def _default_out(home: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return home / "evals" / f"run-{stamp}"


def eval_command(
    dataset: Annotated[
        list[Path] | None,
        typer.Option("--dataset", help="A JSONL dataset; repeat for several (default: the "
                     "project's demo dataset)."),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Any Sakila database: a SQLite file or a postgresql:// DSN "
                     "(default: a demo database, seed 42, built for the run)."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Business date YYYY-MM-DD (e.g. 2006-02-20 for the "
                     "original Sakila)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="`rules` or `openai:<model>` (MEDIAVAULT_MODEL).")
    ] = None,
    k: Annotated[
        int, typer.Option("--k", min=1, max=50, help="Runs per case; pass^k needs all to pass.")
    ] = 1,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output directory (default: "
                     "$MEDIAVAULT_HOME/evals/run-<time>)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary figures as JSON on stdout.")
    ] = False,
    sakila: Annotated[
        str | None,
        typer.Option("--sakila", envvar="MEDIAVAULT_SAKILA_ORIGINAL",
                     help="The original Sakila SQLite file, for cases labelled \"db\": "
                     "\"sakila\" (MEDIAVAULT_SAKILA_ORIGINAL)."),
    ] = None,
    fail_under: Annotated[
        list[str] | None,
        typer.Option("--fail-under", metavar="[FIGURE=]PERCENT",
                     help="Exit 1 when a figure is below PERCENT: the pass rate, or a named "
                     "rate such as route_accuracy=92 or must_include_rate=90; repeatable."),
    ] = None,
) -> None:
    """Run labelled eval datasets through the triage graph (review mode none) and score them."""
    from mediavault.evals.dataset import DEMO_DATASET, DatasetError, load_dataset
    from mediavault.evals.report import write_report
    from mediavault.evals.runner import EvalOptions, run_eval
    from mediavault.evals.scoring import score_run

    try:
        context = Context().with_overrides(model=model)
        day = parse_business_date(as_of)
    except ConfigurationError as problem:
        fail(str(problem))
    try:
        thresholds = [parse_threshold(text) for text in fail_under or []]
    except ValueError as problem:
        fail(str(problem))
    paths = dataset or [DEMO_DATASET]
    from mediavault.evals.safety_corpus import is_safety_corpus

    if any(is_safety_corpus(path) for path in paths):
        # Safety corpora (category, placement, expect_queue) are scored on the queue reached.
        _safety_eval(paths, context, db=db, as_of=day, as_json=as_json)
        return
    try:
        datasets = [load_dataset(path) for path in paths]
    except DatasetError as problem:
        fail(str(problem))
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        fail("two datasets share a file name; results are keyed by it, rename one")
    options = EvalOptions(db=db, as_of=day, model=context.model, k=k, sakila_db=sakila)
    total = sum(len(d.cases) for d in datasets) * k
    done = 0

    def progress(case: object, observation: object) -> None:
        nonlocal done
        done += 1
        if not as_json and (done % 25 == 0 or done == total):
            _err.print(f"{done}/{total} emails triaged", style="dim")

    try:
        run = run_eval(datasets, options, progress=progress)
    except ConfigurationError as problem:
        fail(str(problem))
    scored = score_run(run)
    files = write_report(scored, out or _default_out(context.home))
    summary = scored.summary
    shortfalls = [below for below in (threshold_shortfall(summary, figure, floor)
                                      for figure, floor in thresholds) if below]
    if as_json:
        typer.echo(json.dumps({**summary, "below_threshold": shortfalls, "outputs": {
            "results": str(files.results), "summary": str(files.summary_markdown),
            "report": str(files.report_html)}}, indent=2))
        if shortfalls:
            raise typer.Exit(1)
        return
    _print_summary(summary)
    for case, observation, score in scored.failing():
        _err.print(Text(f"FAIL {case.id} (run {observation.run}): " + "; ".join(score.failures),
                        style="yellow"))
    console = Console(highlight=False)
    for note in summary["notes"]:
        console.print(note)
    # soft_wrap: a long path stays on one line, so it can be copied (or clicked).
    console.print(f"Results: {files.results}\nSummary: {files.summary_markdown}\n"
                  f"Report:  {files.report_html}", soft_wrap=True)
    for below in shortfalls:
        _err.print(Text(f"below threshold: {below}", style="bold red"))
    if shortfalls:
        raise typer.Exit(1)


#: The figure a bare ``--fail-under PERCENT`` applies to.
DEFAULT_THRESHOLD_FIGURE = "pass_rate"


def parse_threshold(text: str) -> tuple[str, float]:
    """``"92"`` or ``"route_accuracy=92"`` as (figure, fraction); ValueError when malformed."""
    from mediavault.evals.scoring import RATE_FIGURES

    figure, _, number = text.rpartition("=")
    figure = figure.strip() or DEFAULT_THRESHOLD_FIGURE
    if figure not in RATE_FIGURES:
        raise ValueError(f"--fail-under: unknown figure {figure!r}; use one of "
                         + ", ".join(RATE_FIGURES))
    try:
        percent = float(number.strip().rstrip("%"))
    except ValueError:
        raise ValueError(f"--fail-under: {text!r} is not [FIGURE=]PERCENT") from None
    if not 0 <= percent <= 100:
        raise ValueError(f"--fail-under: {percent} is not a percentage between 0 and 100")
    return figure, percent / 100


def threshold_shortfall(summary: dict[str, object], figure: str, floor: float) -> str | None:
    """A sentence when ``figure`` is below ``floor`` (a figure nothing measured passes)."""
    value = summary.get(figure)
    if value is None or not isinstance(value, int | float):
        return None
    if value + 1e-9 < floor:
        return f"{figure} {value * 100:.1f}% < {floor * 100:g}%"
    return None


def _print_summary(summary: dict[str, object]) -> None:
    from mediavault.evals.report import overall_table, safety_table

    console = Console(highlight=False)
    for title, (headers, rows) in (("Eval results", overall_table(summary)),
                                   ("Safety", safety_table(summary))):
        table = Table(title=title, show_header=True, header_style="bold")
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)


def _safety_eval(paths: list[Path], context: Context, *, db: str | None,
                 as_of: object, as_json: bool) -> None:
    from datetime import date

    from mediavault.evals.dataset import DatasetError
    from mediavault.evals.runner import EvalOptions
    from mediavault.evals.safety_corpus import (
        format_score,
        is_safety_corpus,
        load_all,
        run_safety_corpus,
        score_safety_corpus,
    )

    if not all(is_safety_corpus(path) for path in paths):
        fail("a safety corpus cannot be mixed with other datasets in one run")
    try:
        corpora = load_all(paths)
    except (DatasetError, ConfigurationError) as problem:
        fail(str(problem))
    options = EvalOptions(db=db, as_of=as_of if isinstance(as_of, date) else None,
                          model=context.model)
    total = sum(len(corpus.cases) for corpus in corpora)
    done = 0

    def progress(case: object, observation: object) -> None:
        nonlocal done
        done += 1
        if not as_json and (done % 50 == 0 or done == total):
            _err.print(f"{done}/{total} emails triaged", style="dim")

    try:
        observations = run_safety_corpus(corpora, options, progress=progress)
    except ConfigurationError as problem:
        fail(str(problem))
    score = score_safety_corpus(observations)
    if as_json:
        typer.echo(json.dumps({"corpora": [str(c.path) for c in corpora],
                               "model": context.model, **score.as_dict()}, indent=2))
        return
    Console(highlight=False, soft_wrap=True).print(Text(format_score(score)))

"""Eval outputs: results as JSON Lines, a markdown summary and an HTML report with plots.

Both summaries are built from the same tables, so they always agree. The HTML report is one
self-contained file (plots embedded as PNG) with a route confusion matrix, accuracy per reason
code and the latency distribution; it needs matplotlib, and says so instead of failing when
matplotlib is not installed.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediavault.evals.dataset import EvalCase
from mediavault.evals.runner import Observation
from mediavault.evals.scoring import MUST_ESCALATE_CODES, CaseScore, ScoredRun

Table = tuple[list[str], list[list[str]]]


@dataclass(frozen=True)
class ReportFiles:
    """Where a run's outputs were written."""

    results: Path
    summary_markdown: Path
    summary_json: Path
    report_html: Path


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _num(value: object) -> str:
    return "n/a" if value is None else str(value)


def overall_table(summary: dict[str, Any]) -> Table:
    latency = summary.get("latency_ms") or {}
    tokens = ("reported by the model" if summary["tokens_reported"]
              else "not reported by the model: prompt characters counted instead")
    rows = [
        ["Cases / runs", f"{summary['cases']} / {summary['runs']} (k={summary['k']})"],
        ["Pass rate (runs)", _pct(summary["pass_rate"])],
        [f"pass^{summary['k']} (cases passing every run)", _pct(summary["pass_hat_k"])],
        ["Route accuracy", _pct(summary["route_accuracy"])],
        ["Reason code accuracy", _pct(summary["reason_code_accuracy"])],
        ["Routing (queue) accuracy", _pct(summary["routing_accuracy"])],
        ["must_include satisfied", _pct(summary["must_include_rate"])],
        ["Asks answered (labelled asks)",
         f"{summary['asks_answered']} of {summary['asks_labelled']} "
         f"({_pct(summary['asks_answered_rate'])})"],
        ["Multi-question drafts answering every ask",
         f"{summary['multi_ask_drafts_all_answered']} of {summary['multi_ask_drafts']} "
         f"({_pct(summary['multi_ask_all_answered_rate'])})"],
        ["Failed runs (no outcome)", _num(summary["failed_runs"])],
        ["Gate denials", _num(summary["gate_denials"])],
        ["Tool calls per email (mean)", _num(summary["tool_calls_mean"])],
        ["Model calls per email (mean)", _num(summary["model_calls_mean"])],
        ["Tokens", tokens],
        ["Input / output tokens per email (mean)",
         f"{_num(summary['input_tokens_mean'])} / {_num(summary['output_tokens_mean'])}"],
        ["Prompt characters per email (mean)", _num(summary["prompt_chars_mean"])],
        ["Wall time per email: mean / p50 / p95 / max (ms)",
         " / ".join(_num(latency.get(key)) for key in ("mean", "p50", "p95", "max"))],
        ["Wall time, all runs (s)", _num(latency.get("total_s"))],
    ]
    return ["Figure", "Value"], rows


def safety_table(summary: dict[str, Any]) -> Table:
    recall = summary["escalation_recall"]
    rows = [[f"Escalation recall: {code}", _pct(recall.get(code))]
            for code in MUST_ESCALATE_CODES]
    rows += [[f"Escalation recall: {code}", _pct(value)]
             for code, value in recall.items() if code not in MUST_ESCALATE_CODES]
    rows += [
        ["False escalations on bait",
         f"{summary['bait_false_escalations']} of {summary['bait_runs']} "
         f"({_pct(summary['bait_false_escalation_rate'])})"],
        ["Drafts for emails that must go to a person",
         f"{summary['drafts_for_must_escalate']} of {summary['must_escalate_runs']}"],
        ["Drafts on forced-escalation cases",
         f"{summary['forced_escalation_drafts']} of {summary['forced_escalation_runs']}"],
        ["Drafts despite a forced escalation", _num(summary["drafted_despite_safety_check"])],
        ["must_not_include violations", _num(summary["must_not_include_violations"])],
        ["must_include misses", _num(summary["must_include_misses"])],
        ["Approved drafts", _num(summary["approved_drafts"])],
        ["DLP failures among approved drafts", _num(summary["dlp_failures"])],
        ["Validation failures among approved drafts", _num(summary["validation_failures"])],
        ["Draft retries", _num(summary["draft_retries"])],
    ]
    return ["Figure", "Value"], rows


def group_table(groups: dict[str, dict[str, Any]], label: str) -> Table:
    rows = [[name, str(row["cases"]), str(row["runs"]), _pct(row["pass_rate"]),
             _pct(row["route_accuracy"]), _pct(row["reason_code_accuracy"])]
            for name, row in groups.items()]
    return [label, "Cases", "Runs", "Pass", "Route", "Reason code"], rows


def confusion_table(summary: dict[str, Any]) -> Table:
    confusion: dict[str, dict[str, int]] = summary["route_confusion"]
    columns = ["draft", "escalate", "failed"]
    rows = [[f"expected {expected}", *(str(confusion[expected].get(c, 0)) for c in columns)]
            for expected in ("draft", "escalate", "either") if expected in confusion]
    return ["", *(f"got {c}" for c in columns)], rows


def asks_table(scored: ScoredRun) -> Table:
    """Per case with labelled asks: each ask and whether the approved draft answers it."""
    rows: list[list[str]] = []
    for observation, score in zip(scored.observations, scored.scores, strict=True):
        case = scored.cases[(observation.dataset, observation.case_id)]
        if not case.expect.asks:
            continue
        marks = "; ".join(f"{'yes' if ok else 'NO'}: {ask.ask[:60]}"
                          for ask, ok in zip(case.expect.asks, score.asks_answered, strict=True))
        rows.append([case.id, str(observation.run), _outcome(observation),
                     f"{sum(score.asks_answered)}/{len(case.expect.asks)}", marks])
    return ["Case", "Run", "Outcome", "Answered", "Asks"], rows


# ------------------------------------------------------------------------------ markdown


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    headers, rows = table
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def trace_lines(observation: Observation) -> list[str]:
    """The trace of one run as readable lines: risk, tool calls with verdicts, decision."""
    trace = observation.trace
    lines: list[str] = []
    risk = trace.get("risk") or {}
    if risk.get("flags"):
        forced = "forced escalation" if risk.get("forced_escalation") else "not forced"
        lines.append(f"safety check ({forced}): " + "; ".join(risk["flags"]))
    else:
        lines.append("safety check: no risk flags")
    lines.append(f"sender verified: {'yes' if trace.get('sender_verified') else 'no'}")
    for step in trace.get("steps") or []:
        line = f"{step.get('phase') or '?'}: {step.get('tool')}({step.get('args', '')}) -> " \
               f"{step.get('verdict')}"
        if step.get("reason"):
            line += f" ({step['reason']})"
        if step.get("result"):
            line += f" => {step['result']}"
        lines.append(line)
    decision = trace.get("decision") or {}
    if decision.get("route"):
        line = f"decision: {decision.get('route')} / {decision.get('reason_code')}"
        if decision.get("queue"):
            line += f" -> {decision['queue']}"
        if decision.get("rationale"):
            line += f": {decision['rationale']}"
        if decision.get("overridden"):
            line += f" [overridden: {decision['overridden']}]"
        lines.append(line)
    if trace.get("budget_exceeded"):
        lines.append(f"budget exceeded: {trace['budget_exceeded']}")
    for problem in trace.get("draft_problems") or []:
        lines.append(f"draft problem: {problem}")
    if observation.error:
        lines.append(f"error: {observation.error}")
    return lines


def _outcome(observation: Observation) -> str:
    text = f"{observation.status}"
    if observation.route:
        text += f", route {observation.route}, reason {observation.reason_code}"
    if observation.queue:
        text += f", queue {observation.queue}"
    return text


def markdown_summary(scored: ScoredRun) -> str:
    """The run summary as markdown: overall, safety, per tag, per reason code, failures."""
    summary = scored.summary
    parts = [
        "# MediaVault eval results",
        "",
        f"Model `{summary['model']}` on {summary['db']}, business date "
        f"{summary['as_of'] or 'from the database'}; datasets: "
        + ", ".join(f"`{name}`" for name in summary["datasets"]) + ".",
    ]
    parts += [f"\n> {note}" for note in summary["notes"]]
    parts += ["", "## Overall", "", markdown_table(overall_table(summary)),
              "", "## Safety", "", markdown_table(safety_table(summary)),
              "", "## Routes", "", markdown_table(confusion_table(summary)),
              "", "## Per tag", "", markdown_table(group_table(summary["per_tag"], "Tag")),
              "", "## Per reason code (expected)", "",
              markdown_table(group_table(summary["per_reason_code"], "Reason code")),
              "", "## Asks answered, per case", "", markdown_table(asks_table(scored)),
              "", "## Failing cases", ""]
    failing = scored.failing()
    if not failing:
        parts.append("Every case passed.")
    for case, observation, score in failing:
        parts += _markdown_failure(case, observation, score)
    return "\n".join(parts).rstrip() + "\n"


def _markdown_failure(case: EvalCase, observation: Observation, score: CaseScore) -> list[str]:
    return [
        f"### {case.id} ({observation.dataset}, run {observation.run})",
        "",
        f"- Subject: {_md_cell(case.email.subject[:120]) or '(empty)'}",
        f"- Tags: {', '.join(case.tags) or '-'}",
        f"- Outcome: {_outcome(observation)}",
        *(f"- Failed: {_md_cell(failure)}" for failure in score.failures),
        "",
        "```",
        *trace_lines(observation),
        "```",
        "",
    ]


# ---------------------------------------------------------------------------------- HTML


def html_table(table: Table) -> str:
    headers, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_plots(scored: ScoredRun) -> dict[str, str]:
    """PNG plots as base64 strings, by name; empty when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    summary = scored.summary
    plots: dict[str, str] = {}

    def encode(figure: Any) -> str:
        buffer = io.BytesIO()
        figure.tight_layout()
        figure.savefig(buffer, format="png", dpi=100)
        plt.close(figure)
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    headers, rows = confusion_table(summary)
    matrix = [[int(v) for v in row[1:]] for row in rows]
    figure, axes = plt.subplots(figsize=(5, 3.2))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(headers) - 1), headers[1:])
    axes.set_yticks(range(len(rows)), [row[0] for row in rows])
    darkest = max((v for row in matrix for v in row), default=0)
    for y, row in enumerate(matrix):
        for x, value in enumerate(row):
            # White on the dark cells, black on the pale ones.
            colour = "white" if darkest and value > darkest / 2 else "black"
            axes.text(x, y, str(value), ha="center", va="center", color=colour)
    axes.set_title("Route confusion matrix")
    plots["Route confusion matrix"] = encode(figure)

    groups = summary["per_reason_code"]
    names = list(groups)
    figure, axes = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2))
    route = [(groups[n]["route_accuracy"] or 0) * 100 for n in names]
    reason = [(groups[n]["reason_code_accuracy"] or 0) * 100 for n in names]
    positions = range(len(names))
    axes.barh([p - 0.2 for p in positions], route, height=0.4, label="route")
    axes.barh([p + 0.2 for p in positions], reason, height=0.4, label="reason code")
    axes.set_yticks(list(positions), names)
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("accuracy (%)")
    # Above the bars, under the title: full bars would hide a legend drawn inside the axes.
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    axes.set_title("Accuracy per expected reason code", pad=24)
    plots["Accuracy per reason code"] = encode(figure)

    latencies = [o.wall_ms for o in scored.observations]
    figure, axes = plt.subplots(figsize=(6, 3.2))
    axes.hist(latencies, bins=min(30, max(5, len(latencies) // 4)))
    axes.set_xlabel("wall time per email (ms)")
    axes.set_ylabel("emails")
    axes.set_title("Latency distribution")
    plots["Latency distribution"] = encode(figure)
    return plots


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f2f2f2; }
pre { background: #f7f7f7; padding: 0.6rem; overflow-x: auto; white-space: pre-wrap; }
.note { background: #fff8dc; padding: 0.5rem; border-left: 4px solid #e0c060; }
img { max-width: 100%; margin: 0.5rem 1rem 1rem 0; }
"""


def html_report(scored: ScoredRun, plots: dict[str, str] | None = None) -> str:
    """A self-contained HTML page: the summary tables, the plots and every failing trace."""
    summary = scored.summary
    plots = render_plots(scored) if plots is None else plots
    escape = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>MediaVault eval results</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>MediaVault eval results</h1>",
        f"<p>Model <code>{escape(summary['model'])}</code> on {escape(summary['db'])}, business "
        f"date {escape(summary['as_of'] or 'from the database')}; datasets: "
        f"{escape(', '.join(summary['datasets']))}.</p>",
    ]
    parts += [f"<p class='note'>{escape(note)}</p>" for note in summary["notes"]]
    parts += ["<h2>Overall</h2>", html_table(overall_table(summary)),
              "<h2>Safety</h2>", html_table(safety_table(summary)), "<h2>Plots</h2>"]
    if plots:
        parts += [f"<figure><img alt='{escape(name)}' src='data:image/png;base64,{data}'>"
                  f"<figcaption>{escape(name)}</figcaption></figure>"
                  for name, data in plots.items()]
    else:
        parts.append("<p class='note'>Plots need matplotlib, which is not installed "
                     "(pip install matplotlib).</p>")
    parts += ["<h2>Routes</h2>", html_table(confusion_table(summary)),
              "<h2>Per tag</h2>", html_table(group_table(summary["per_tag"], "Tag")),
              "<h2>Per reason code (expected)</h2>",
              html_table(group_table(summary["per_reason_code"], "Reason code")),
              "<h2>Failing cases</h2>"]
    failing = scored.failing()
    if not failing:
        parts.append("<p>Every case passed.</p>")
    for case, observation, score in failing:
        parts += [
            f"<h3>{escape(case.id)} ({escape(observation.dataset)}, run {observation.run})</h3>",
            "<ul>",
            f"<li>Subject: {escape(case.email.subject[:120]) or '(empty)'}</li>",
            f"<li>Tags: {escape(', '.join(case.tags) or '-')}</li>",
            f"<li>Outcome: {escape(_outcome(observation))}</li>",
            *(f"<li>Failed: {escape(failure)}</li>" for failure in score.failures),
            "</ul>",
            f"<pre>{escape(chr(10).join(trace_lines(observation)))}</pre>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------------- files


def result_records(scored: ScoredRun) -> list[dict[str, Any]]:
    """One JSON-ready record per run of a case: what happened, the labels and the verdict."""
    records: list[dict[str, Any]] = []
    for observation, score in zip(scored.observations, scored.scores, strict=True):
        case = scored.cases[(observation.dataset, observation.case_id)]
        record = observation.model_dump(mode="json")
        record.update(passed=score.passed, checks=score.checks, failures=score.failures,
                      asks=[{"ask": ask.ask, "answered": answered} for ask, answered
                            in zip(case.expect.asks, score.asks_answered, strict=True)],
                      tags=case.tags, expect=case.expect.model_dump(mode="json",
                                                                    exclude_none=True))
        records.append(record)
    return records


def write_report(scored: ScoredRun, out_dir: Path) -> ReportFiles:
    """Write results.jsonl, summary.md, summary.json and report.html into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        results=out_dir / "results.jsonl",
        summary_markdown=out_dir / "summary.md",
        summary_json=out_dir / "summary.json",
        report_html=out_dir / "report.html",
    )
    lines: Sequence[str] = [json.dumps(r, ensure_ascii=False) for r in result_records(scored)]
    files.results.write_text("\n".join(lines) + "\n", encoding="utf-8")
    files.summary_markdown.write_text(markdown_summary(scored), encoding="utf-8")
    files.summary_json.write_text(json.dumps(scored.summary, indent=2) + "\n", encoding="utf-8")
    files.report_html.write_text(html_report(scored), encoding="utf-8")
    return files


__all__ = [
    "ReportFiles",
    "asks_table",
    "html_report",
    "markdown_summary",
    "render_plots",
    "result_records",
    "trace_lines",
    "write_report",
]

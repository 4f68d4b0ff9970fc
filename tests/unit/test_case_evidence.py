"""What a reviewer sees beside a draft: the whole SQL with its rows, the step trace, every
version of a rejected draft side by side, and reasons written as text.
"""

from __future__ import annotations

import json as json_module
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from typer.testing import CliRunner

from mediavault.agent.api import triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.models.rules_model import RulesChatModel
from mediavault.agent.models.scripted_model import ScriptedChatModel
from mediavault.agent.ops.review_desk import reject_draft, show_case
from mediavault.cli import app
from mediavault.graph.context import Context

REPO = Path(__file__).resolve().parents[2]
INBOX = {email.email_id: email for email in read_inbox_csv(REPO / "examples" / "inbox.csv").emails}
APOLOGY = "We are sorry that this took a second message."

runner = CliRunner()


def revising_model() -> ScriptedChatModel:
    """The rules model, except that a revision after a rejection adds a sentence."""
    rules = RulesChatModel()

    def script(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
        formatted = [{"type": "function", "function": {"name": n, "parameters": {}}}
                     for n in tools]
        answer = rules.invoke(messages, tools=formatted) if tools else rules.invoke(messages)
        assert isinstance(answer, AIMessage)
        rejected = any("a reviewer rejected the draft" in str(m.content) for m in messages)
        if "draft_customer_email" in tools and rejected and answer.tool_calls:
            call: dict[str, Any] = dict(answer.tool_calls[0])
            args = dict(call["args"])
            args["findings"] = [*args.get("findings", []), APOLOGY]
            return AIMessage(content="", tool_calls=[{**call, "args": args}])
        return answer

    return ScriptedChatModel(script=script)


@pytest.fixture
def context(demo_db_path: Path, mediavault_home: Path) -> Context:
    return Context(home=mediavault_home, db=str(demo_db_path))


def test_the_case_file_holds_each_query_whole_with_its_rows(context: Context) -> None:
    triage_email(INBOX["msg-001"], context=context)
    case = show_case("msg-001", context)
    [query] = [item for item in case.evidence if item.tool == "run_sql_query"]
    # The statement as it ran, not cut at 500 characters as the checkpoint's summary is.
    assert query.sql is not None and len(query.sql) > 500
    assert query.sql.rstrip().endswith("LIMIT 100")
    assert query.rows and len(query.rows) == query.row_count
    assert set(query.columns) == set(query.rows[0])
    assert any(row.get("title") == "GLASS FRONTIER" for row in query.rows)


def test_review_show_prints_the_rows_the_draft_rests_on(context: Context) -> None:
    triage_email(INBOX["msg-006"], context=context)
    shown = runner.invoke(app, ["review", "show", "msg-006"],
                          env={"MEDIAVAULT_DB": str(context.db)})
    assert shown.exit_code == 0, shown.output
    case = show_case("msg-006", context)
    [query] = [item for item in case.evidence if item.tool == "run_sql_query"]
    assert query.sql is not None and f"query {query.tool_call_id}: {query.sql}" in shown.stdout
    row = [line for line in shown.stdout.splitlines()
           if "VELVET COMPASS" in line and "│" in line]
    assert row and "2026-03-07 19:35:00" in row[0]  # the due date the draft states
    assert "VELVET COMPASS" in (case.draft.text if case.draft else "")
    # The step trace sits in the case file too: the same steps as `cases trace`.
    assert "── Trace (" in shown.stdout
    traced = runner.invoke(app, ["cases", "trace", "msg-006", "--json"])
    assert [s["summary"] for s in json_module.loads(traced.stdout)["steps"]] == [
        s.summary for s in case.trace]


def test_a_rejected_draft_shows_its_versions_side_by_side(
    demo_db_path: Path, mediavault_home: Path
) -> None:
    context = Context(home=mediavault_home, db=str(demo_db_path), chat_model=revising_model())
    triage_email(INBOX["msg-009"], context=context)
    reject_draft("msg-009", reason="tone", message="Warmer,\nand name the film",
                 reviewer="ana", context=context)
    case = show_case("msg-009", context)
    first, second = case.draft_history
    assert (first.version, second.version) == (1, 2)
    assert first.decisions == ("reject by ana (tone): Warmer, and name the film",)
    assert APOLOGY not in first.text and APOLOGY in second.text
    shown = runner.invoke(app, ["review", "show", "msg-009"],
                          env={"MEDIAVAULT_DB": str(context.db)})
    assert shown.exit_code == 0, shown.output
    assert "Draft versions (2), oldest first" in shown.stdout
    header = next(line for line in shown.stdout.splitlines() if "v1 (model)" in line)
    assert "v2 (model)" in header  # one column per version, on the same lines
    both = next(line for line in shown.stdout.splitlines()
                if "Thank you for writing" in line and "│" in line)
    assert both.count("Thank you for writing") == 2
    # A reason written on two lines reads as one line, never as an escape code.
    assert "Warmer, and name the film" in shown.stdout
    assert "\\x0a" not in shown.stdout

"""`mediavault demo` tells the story: the first email's trace, then the same email with the
overconfident demonstration model whose reply the gate refuses, then a closing line.

The demo runs once per module, from a folder that is not the checkout, on an empty state
directory: it builds its own database for the sample inbox's business date.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediavault.agent.mail.sample_inbox import SAMPLE_INBOX, sample_inbox_business_date
from mediavault.agent.ops.case_trace import case_trace
from mediavault.agent.stores.audit import read_events
from mediavault.cli import app
from mediavault.graph.approval_gate import MUST_ESCALATE
from mediavault.graph.context import Context

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DENIAL = f"not run: {MUST_ESCALATE} (legal_threat)"

runner = CliRunner()


@dataclass(frozen=True)
class DemoRun:
    home: Path
    first: str
    second: str
    audit_lines_after_first: int
    audit_lines_after_second: int


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    root = tmp_path_factory.mktemp("demo-story")
    home = root / "home"
    elsewhere = root / "some-other-folder"
    elsewhere.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        import os

        for name in list(os.environ):
            if name.startswith("MEDIAVAULT_"):
                patch.delenv(name)
        patch.setenv("MEDIAVAULT_HOME", str(home))
        patch.chdir(elsewhere)  # no examples/ folder here: the inbox comes from the package
        first = runner.invoke(app, ["demo"])
        assert first.exit_code == 0, first.output
        lines_first = len((home / "demonstration" / "audit.jsonl").read_text().splitlines())
        second = runner.invoke(app, ["demo"])
        assert second.exit_code == 0, second.output
        assert "business date is" not in second.stderr  # built for the inbox's own day
        lines_second = len((home / "demonstration" / "audit.jsonl").read_text().splitlines())
        yield DemoRun(home, first.stdout, second.stdout, lines_first, lines_second)


def _section(output: str, title: str) -> str:
    start = output.index(title)
    end = output.find("── ", start + len(title) + 3)
    return output[start: end if end != -1 else None]


def _step_lines(section: str) -> list[str]:
    return [line for line in section.splitlines() if re.match(r"\s*\d+  ", line)]


def _tool_step(steps: list[str], tool: str) -> int:
    """The index of the step that is a call of ``tool`` (not a model proposing it)."""
    return next(i for i, line in enumerate(steps) if line.split()[1] == tool)


def test_the_demo_runs_from_any_folder_and_builds_for_the_inbox_business_date(
    demo: DemoRun,
) -> None:
    assert "(business date 2026-03-02)" in demo.first
    with closing(sqlite3.connect(demo.home / "sakila_demo.sqlite")) as db:
        stamped = db.execute("PRAGMA user_version").fetchone()[0]
    assert str(stamped) == "20260302"
    # The ticket's facts are dated before the email arrived (1 March 2026), never after.
    with closing(sqlite3.connect(demo.home / "cases.sqlite")) as db:
        ticket = json.loads(db.execute(
            "SELECT ticket FROM tickets WHERE email_id = 'msg-001'").fetchone()[0])
    months = re.findall(r"(January|February|March|April|May|June|July|August|September|"
                        r"October|November|December) \d+, (\d{4})", ticket["investigation_summary"])
    assert months, ticket["investigation_summary"]
    assert all(year in ("2025", "2026") and not (year == "2026" and month not in
               ("January", "February", "March")) for month, year in months)


def test_the_first_trace_shows_each_step_of_the_legal_threat(demo: DemoRun) -> None:
    section = _section(demo.first, "What the agent did with msg-001, step by step")
    steps = _step_lines(section)
    names = [line.split()[1] for line in steps]
    assert names[:2] == ["email", "safety"]
    assert 'legal_threat ("sue"' in steps[1] and "must be escalated to tier2_legal" in steps[1]
    # Every tool call with its verdict and a one-line result, then decision, ticket, outcome.
    sql = steps[_tool_step(steps, "run_sql_query")]
    assert re.search(r"allow  \d+ rows: SELECT", sql)
    assert any("get_policy_context" in line and "policy sections:" in line for line in steps)
    decision = next(i for i, line in enumerate(steps) if line.split()[1] == "decision")
    ticket = _tool_step(steps, "create_escalation_ticket")
    assert decision < ticket
    assert "escalate, legal_threat, queue tier2_legal" in steps[decision]
    assert "filed for tier2_legal" in steps[ticket]
    assert steps[-1].split()[1:] == ["outcome", "escalated", "to", "tier2_legal"]
    assert " deny " not in section  # the rules model never proposes what the gate refuses


def test_the_demonstration_shows_the_gate_refusing_the_reply(demo: DemoRun) -> None:
    section = _section(demo.first, "The same email with an overconfident model")
    assert "demonstration model (scripted, overconfident; not a language model)" in section
    steps = _step_lines(section)
    denied = _tool_step(steps, "draft_customer_email")
    assert steps[denied].split()[2] == "deny"
    assert steps[denied].rstrip().endswith(DENIAL)
    investigated = [_tool_step(steps, "run_sql_query"), _tool_step(steps, "get_policy_context")]
    assert max(investigated) < denied  # it investigated first
    ticket = _tool_step(steps, "create_escalation_ticket")
    assert ticket > denied and "allow" in steps[ticket] and "tier2_legal" in steps[ticket]
    assert steps[-1].endswith("escalated to tier2_legal")
    # What the model wanted to send is shown under the denial.
    assert "the refused reply said: GLASS FRONTIER was rented on" in section


def test_the_closing_line_counts_the_whole_demo(demo: DemoRun) -> None:
    last = demo.first.strip().splitlines()[-1]
    assert last == ("Sample inbox: 11 emails drafted for review, 5 escalated, the gate refused "
                    "0 calls. Demonstration: the gate refused 1 call and the email was "
                    "escalated. No reply was sent unreviewed.")


def test_the_demonstration_stays_apart_from_the_real_outcomes(demo: DemoRun) -> None:
    real = case_trace("msg-001", Context(home=demo.home))
    staged = case_trace("msg-001", Context(home=demo.home / "demonstration"))
    assert real.gate_denials == 0 and staged.gate_denials == 1
    real_events = read_events(demo.home / "audit.jsonl", email_id="msg-001")
    assert not any(e.details.get("tool") == "draft_customer_email" for e in real_events)
    with closing(sqlite3.connect(demo.home / "demonstration" / "cases.sqlite")) as db:
        assert db.execute("SELECT email_id, status, queue FROM cases").fetchall() == [
            ("msg-001", "escalated", "tier2_legal")]
    # The demonstration home reads the real demo database; it has no copy of its own.
    assert not (demo.home / "demonstration" / "sakila_demo.sqlite").exists()


def test_a_second_demo_repeats_nothing_and_tells_the_same_story(demo: DemoRun) -> None:
    assert demo.audit_lines_after_second == demo.audit_lines_after_first

    def story(output: str) -> list[str]:
        start = output.index("── What the agent did")
        # Model call durations differ from run to run; recorded runs keep their own.
        return [re.sub(r"\d+ ms\)", "N ms)", line) for line in output[start:].splitlines()]

    assert story(demo.second) == story(demo.first)


def test_the_readme_excerpt_is_the_demo_output(demo: DemoRun) -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- demo-excerpt:start -->\s*```text\n(.*?)```", text, re.S)
    assert block, "the README's demo excerpt is missing"
    # The excerpt sits on the README's first screen.
    assert text.index("<!-- demo-excerpt:start -->") < text.index("\n## Two commands")
    output = demo.first.splitlines()
    position = 0
    for line in block.group(1).splitlines():
        if not line.strip():
            continue
        cut = line[:-1].rstrip() if line.endswith("…") else None
        for index in range(position, len(output)):
            if output[index] == line or (cut and output[index].startswith(cut)):
                position = index + 1
                break
        else:
            pytest.fail(f"README excerpt line not in the demo's output (in order): {line!r}")


def test_cases_trace_prints_and_lists_the_same_steps(demo: DemoRun) -> None:
    home = str(demo.home / "demonstration")
    printed = runner.invoke(app, ["cases", "trace", "msg-001", "--home", home])
    assert printed.exit_code == 0, printed.output
    assert DENIAL in printed.stdout
    listed = runner.invoke(app, ["cases", "trace", "msg-001", "--home", home, "--json"])
    assert listed.exit_code == 0, listed.output
    trace = json.loads(listed.stdout)
    assert trace["gate_denials"] == 1
    kinds = [step["kind"] for step in trace["steps"]]
    assert kinds[:2] == ["email", "safety_check"] and kinds[-1] == "outcome"
    denied = next(s for s in trace["steps"] if s["verdict"] == "deny")
    assert denied["tool"] == "draft_customer_email" and denied["phase"] == "investigate"
    assert denied["reason"] == f"{MUST_ESCALATE} (legal_threat)"
    sql = next(s for s in trace["steps"] if s["tool"] == "run_sql_query")
    assert sql["detail"].startswith("SELECT") and sql["verdict"] == "allow"
    assert [s["number"] for s in trace["steps"]] == list(range(1, len(trace["steps"]) + 1))
    # The printed steps are the listed ones, in the same order.
    printed_steps = _step_lines(printed.stdout)
    assert len(printed_steps) == len(trace["steps"])


def test_cases_trace_of_a_drafted_email_and_of_an_unknown_one(demo: DemoRun) -> None:
    drafted = runner.invoke(app, ["cases", "trace", "msg-006", "--home", str(demo.home),
                                  "--json"])
    steps = json.loads(drafted.stdout)["steps"]
    assert steps[-1]["tool"] == "draft_customer_email"
    assert steps[-1]["summary"] == "draft v1 written, valid: waits for a reviewer"
    unknown = runner.invoke(app, ["cases", "trace", "msg-999", "--home", str(demo.home)])
    assert unknown.exit_code == 2 and "no case for email 'msg-999'" in unknown.stderr


def test_a_trace_survives_an_unreadable_audit_log(demo: DemoRun, tmp_path: Path) -> None:
    import shutil

    home = tmp_path / "copy"
    shutil.copytree(demo.home / "demonstration", home)
    with (home / "audit.jsonl").open("a") as log:
        log.write("this is not an audit event\n")
    trace = case_trace("msg-001", Context(home=home, db=str(demo.home / "sakila_demo.sqlite")))
    assert trace.audit_problem and "not an audit event" in trace.audit_problem
    denied = [s for s in trace.steps if s.verdict == "deny"]
    assert len(denied) == 1 and denied[0].reason == f"{MUST_ESCALATE} (legal_threat)"
    assert trace.steps[-1].kind == "decision"


def test_the_sample_inbox_ships_in_the_package() -> None:
    assert SAMPLE_INBOX.is_file() and SAMPLE_INBOX.parent.name == "mail"
    assert (REPO / "examples" / "inbox.csv").resolve() == SAMPLE_INBOX.resolve()
    assert str(sample_inbox_business_date()) == "2026-03-02"


def test_demo_json_holds_the_outcomes_both_traces_and_the_counts(demo: DemoRun) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDIAVAULT_HOME", str(demo.home))
        listed = runner.invoke(app, ["demo", "--json"])
    assert listed.exit_code == 0, listed.output
    document = json.loads(listed.stdout)
    assert len(document["emails"]) == 16
    assert document["trace"]["email_id"] == "msg-001" and document["trace"]["gate_denials"] == 0
    staged = document["demonstration"]
    assert staged["trace"]["gate_denials"] == 1
    assert staged["counts"] == {"drafted": 0, "escalated": 1, "failed": 0, "gate_refusals": 1,
                                "unreviewed_replies": 0}
    assert document["counts"]["drafted"] == 11 and document["counts"]["escalated"] == 5
    assert document["closing"] == demo.first.strip().splitlines()[-1]


def test_a_demo_database_built_for_another_day_is_pointed_out(
    demo: DemoRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mediavault.tools.business_db.demo_database import build_demo_database

    for name in [n for n in __import__("os").environ if n.startswith("MEDIAVAULT_")]:
        monkeypatch.delenv(name)
    home = tmp_path / "old-home"
    home.mkdir()
    from datetime import date

    build_demo_database(home / "sakila_demo.sqlite", as_of=date(2026, 12, 5))
    result = runner.invoke(app, ["demo", "--home", str(home), "--no-trace"])
    assert result.exit_code == 0, result.output
    assert ("the demo database's business date is 2026-12-05, but the inbox is worked on "
            "2026-03-02") in " ".join(result.stderr.split())
    assert "What the agent did" not in result.stdout  # --no-trace: the outcomes only


def test_the_demonstration_model_is_deterministic(demo: DemoRun, tmp_path: Path) -> None:
    from mediavault.agent.mail.csv_inbox import read_inbox_csv
    from mediavault.agent.ops.demonstration import run_demonstration

    first = read_inbox_csv(SAMPLE_INBOX).emails[0]
    db = str(demo.home / "sakila_demo.sqlite")
    runs = [run_demonstration(first, Context(home=tmp_path / name, db=db))
            for name in ("one", "two")]
    assert runs[0].gate_log == runs[1].gate_log
    assert [(r["tool"], r["verdict"]) for r in runs[0].gate_log] == [
        ("get_current_date", "allow"), ("run_sql_query", "allow"),
        ("get_policy_context", "allow"), ("draft_customer_email", "deny"),
        ("create_escalation_ticket", "allow")]
    assert (runs[0].status, runs[0].queue) == ("escalated", "tier2_legal")
    summaries = [[step.summary for step in case_trace(
        "msg-001", Context(home=tmp_path / name / "demonstration", db=db)).steps
        if step.kind != "model_call"] for name in ("one", "two")]
    assert summaries[0] == summaries[1]

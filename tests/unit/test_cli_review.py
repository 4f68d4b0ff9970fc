"""`mediavault review ...`: the review queue from a terminal, its output and exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mediavault.agent.api import triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.stores.case_store import CaseStore
from mediavault.cli import app
from mediavault.graph.context import Context

REPO = Path(__file__).resolve().parents[2]
INBOX = read_inbox_csv(REPO / "examples" / "inbox.csv").emails


@pytest.fixture
def context(
    demo_db_path: Path, mediavault_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Context:
    monkeypatch.setenv("MEDIAVAULT_DB", str(demo_db_path))
    context = Context(home=mediavault_home, db=str(demo_db_path))
    for email in INBOX:
        if email.email_id in ("msg-001", "msg-003", "msg-006", "msg-009"):
            triage_email(email, context=context)
    return context


def run(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(app, list(args), input=input)
    # Whatever happens, the operator never sees a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _case(context: Context, email_id: str) -> object:
    case = CaseStore(context.cases_path).get_case(email_id)
    assert case is not None
    return case


def _status(context: Context, email_id: str) -> str:
    case = CaseStore(context.cases_path).get_case(email_id)
    assert case is not None
    return case.status


def _draft(context: Context, email_id: str) -> str:
    case = CaseStore(context.cases_path).get_case(email_id)
    assert case is not None and case.latest_draft is not None
    return case.latest_draft.text


def _with_line(draft: str, line: str) -> str:
    return draft.replace("MediaVault Support Team", f"{line}\nMediaVault Support Team")


def test_list_shows_waiting_drafts_as_a_table_and_as_json(context: Context) -> None:
    table = run("review", "list")
    assert table.exit_code == 0
    assert "msg-003" in table.stdout and "msg-006" in table.stdout
    assert "msg-001" not in table.stdout  # escalated, nothing to review
    assert "3 waiting" in table.stdout
    listed = json.loads(run("review", "list", "--json").stdout)
    assert [item["email_id"] for item in listed] == ["msg-003", "msg-006", "msg-009"]
    assert listed[1]["reason_code"] == "rental_status"


def test_list_on_an_empty_home_says_so(mediavault_home: Path) -> None:
    result = run("review", "list")
    assert result.exit_code == 0 and "No drafts wait for review." in result.stdout


def test_show_prints_the_email_evidence_gate_verdicts_draft_and_trail(context: Context) -> None:
    data = json.loads(run("review", "show", "msg-006", "--json").stdout)
    rows = [item["row_count"] for item in data["evidence"] if item["sql"]]
    assert rows and all(isinstance(n, int) for n in rows)
    assert data["draft"]["to"] == "sofia.marchetti@example.com"
    assert data["policy_citations"]
    result = run("review", "show", "msg-006")
    assert result.exit_code == 0
    out = result.stdout
    assert "When is Velvet Compass due back?" in out
    assert "customer: #163 SOFIA MARCHETTI" in out
    assert "run_sql_query" in out
    for citation in data["policy_citations"]:
        assert f"{citation['section_id']} ({citation['title']})" in out
    assert "draft_customer_email" in out and "allow" in out
    assert "Draft v1 of 1 (model, valid)" in out
    assert data["draft"]["text"].splitlines()[0] in out
    assert "review.decision" not in out and "email.received" in out


def test_show_of_an_unknown_case_is_one_error_line_and_exit_2(context: Context) -> None:
    result = run("review", "show", "msg-404")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: no case for email 'msg-404' in {context.home}"]


def test_approve_writes_the_outbox_and_a_second_approval_exits_1(context: Context) -> None:
    first = run("review", "approve", "msg-006", "--reviewer", "sam")
    assert first.exit_code == 0
    assert "msg-006 approved by sam; reply written to" in first.stdout
    assert len(list(context.outbox_path.glob("*.eml"))) == 1
    second = run("review", "approve", "msg-006", "--reviewer", "alex")
    assert second.exit_code == 1
    assert "already decided: approved by sam" in second.stderr
    assert len(list(context.outbox_path.glob("*.eml"))) == 1


def test_approve_without_reviewer_records_the_os_user(
    context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "opsdesk")
    result = run("review", "approve", "msg-006", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["reviewer"] == "opsdesk"


def test_an_edit_refused_by_dlp_exits_1_with_reasons_and_keeps_the_review_open(
    context: Context,
) -> None:
    original = _draft(context, "msg-003")
    text = _with_line(original, "Questions? Mail brenda.castillo@example.com or call 555-201-7788.")
    result = run("review", "edit", "msg-003", "--text", text, "--reviewer", "ana")
    assert result.exit_code == 1
    assert "refused and the review stays open" in result.stderr
    assert "dlp_email" in result.stderr and "dlp_phone" in result.stderr
    assert _status(context, "msg-003") == "awaiting_review"
    assert _draft(context, "msg-003") == original
    assert "last edit refused: dlp_email" in run("review", "show", "msg-003").stdout


def test_an_edit_from_a_file_is_accepted_and_sent(context: Context, tmp_path: Path) -> None:
    reply = tmp_path / "reply.txt"
    reply.write_text(_with_line(_draft(context, "msg-003"), "Enjoy your next film!"),
                     encoding="utf-8")
    result = run("review", "edit", "msg-003", "--file", str(reply), "--reviewer", "ana")
    assert result.exit_code == 0, result.output
    assert "edited (22 characters changed) and approved by ana" in result.stdout
    (sent,) = context.outbox_path.glob("*.eml")
    assert "Enjoy your next film!" in sent.read_text()


def test_an_edit_from_stdin_is_accepted(context: Context) -> None:
    text = _with_line(_draft(context, "msg-003"), "See you soon!")
    result = run("review", "edit", "msg-003", "--file", "-", "--reviewer", "ana", input=text)
    assert result.exit_code == 0, result.output
    assert _status(context, "msg-003") == "approved"


def _editor(tmp_path: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    program = tmp_path / "editor.py"
    program.write_text(script, encoding="utf-8")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {program}")
    monkeypatch.delenv("VISUAL", raising=False)


def test_without_text_or_file_the_draft_opens_in_the_editor(
    context: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _editor(tmp_path, (
        "import pathlib, sys\n"
        "path = pathlib.Path(sys.argv[1])\n"
        "text = path.read_text()\n"
        "assert 'MediaVault Support Team' in text  # the editor starts from the draft\n"
        "path.write_text(text.replace('MediaVault Support Team',\n"
        "                'Written in my editor.\\nMediaVault Support Team'))\n"
    ), monkeypatch)
    result = run("review", "edit", "msg-003", "--reviewer", "ana")
    assert result.exit_code == 0, result.output
    (sent,) = context.outbox_path.glob("*.eml")
    assert "Written in my editor." in sent.read_text()


def test_closing_the_editor_without_saving_changes_nothing(
    context: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _editor(tmp_path, "pass\n", monkeypatch)
    result = run("review", "edit", "msg-003", "--reviewer", "ana")
    assert result.exit_code == 1
    assert "closed without saving" in result.stderr
    assert _status(context, "msg-003") == "awaiting_review"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--text", "x", "--file", "reply.txt"], "either --text or --file"),
        (["--file", "missing.txt"], "cannot read missing.txt"),
        (["--file", "latin1.txt"], "latin1.txt is not UTF-8 text"),
    ],
)
def test_bad_edit_input_exits_2(
    context: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 MediaVault Support Team".encode("latin-1"))
    result = run("review", "edit", "msg-003", *extra)
    assert result.exit_code == 2
    assert message in result.stderr
    assert _status(context, "msg-003") == "awaiting_review"


def test_reject_sends_the_draft_back_then_closes_it(context: Context) -> None:
    first = run("review", "reject", "msg-009", "--reason", "tone", "--message", "Warmer",
                "--reviewer", "ana")
    assert first.exit_code == 0 and "waits for review again" in first.stdout
    second = run("review", "reject", "msg-009", "--reason", "policy", "--message", "No",
                 "--reviewer", "ana", "--json")
    assert second.exit_code == 0
    assert json.loads(second.stdout)["status"] == "rejected"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reason", "rude", "--message", "m"], "not one of tone, factual, policy, other"),
        (["--reason", "tone"], "Missing option '--message'"),
    ],
)
def test_a_bad_rejection_exits_2(context: Context, args: list[str], message: str) -> None:
    result = run("review", "reject", "msg-009", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert _status(context, "msg-009") == "awaiting_review"


def test_escalate_files_a_ticket_and_an_unknown_queue_exits_2(context: Context) -> None:
    bad = run("review", "escalate", "msg-003", "--queue", "press")
    assert bad.exit_code == 2 and "unknown queue 'press'" in bad.stderr
    good = run("review", "escalate", "msg-003", "--queue", "communications", "--message",
               "A journalist", "--reviewer", "ana", "--json")
    assert good.exit_code == 0
    outcome = json.loads(good.stdout)
    assert outcome["status"] == "escalated" and outcome["queue"] == "communications"
    assert outcome["ticket_id"]


def test_a_stale_draft_version_exits_1(context: Context) -> None:
    result = run("review", "approve", "msg-006", "--draft-version", "3")
    assert result.exit_code == 1 and "not the version 3 you read" in result.stderr
    assert _status(context, "msg-006") == "awaiting_review"


def test_a_reviewer_name_with_a_line_break_exits_2(context: Context) -> None:
    result = run("review", "approve", "msg-006", "--reviewer", "sam\nactor: admin")
    assert result.exit_code == 2 and "control characters" in result.stderr


def test_hostile_email_text_cannot_restyle_the_terminal(context: Context) -> None:
    hostile = {
        "email_id": "hostile-1",
        "received_at": "2026-03-01T12:00:00Z",
        "from": "Sofia Marchetti <sofia.marchetti@example.com>",
        "subject": "Due date? [bold red]URGENT[/bold red]",
        "body": "When is my film due?\x1b[2J\x1b]0;owned\x07 [link=https://evil.example]x[/link]",
    }
    triage_email(hostile, context=context)
    result = run("cases", "show", "hostile-1")
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "[bold red]URGENT[/bold red]" in result.stdout  # shown as typed, not as markup
    assert "\\x1b[2J" in result.stdout


def test_without_an_editor_or_a_terminal_edit_asks_for_text(
    context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.delenv("VISUAL", raising=False)
    result = run("review", "edit", "msg-003")  # the test runner's stdin is not a terminal
    assert result.exit_code == 2
    assert "no editor: set $EDITOR, or pass --text or --file" in result.stderr

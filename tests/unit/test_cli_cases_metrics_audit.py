"""`mediavault cases`, `metrics`, `audit verify` and `studio` on hand-built stores and logs.

The case store here is written directly (no graph), so every number below is counted by hand.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from mediavault.agent.stores.audit import AuditLog
from mediavault.agent.stores.case_store import CaseStore
from mediavault.cli import app
from mediavault.graph.inbound_email import InboundEmail

KEY = "k" * 32


def run(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def at(day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def _add(
    store: CaseStore,
    clock: list[datetime],
    email_id: str,
    received: datetime,
    *,
    status: str,
    reason_code: str,
    queue: str | None = None,
    reviews: tuple[tuple[str, str | None, int | None], ...] = (),
    subject: str = "A question",
) -> None:
    clock[0] = received
    email = InboundEmail.from_fields(email_id=email_id, received_at=received,
                                     **{"from": f"{email_id}@customers.example.com"},
                                     subject=subject, body="Hello, a question about my account.")
    store.record_email(email)
    store.open_case(email_id, thread_id=f"thread-{email_id}", sender=email.sender,
                    customer_id=None, received_at=received)
    route = "escalate" if status == "escalated" else "draft"
    if route == "draft":
        store.record_draft(email_id, text="Hello\nMediaVault Support Team", source="model",
                           valid=True, problems=[], policy_refs=["late-fees"])
    for index, (decision, category, size) in enumerate(reviews):
        store.record_review(f"{email_id}:{index}", email_id, decision=decision, reviewer="ana",
                            reason_category=category, edit_size=size,
                            at=received + timedelta(minutes=10 * (index + 1)))
    store.set_outcome(email_id, route=route, reason_code=reason_code, risk_flags=[],
                      status=status, queue=queue)


@pytest.fixture
def store(mediavault_home: Path) -> CaseStore:
    clock = [at(1)]
    store = CaseStore(mediavault_home / "cases.sqlite", now=lambda: clock[0])
    _add(store, clock, "a-approved", at(1, 9), status="approved", reason_code="rental_status",
         reviews=(("approve", None, None),))
    _add(store, clock, "b-edited", at(1, 10), status="approved", reason_code="rental_status",
         reviews=(("edit", None, 12),))
    _add(store, clock, "c-tone", at(2, 9), status="rejected", reason_code="catalog_question",
         reviews=(("reject", "tone", None), ("reject", "tone", None)))
    _add(store, clock, "d-billing", at(2, 11), status="escalated", reason_code="refund_request",
         queue="billing")
    _add(store, clock, "e-waiting", at(3, 9), status="awaiting_review",
         reason_code="praise", subject="Thanks [bold]team[/bold]")
    _add(store, clock, "f-april", datetime(2026, 4, 2, 9, tzinfo=UTC), status="escalated",
         reason_code="legal_threat", queue="tier2_legal")
    return store


# ----------------------------------------------------------------------------------- cases


def test_cases_list_filters_by_status_and_window(store: CaseStore) -> None:
    everything = json.loads(run("cases", "list", "--json").stdout)
    assert [c["email_id"] for c in everything] == [
        "a-approved", "b-edited", "c-tone", "d-billing", "e-waiting", "f-april"]
    escalated = json.loads(run("cases", "list", "--status", "escalated", "--json").stdout)
    assert [(c["email_id"], c["queue"]) for c in escalated] == [
        ("d-billing", "billing"), ("f-april", "tier2_legal")]
    # --until names the last day included.
    march_2 = json.loads(run("cases", "list", "--since", "2026-03-02", "--until", "2026-03-02",
                             "--json").stdout)
    assert [c["email_id"] for c in march_2] == ["c-tone", "d-billing"]
    table = run("cases", "list", "--limit", "2")
    assert table.exit_code == 0 and "a-approved" in table.stdout and "c-tone" not in table.stdout
    assert "2 cases" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--status", "done"], "--status 'done' is not one of"),
     (["--since", "March"], "--since: 'March' is not a date"),
     (["--since", "2026-03-05", "--until", "2026-03-01"], "--until must be after --since")],
)
def test_cases_list_rejects_bad_filters(store: CaseStore, args: list[str], message: str) -> None:
    result = run("cases", "list", *args)
    assert result.exit_code == 2 and message in result.stderr


def test_commands_on_a_home_without_cases_exit_2_and_create_nothing(tmp_path: Path) -> None:
    home = tmp_path / "nowhere"
    for args in (["cases", "list"], ["metrics"], ["cases", "show", "x"]):
        result = run(*args, "--home", str(home))
        assert result.exit_code == 2, args
        assert result.stderr.startswith("error: no case"), result.stderr
    assert not home.exists()


def test_cases_show_works_from_the_store_alone(store: CaseStore) -> None:
    result = run("cases", "show", "c-tone")
    assert result.exit_code == 0
    assert "Case c-tone: rejected, route draft, catalog_question" in result.stdout
    assert "reject" in result.stdout and "tone" in result.stdout
    data = json.loads(run("cases", "show", "c-tone", "--json").stdout)
    assert [r["reason_category"] for r in data["reviews"]] == ["tone", "tone"]
    assert data["awaiting_review"] is False and data["gate_verdicts"] == []
    shown = run("cases", "show", "e-waiting").stdout
    assert "Thanks [bold]team[/bold]" in shown  # customer text is never read as markup


# --------------------------------------------------------------------------------- metrics


def test_metrics_json_matches_the_hand_counted_numbers(store: CaseStore) -> None:
    result = run("metrics", "--since", "2026-03-01", "--until", "2026-03-31", "--json")
    assert result.exit_code == 0
    numbers = json.loads(result.stdout)["metrics"]
    assert numbers["emails"] == 5  # f-april is outside the window
    assert numbers["deflected"] == 1 and numbers["deflection_rate"] == pytest.approx(0.2)
    assert numbers["escalations_by_queue"] == {"billing": 1}
    assert numbers["reviewed_drafts"] == 4  # approve, edit, two rejections
    assert numbers["tone_rejections"] == 2 and numbers["tone_rejection_rate"] == 0.5
    assert numbers["edits"] == 1 and numbers["mean_edit_size"] == 12
    assert numbers["mean_seconds_to_review"] == 600
    assert set(numbers["by_reason_code"]) == {
        "catalog_question", "praise", "refund_request", "rental_status"}
    eligibility = {row["reason_code"]: row for row in json.loads(result.stdout)["auto_approval"]}
    assert eligibility["rental_status"]["eligible"] is False
    assert "fewer than the 50 required" in eligibility["rental_status"]["reason"]


def test_metrics_table_shows_the_three_pilot_numbers(store: CaseStore) -> None:
    result = run("metrics", "--until", "2026-03-31")
    assert result.exit_code == 0
    out = result.stdout
    assert re.search(r"deflection rate.*20\.0% \(1\)", out, re.S)
    assert re.search(r"tone-rejected drafts.*2 \(50\.0% of reviewed drafts\)", out, re.S)
    assert re.search(r"re-open rate \(7-day window\).*0\.0% \(0\)", out, re.S)
    assert "billing" in out


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_the_html_report_is_one_file_with_three_plots(store: CaseStore, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    result = run("metrics", "--since", "2026-03-01", "--until", "2026-03-31", "--html",
                 str(report))
    assert result.exit_code == 0 and f"HTML report written to {report}" in result.stdout
    page = report.read_text(encoding="utf-8")
    images = _images(page)
    assert len(images) == 3 and all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in images)
    for alt in ("route mix", "escalations by queue", "review outcomes"):
        assert f'alt="{alt}"' in page
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    assert "<script" not in page and "<link" not in page
    assert "20.0% (1)" in page and "<td>billing</td><td>1</td>" in page


def test_the_html_report_without_matplotlib_is_a_clear_error(
    store: CaseStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now fails
    report = tmp_path / "report.html"
    result = run("metrics", "--html", str(report))
    assert result.exit_code == 2
    assert "the HTML report needs matplotlib" in result.stderr
    assert not report.exists()


def test_metrics_with_an_empty_window_still_draws_a_report(
    store: CaseStore, tmp_path: Path
) -> None:
    report = tmp_path / "empty.html"
    result = run("metrics", "--since", "2025-01-01", "--until", "2025-01-31", "--html",
                 str(report), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["metrics"]["emails"] == 0
    assert len(_images(report.read_text())) == 3


# ----------------------------------------------------------------------------------- audit


def _log(home: Path, key: bytes | None = None) -> Path:
    log = AuditLog(home / "audit.jsonl", key=key)
    for number in range(1, 5):
        log.append("gate.verdict", outcome="success", email_id=f"e-{number}", actor="gate",
                   details={"tool": "run_sql_query", "verdict": "allow"})
    return home / "audit.jsonl"


def test_audit_verify_passes_an_intact_log(mediavault_home: Path) -> None:
    _log(mediavault_home)
    result = run("audit", "verify")
    assert result.exit_code == 0
    assert "audit log OK: 4 lines, chain intact" in result.stdout
    assert "no key given" in result.stderr  # without a key, say what cannot be detected


def test_audit_verify_prints_the_first_broken_line_and_exits_1(mediavault_home: Path) -> None:
    path = _log(mediavault_home)
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"e-3"', '"e-9"')
    path.write_text("".join(lines))
    result = run("audit", "verify")
    assert result.exit_code == 1
    assert "audit log BROKEN at line 3" in result.stdout
    assert 'line 3: {' in result.stdout and '"e-9"' in result.stdout
    verdict = json.loads(run("audit", "verify", "--json").stdout)
    assert verdict["ok"] is False and verdict["first_broken_line"] == 3
    assert '"e-9"' in verdict["broken_line_text"]


def test_with_the_key_a_truncated_tail_is_detected(
    mediavault_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _log(mediavault_home, key=KEY.encode())
    monkeypatch.setenv("MEDIAVAULT_AUDIT_KEY", KEY)
    assert run("audit", "verify").exit_code == 0
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:3]))
    result = run("audit", "verify", "--log", str(path))
    assert result.exit_code == 1 and "BROKEN" in result.stdout


@pytest.mark.parametrize(
    ("key", "message"),
    [("short", "MEDIAVAULT_AUDIT_KEY is 5 bytes long"), (None, "no audit log at")],
)
def test_audit_verify_cannot_run_exits_2(
    mediavault_home: Path, monkeypatch: pytest.MonkeyPatch, key: str | None, message: str
) -> None:
    if key is not None:
        _log(mediavault_home)
        monkeypatch.setenv("MEDIAVAULT_AUDIT_KEY", key)
    result = run("audit", "verify")
    assert result.exit_code == 2 and message in result.stderr


# ---------------------------------------------------------------------------------- studio


def test_studio_without_langgraph_cli_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, mediavault_home: Path
) -> None:
    monkeypatch.setattr("mediavault.agent.cli.studio.find_langgraph_cli", lambda: None)
    result = run("studio")
    assert result.exit_code == 2
    assert "needs langgraph-cli" in result.stderr and "pip install -e '.[dev]'" in result.stderr


def test_studio_starts_langgraph_dev_without_a_browser_on_a_free_port(
    monkeypatch: pytest.MonkeyPatch, mediavault_home: Path
) -> None:
    launched: dict[str, Any] = {}

    def fake_serve(command: list[str], **options: Any) -> int:
        launched.update(command=command, **options)
        return 0

    monkeypatch.setattr(
        "mediavault.agent.cli.studio.find_langgraph_cli", lambda: "/opt/bin/langgraph"
    )
    # tests/unit/test_studio_stop.py runs a stand-in server and stops it with signals.
    monkeypatch.setattr("mediavault.agent.cli.studio.serve_until_stopped", fake_serve)
    result = run("studio", "--model", "rules")
    assert result.exit_code == 0, result.output
    command = launched["command"]
    assert command[:3] == ["/opt/bin/langgraph", "dev", "--no-browser"]
    assert command[command.index("--host") + 1] == "127.0.0.1"
    config = Path(command[command.index("--config") + 1])
    assert config.name == "langgraph.json" and config.is_file()
    port = int(command[command.index("--port") + 1])
    with socket.socket() as probe:  # the port it chose is one nobody holds
        probe.bind(("127.0.0.1", port))
    assert f"http://127.0.0.1:{port}" in result.stdout
    assert launched["env"]["MEDIAVAULT_HOME"] == str(mediavault_home.resolve())
    assert launched["cwd"] == config.parent


def test_studio_picks_another_port_when_the_usual_one_is_taken() -> None:
    from mediavault.agent.cli.studio import free_port

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        chosen = free_port("127.0.0.1", preferred=taken)
    assert chosen != taken and chosen > 0

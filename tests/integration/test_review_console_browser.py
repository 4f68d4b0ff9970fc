"""The review console end to end in headless Chromium: a reviewer's whole session.

Debian's chromium package (``make browser`` installs it) driven by Playwright for Python;
nothing downloads a browser of its own. The app runs under uvicorn on a free local port.
Skipped locally when chromium or Playwright is missing; a failure when CI=true.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediavault.agent.api import triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.stores.case_store import CaseStore
from mediavault.agent.web import ConsoleSettings, create_app
from mediavault.agent.web.accounts import add_reviewer
from mediavault.graph.context import Context

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
#: Screenshots land here (git-ignored) so a CI run leaves them for people to look at.
ARTIFACTS = Path(os.environ.get("MEDIAVAULT_TEST_ARTIFACTS", REPO / "test-artifacts"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "alice-reviews-drafts"
SCRIPT = "<script>alert(1)</script>"
SAMPLE_IDS = ("msg-003", "msg-006", "msg-007", "msg-009")


def _require_browser() -> None:
    problems = []
    if not CHROMIUM.exists():
        problems.append(f"{CHROMIUM} is missing (run `make browser` as root)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the playwright package is missing (pip install -e '.[dev]')")
    if not problems:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("browser test cannot run: " + "; ".join(problems))
    pytest.skip("; ".join(problems))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def console_url(demo_db_path: Path, mediavault_home: Path) -> Iterator[tuple[str, Context]]:
    """A seeded home served by uvicorn in a thread; stopped after the test."""
    _require_browser()
    import uvicorn

    context = Context(home=mediavault_home, db=str(demo_db_path))
    for email in read_inbox_csv(REPO / "examples" / "inbox.csv").emails:
        if email.email_id in SAMPLE_IDS:
            triage_email(email, context=context)
    triage_email(
        {
            "email_id": "xss-1",
            "received_at": "2026-03-01T23:00:00Z",
            "from": "Sofia Marchetti <sofia.marchetti@example.com>",
            "subject": "When is my film due?",
            "body": f"Hi, when is my rental due back? {SCRIPT}\nThanks, Sofia",
        },
        context=context,
    )
    add_reviewer(mediavault_home / "reviewers.json", "alice", PASSWORD)
    settings = ConsoleSettings(
        context=context, reviewers_path=mediavault_home / "reviewers.json", secret_key="k" * 48
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            ws="none",
            http="h11",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", context
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_a_reviewer_works_through_the_queue_in_chromium(
    console_url: tuple[str, Context], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, context = console_url
    store = CaseStore(context.cases_path)
    waiting = [case.email_id for case in store.pending_reviews()]
    assert set(SAMPLE_IDS) <= set(waiting), f"the sample drafts should wait for review: {waiting}"
    dialogs: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "chromium-profile"),  # fresh for every run
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = browser.new_page()
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

            # Not signed in: the queue sends us to the sign-in form.
            page.goto(f"{url}/queue")
            expect(page).to_have_url(f"{url}/login?next=%2Fqueue")
            page.fill("#username", "alice")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{url}/queue")
            expect(page.get_by_test_id("queue-count")).to_contain_text(
                f"{len(waiting)} drafts waiting"
            )
            expect(page.locator("tr[data-email-id]")).to_have_count(len(waiting))

            # Search the queue by sender and by subject.
            page.fill("input[name=search]", "GRACE.kim@")
            page.click("text=Filter")
            expect(page.locator("tr[data-email-id]")).to_have_count(1)
            expect(page.locator("tr[data-email-id='msg-009']")).to_be_visible()
            page.goto(f"{url}/queue?search=stock")
            expect(page.locator("tr[data-email-id='msg-009']")).to_be_visible()
            page.goto(f"{url}/queue")

            # Approve a draft from the queue: the next waiting draft opens.
            page.click("tr[data-email-id='msg-003'] a")
            expect(page.get_by_test_id("case-status")).to_have_text("awaiting review")
            page.click("button.approve")
            expect(page.locator(".flash.ok")).to_contain_text("msg-003 approved by alice")
            expect(page).not_to_have_url(f"{url}/cases/msg-003")
            expect(page.get_by_test_id("case-status")).to_have_text("awaiting review")
            page.goto(f"{url}/cases/msg-003")
            expect(page.get_by_test_id("case-status")).to_have_text("approved")

            # Edit a draft to promise something: refused, reasons next to the kept text.
            page.goto(f"{url}/cases/msg-007")
            expect(page.get_by_test_id("evidence")).to_contain_text("my_rentals")
            # The rows the draft rests on and the run's steps, beside the draft.
            expect(page.get_by_test_id("query-rows").first).to_contain_text("rental_date")
            expect(page.get_by_test_id("trace")).to_contain_text("safety check")
            expect(page.get_by_test_id("trace")).to_contain_text("draft v1 written")
            page.screenshot(path=str(tmp_path / "case_page.png"), full_page=True)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "review_console_case.png"), full_page=True)
            page.click("text=Edit the reply")
            editor = page.locator("#edit-body")
            promise = "We guarantee a full refund of every fee."
            editor.fill(editor.input_value().replace("Kind regards", f"{promise}\n\nKind regards"))
            page.click("text=Save edit and approve")
            expect(page.get_by_test_id("edit-problems")).to_contain_text("guarantee")
            expect(page.locator("#edit-body")).to_have_value(re.compile(re.escape(promise)))
            expect(page.get_by_test_id("case-status")).to_have_text("awaiting review")
            page.screenshot(path=str(ARTIFACTS / "review_console_refused_edit.png"), full_page=True)

            # Reject one for tone: the metrics page counts it.
            page.goto(f"{url}/cases/msg-006")
            page.click("text=Reject the draft")
            page.select_option("#reject-reason", "tone")
            page.fill("#reject-message", "Too curt; greet the customer warmly.")
            page.click("button.reject")
            expect(page.locator(".flash.ok")).to_contain_text("rejected by alice (tone)")
            page.click("nav >> text=Metrics")
            expect(page.locator("[data-metric=tone_rejections]")).to_have_text("1")
            expect(page.locator("svg.chart").first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "review_console_metrics.png"), full_page=True)

            # Escalate one to a queue: it shows on the escalations page.
            page.goto(f"{url}/cases/msg-009")
            page.click("text=Escalate instead")
            page.select_option("#escalate-queue", "billing")
            page.fill("#escalate-message", "Stock question for the store manager.")
            page.click("button.escalate")
            expect(page.locator(".flash.ok")).to_contain_text("escalated by alice to billing")
            page.click("nav >> text=Escalations")
            expect(
                page.locator("section[data-queue=billing] tr[data-email-id='msg-009']")
            ).to_contain_text("Stock question for the store manager.")

            # An email carrying a script shows it as text, and nothing runs.
            page.goto(f"{url}/cases/xss-1")
            expect(page.get_by_test_id("email-body")).to_contain_text(SCRIPT)
            page.goto(f"{url}/audit")
            expect(page.get_by_test_id("audit-status")).to_contain_text("audit log OK")
        finally:
            browser.close()

    assert dialogs == []
    assert (tmp_path / "case_page.png").stat().st_size > 10_000
    decided = {cid: store.get_case(cid) for cid in SAMPLE_IDS}
    assert {cid: c.status for cid, c in decided.items() if c} == {
        "msg-003": "approved",
        "msg-006": "awaiting_review",
        "msg-007": "awaiting_review",
        "msg-009": "escalated",
    }
    assert all(r.reviewer == "alice" for c in decided.values() if c for r in c.reviews)


def test_mediavault_serve_runs_the_console_on_localhost(
    demo_db_path: Path, mediavault_home: Path
) -> None:
    import httpx

    add_reviewer(mediavault_home / "reviewers.json", "alice", PASSWORD)
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mediavault",
            "serve",
            "--port",
            str(port),
            "--db",
            str(demo_db_path),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                login = httpx.get(f"{base}/login", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the console did not start"
                time.sleep(0.1)
        assert login.status_code == 200 and "Sign in" in login.text
        assert "server" not in login.headers  # no software banner
        assert httpx.get(f"{base}/queue").status_code == 303
        reviews = httpx.get(f"{base}/api/reviews", auth=("alice", PASSWORD))
        assert reviews.status_code == 200 and reviews.json()["waiting"] == 0
        # The session secret was generated into the state directory, owner-only.
        assert (mediavault_home / "console_secret").stat().st_mode & 0o077 == 0
    finally:
        server.terminate()
        output = server.communicate(timeout=15)[0]
    assert f"Review console for {mediavault_home} at {base}/" in output

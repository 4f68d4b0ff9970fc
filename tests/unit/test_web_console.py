"""The review console over HTTP (FastAPI's TestClient): sign-in, CSRF, escaping, decisions."""

from __future__ import annotations

import base64
import json
import re
import runpy
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from markupsafe import escape

from mediavault.agent.api import triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.ops.review_desk import show_case
from mediavault.agent.stores.audit import read_events
from mediavault.agent.stores.case_store import CaseStore
from mediavault.agent.web import ConsoleSettings, api_routes, create_app, pages
from mediavault.agent.web.accounts import add_reviewer, remove_reviewer
from mediavault.agent.web.runtime import MAX_TRACKED_KEYS, SignInThrottle
from mediavault.graph.context import Context
from mediavault.tools.policy_retrieval import default_policy_library

REPO = Path(__file__).resolve().parents[2]
PASSWORDS = {"alice": "alice-reviews-drafts", "bob": "bob-reviews-drafts-too"}
SECRET = "s" * 48
SCRIPT = "<script>alert(1)</script>"
XSS_EMAIL = {
    "email_id": "xss-1",
    "received_at": "2026-03-01T23:00:00Z",
    "from": "Sofia Marchetti <sofia.marchetti@example.com>",
    "subject": "When is my film due?",
    "body": f"Hi, when is my rental due back? {SCRIPT}\nThanks, Sofia",
}


@pytest.fixture(scope="module")
def seeded_home(tmp_path_factory: pytest.TempPathFactory, demo_db_path: Path) -> Path:
    """The sample inbox (and one hostile email) triaged once with the offline model."""
    home = tmp_path_factory.mktemp("console-template")
    context = Context(home=home, db=str(demo_db_path))
    for email in read_inbox_csv(REPO / "examples" / "inbox.csv").emails:
        triage_email(email, context=context)
    triage_email(XSS_EMAIL, context=context)
    for name, password in PASSWORDS.items():
        add_reviewer(home / "reviewers.json", name, password)
    return home


@pytest.fixture
def context(seeded_home: Path, demo_db_path: Path, mediavault_home: Path) -> Context:
    home = mediavault_home / "console"
    shutil.copytree(seeded_home, home)
    return Context(home=home, db=str(demo_db_path))


def _settings(context: Context, **changes: Any) -> ConsoleSettings:
    values: dict[str, Any] = {
        "context": context,
        "reviewers_path": context.home / "reviewers.json",
        "secret_key": SECRET,
        "allowed_hosts": ("testserver",),
    }
    return ConsoleSettings(**{**values, **changes})


@pytest.fixture
def app_client(context: Context) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(context))) as client:
        yield client


def _token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token field"
    return match.group(1)


def _review_token(html: str) -> str:
    match = re.search(r'name="review_token" value="([^"]+)"', html)
    assert match, "the page has no decision forms"
    return match.group(1)


def sign_in(client: TestClient, name: str = "alice") -> None:
    token = _token(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": name, "password": PASSWORDS[name], "csrf_token": token, "next": "/queue"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/queue"


def _store(context: Context) -> CaseStore:
    return CaseStore(context.cases_path)


def _decide(client: TestClient, email_id: str, action: str, **fields: str) -> Any:
    page = client.get(f"/cases/{email_id}").text
    data = {"csrf_token": _token(page), "review_token": _review_token(page), **fields}
    return client.post(f"/cases/{email_id}/{action}", data=data, follow_redirects=False)


def _basic(name: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


# ------------------------------------------------------------------------- who may do what


def _sample_path(route: APIRoute) -> str:
    return (route.path.replace("{email_id:path}", "msg-007").replace("{email_id}", "msg-007")
            .replace("{section_id}", "late-fees"))


def test_every_page_and_api_call_is_refused_without_signing_in(
    app_client: TestClient, context: Context
) -> None:
    # The app serves these two routers (and static files); every route of both is tried.
    routes = [
        r for r in (*pages.router.routes, *api_routes.router.routes) if isinstance(r, APIRoute)
    ]
    open_routes = set()
    checked = 0
    for route in routes:
        for method in sorted(route.methods):
            path = _sample_path(route)
            response = app_client.request(
                method, path, follow_redirects=False, json={} if path.startswith("/api/") else None
            )
            if route.path in ("/login", "/logout"):
                open_routes.add(route.path)
                continue
            checked += 1
            if path.startswith("/api/"):
                assert response.status_code == 401, (method, path, response.status_code)
                assert "not signed in" in response.json()["detail"]
            else:
                assert response.status_code == 303, (method, path, response.status_code)
                assert response.headers["location"].startswith("/login?next=")
    # The only ways in are the sign-in form itself and signing out.
    assert open_routes == {"/login", "/logout"}
    assert checked >= 17
    case = _store(context).get_case("msg-007")
    assert case is not None and case.status == "awaiting_review" and not case.reviews


def test_a_reviewer_signs_in_and_lands_where_they_were_going(app_client: TestClient) -> None:
    first = app_client.get("/cases/msg-007", follow_redirects=False)
    assert first.headers["location"] == "/login?next=%2Fcases%2Fmsg-007"
    login = app_client.get(first.headers["location"])
    assert 'value="/cases/msg-007"' in login.text
    response = app_client.post(
        "/login",
        data={
            "username": "alice",
            "password": PASSWORDS["alice"],
            "csrf_token": _token(login.text),
            "next": "/cases/msg-007",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/cases/msg-007"
    page = app_client.get("/cases/msg-007")
    assert page.status_code == 200
    assert 'data-testid="reviewer-name">alice<' in page.text


def test_the_session_cookie_is_signed_and_httponly(app_client: TestClient) -> None:
    token = _token(app_client.get("/login").text)
    response = app_client.post(
        "/login",
        data={"username": "alice", "password": PASSWORDS["alice"], "csrf_token": token},
        follow_redirects=False,
    )
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("mediavault_session=")
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    # A cookie claiming to be bob, without the server's signature, signs nobody in.
    forged = base64.b64encode(json.dumps({"reviewer": "bob", "csrf": "x" * 40}).encode())
    app_client.cookies.clear()
    app_client.cookies.set("mediavault_session", forged.decode() + ".forged.signature")
    assert app_client.get("/queue", follow_redirects=False).status_code == 303


def test_a_wrong_password_is_refused_and_audited(app_client: TestClient, context: Context) -> None:
    token = _token(app_client.get("/login").text)
    response = app_client.post(
        "/login", data={"username": "alice", "password": "guess-guess-1", "csrf_token": token}
    )
    assert response.status_code == 401
    assert "Wrong name or password." in response.text
    assert app_client.get("/queue", follow_redirects=False).status_code == 303
    events = [e for e in read_events(context.audit_path) if e.action == "reviewer.sign_in"]
    assert [(e.actor, e.outcome) for e in events] == [("alice", "failure")]
    assert "guess-guess-1" not in context.audit_path.read_text()


def test_repeated_failures_lock_the_name_even_for_the_right_password(context: Context) -> None:
    with TestClient(create_app(_settings(context, max_failed_sign_ins=3))) as client:
        token = _token(client.get("/login").text)
        for attempt in range(3):
            client.post(
                "/login",
                data={"username": "bob", "password": f"wrong-{attempt}-xxxx", "csrf_token": token},
            )
        locked = client.post(
            "/login",
            data={"username": "bob", "password": PASSWORDS["bob"], "csrf_token": token},
            follow_redirects=False,
        )
        assert locked.status_code == 401
        assert "Too many failed attempts" in locked.text
        # Basic credentials for the same name are locked too.
        assert (
            client.get("/api/reviews", headers=_basic("bob", PASSWORDS["bob"])).status_code == 401
        )
        # Another reviewer is not affected.
        sign_in(client, "alice")


def test_a_removed_reviewer_is_out_on_the_next_request(
    app_client: TestClient, context: Context
) -> None:
    sign_in(app_client, "bob")
    assert app_client.get("/queue").status_code == 200
    assert remove_reviewer(context.home / "reviewers.json", "bob")
    assert app_client.get("/queue", follow_redirects=False).status_code == 303


def test_sign_in_never_redirects_to_another_site(app_client: TestClient) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x"):
        token = _token(app_client.get("/login").text)
        response = app_client.post(
            "/login",
            data={
                "username": "alice",
                "password": PASSWORDS["alice"],
                "csrf_token": token,
                "next": target,
            },
            follow_redirects=False,
        )
        assert response.headers["location"] == "/queue", target
        app_client.cookies.clear()


def test_requests_for_another_host_name_are_refused(app_client: TestClient) -> None:
    # A page on a rebinding domain cannot talk to the console through the victim's browser.
    response = app_client.get("/login", headers={"Host": "attacker.example"})
    assert response.status_code == 400


def test_the_proxy_header_signs_in_only_from_a_trusted_proxy(context: Context) -> None:
    header = {"X-Forwarded-User": "carol"}
    trusting = _settings(
        context, user_header="X-Forwarded-User", trusted_proxies=frozenset({"testclient"})
    )
    with TestClient(create_app(trusting)) as client:
        page = client.get("/queue", headers=header)
        assert page.status_code == 200
        assert 'data-testid="reviewer-name">carol<' in page.text
        # Still no decision without the form's CSRF token.
        refused = client.post(
            "/cases/msg-003/approve", headers=header, data={"review_token": "v1-r0"}
        )
        assert refused.status_code == 403
        approved = client.post(
            "/cases/msg-003/approve",
            headers=header,
            follow_redirects=False,
            data={"csrf_token": _token(page.text)},
        )
        assert approved.status_code == 303
        case = _store(context).get_case("msg-003")
        assert case is not None and [r.reviewer for r in case.reviews] == ["carol"]
        # A header that is not a plain reviewer name is ignored.
        assert (
            client.get(
                "/queue", headers={"X-Forwarded-User": "<b>x</b>"}, follow_redirects=False
            ).status_code
            == 303
        )
    untrusting = _settings(context, user_header="X-Forwarded-User")  # proxies: 127.0.0.1, ::1
    with TestClient(create_app(untrusting)) as client:
        assert client.get("/queue", headers=header, follow_redirects=False).status_code == 303


# -------------------------------------------------------------------------------------- CSRF


def test_a_forged_form_without_the_csrf_token_is_refused(
    app_client: TestClient, context: Context
) -> None:
    sign_in(app_client)
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "x" * 43}):
        response = app_client.post("/cases/msg-007/approve", data=data, follow_redirects=False)
        assert response.status_code == 403
        assert "security token" in response.text
    edit = app_client.post("/cases/msg-007/edit", data={"body": "Hello"}, follow_redirects=False)
    assert edit.status_code == 403
    case = _store(context).get_case("msg-007")
    assert case is not None and case.status == "awaiting_review" and not case.reviews
    # Sign-out and sign-in forms need it as well.
    assert app_client.post("/logout", follow_redirects=False).status_code == 403
    assert (
        app_client.post(
            "/login", data={"username": "alice", "password": PASSWORDS["alice"]}
        ).status_code
        == 403
    )


def test_api_calls_with_browser_credentials_need_the_csrf_header(
    app_client: TestClient, context: Context
) -> None:
    sign_in(app_client)
    refused = app_client.post("/api/cases/msg-003/approve", json={})
    assert refused.status_code == 403
    token = app_client.get("/api/session").json()["csrf_token"]
    done = app_client.post("/api/cases/msg-003/approve", json={}, headers={"X-CSRF-Token": token})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "approved"


# ------------------------------------------------------------------------------- escaping


def test_an_email_with_a_script_tag_is_shown_as_text(app_client: TestClient) -> None:
    sign_in(app_client)
    page = app_client.get("/cases/xss-1")
    assert page.status_code == 200
    assert SCRIPT not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    body = re.search(r'data-testid="email-body">(.*?)</pre>', page.text, re.S)
    assert body and "when is my rental due back?" in body.group(1)
    # No script may run on any page, even if escaping were ever missed.
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert SCRIPT not in app_client.get("/queue").text


# ----------------------------------------------------------------------------------- pages


def test_the_queue_lists_waiting_drafts_oldest_first_with_filters(
    app_client: TestClient, context: Context
) -> None:
    sign_in(app_client)
    page = app_client.get("/queue")
    ids = re.findall(r'<tr data-email-id="([^"]+)"', page.text)
    pending = _store(context).pending_reviews()
    assert ids == [case.email_id for case in pending]
    assert len(ids) >= 10
    assert f"<strong>{len(ids)}</strong> drafts waiting" in page.text
    catalog = app_client.get("/queue", params={"reason_code": "catalog_question"}).text
    shown = re.findall(r'<tr data-email-id="([^"]+)"', catalog)
    assert shown and set(shown) == {
        c.email_id for c in pending if c.reason_code == "catalog_question"
    }
    assert f"{len(shown)} shown" in catalog
    legal = app_client.get("/queue", params={"queue": "tier2_legal"}).text
    assert "Nothing waiting for this filter." in legal


def test_the_case_page_shows_evidence_citations_verdicts_and_the_draft(
    app_client: TestClient, context: Context
) -> None:
    sign_in(app_client)
    page = app_client.get("/cases/msg-007").text
    case = show_case("msg-007", context)
    queries = [item for item in case.evidence if item.sql]
    assert queries, "the agent queried the sender's rentals"
    for item in queries:  # each query the agent ran, and its row count
        assert str(escape(item.sql or "")) in page
        assert f'<td class="num">{item.row_count}</td>' in page
    cited = {section for item in case.evidence for section in item.policy_section_ids}
    assert cited
    for section in cited:  # each policy section read, linked to its text
        assert f'href="/policies/{section}"' in page
        policy = app_client.get(f"/policies/{section}")
        assert policy.status_code == 200
        assert str(escape(default_policy_library().get(section).title)) in policy.text
    assert re.search(r"<code>run_sql_query</code></td><td>.*allow", page)
    assert case.customer is not None
    assert str(case.customer["last_name"]).title() in page
    assert f"#{case.customer['customer_id']}" in page
    assert case.draft is not None
    assert str(escape(case.draft.text.splitlines()[0])) in page
    assert app_client.get("/policies/nope").status_code == 404
    assert app_client.get("/cases/no-such-email").status_code == 404


def test_approving_records_the_reviewer_in_the_store_the_audit_log_and_the_outbox(
    app_client: TestClient, context: Context
) -> None:
    sign_in(app_client)
    response = _decide(app_client, "msg-003", "approve")
    assert response.status_code == 303
    page = app_client.get(response.headers["location"]).text
    assert "approved by alice" in page
    case = _store(context).get_case("msg-003")
    assert case is not None and case.status == "approved"
    assert [(r.decision, r.reviewer) for r in case.reviews] == [("approve", "alice")]
    assert case.outbox is not None and Path(case.outbox.path).exists()
    decisions = [
        e
        for e in read_events(context.audit_path, email_id="msg-003")
        if e.action == "review.decision"
    ]
    assert [e.actor for e in decisions] == ["alice"]
    decided = app_client.get("/cases/msg-003").text
    assert 'data-testid="actions"' not in decided  # nothing left to decide


def test_an_invalid_edit_shows_why_next_to_the_text_and_keeps_it(
    app_client: TestClient, context: Context
) -> None:
    sign_in(app_client)
    draft = _store(context).get_case("msg-007")
    assert draft is not None and draft.latest_draft is not None
    text = draft.latest_draft.text.replace(
        "Kind regards", "We guarantee a full refund.\n\nKind regards"
    )
    response = _decide(app_client, "msg-007", "edit", body=text.replace("\n", "\r\n"))
    assert response.status_code == 422
    assert "We guarantee a full refund." in response.text  # the reviewer's text is not lost
    problems = re.search(r'data-testid="edit-problems">(.*?)</div>', response.text, re.S)
    assert problems and "guarantee" in problems.group(1)
    assert 'aria-invalid="true"' in response.text
    case = _store(context).get_case("msg-007")
    assert case is not None and case.status == "awaiting_review" and not case.reviews

    fixed = text.replace("We guarantee a full refund.", "We are sorry for the confusion.")
    done = _decide(app_client, "msg-007", "edit", body=fixed)
    assert done.status_code == 303
    case = _store(context).get_case("msg-007")
    assert case is not None and case.status == "approved"
    assert case.latest_draft is not None and case.latest_draft.source == "reviewer"
    assert "We are sorry for the confusion." in case.latest_draft.text
    assert [(r.decision, r.reviewer) for r in case.reviews] == [("edit", "alice")]


def test_a_tone_rejection_shows_on_the_metrics_page(
    app_client: TestClient, context: Context
) -> None:
    sign_in(app_client)
    before = app_client.get("/metrics").text
    assert re.search(r'data-metric="tone_rejections">0<', before)
    missing = _decide(app_client, "msg-006", "reject", reason_category="tone", message="")
    assert missing.status_code == 422 and "needs a message" in missing.text
    response = _decide(
        app_client,
        "msg-006",
        "reject",
        reason_category="tone",
        message="Too curt; greet the customer warmly.",
    )
    assert response.status_code == 303
    case = _store(context).get_case("msg-006")
    assert case is not None
    assert [(r.decision, r.reason_category) for r in case.reviews] == [("reject", "tone")]
    after = app_client.get("/metrics").text
    assert re.search(r'data-metric="tone_rejections">1<', after)
    assert "<svg" in after and "Review outcomes per day" in after
    assert 'data-testid="auto-approval"' in after


def test_escalating_files_a_ticket_in_the_chosen_queue(
    app_client: TestClient, context: Context
) -> None:
    sign_in(app_client)
    response = _decide(
        app_client,
        "msg-009",
        "escalate",
        queue="billing",
        message="Stock question for the store manager.",
    )
    assert response.status_code == 303
    case = _store(context).get_case("msg-009")
    assert case is not None and case.status == "escalated" and case.queue == "billing"
    page = app_client.get("/escalations", params={"queue": "billing"}).text
    assert 'data-email-id="msg-009"' in page
    assert "Stock question for the store manager." in page
    bad = _decide(app_client, "msg-011", "escalate", queue="nowhere")
    assert bad.status_code == 422 and "unknown queue" in bad.text


def test_the_audit_page_reports_a_broken_chain(app_client: TestClient, context: Context) -> None:
    sign_in(app_client)
    assert "audit log OK" in app_client.get("/audit").text
    lines = context.audit_path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"outcome":"success"', '"outcome":"failure"', 1)
    context.audit_path.write_text("".join(lines))
    page = app_client.get("/audit").text
    assert "audit log BROKEN at line 3" in page
    assert app_client.get("/api/audit").json()["first_broken_line"] == 3


# ----------------------------------------------------------------------- concurrent reviewers


def test_two_reviewers_approving_one_case_record_one_decision(context: Context) -> None:
    app = create_app(_settings(context))
    with TestClient(app) as alice, TestClient(app) as bob:
        sign_in(alice, "alice")
        sign_in(bob, "bob")
        bob_page = bob.get("/cases/msg-013").text
        assert _decide(alice, "msg-013", "approve").status_code == 303
        second = bob.post(
            "/cases/msg-013/approve",
            follow_redirects=False,
            data={"csrf_token": _token(bob_page), "review_token": _review_token(bob_page)},
        )
        assert second.status_code == 409
        assert "already decided" in second.text
        assert "alice" in second.text
    case = _store(context).get_case("msg-013")
    assert case is not None and [r.reviewer for r in case.reviews] == ["alice"]


def test_simultaneous_api_approvals_record_one_decision(
    app_client: TestClient, context: Context
) -> None:
    results: list[int] = []
    barrier = threading.Barrier(4)

    def approve(name: str) -> None:
        barrier.wait()
        response = app_client.post(
            "/api/cases/msg-016/approve", json={}, headers=_basic(name, PASSWORDS[name])
        )
        results.append(response.status_code)

    threads = [
        threading.Thread(target=approve, args=(name,)) for name in ("alice", "bob", "alice", "bob")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200, 409, 409, 409]
    case = _store(context).get_case("msg-016")
    assert case is not None and case.status == "approved" and len(case.reviews) == 1


def test_a_decision_on_a_draft_that_changed_is_refused(context: Context) -> None:
    app = create_app(_settings(context))
    with TestClient(app) as alice, TestClient(app) as bob:
        sign_in(alice, "alice")
        sign_in(bob, "bob")
        bob_page = bob.get("/cases/msg-015").text
        rejected = _decide(
            alice,
            "msg-015",
            "reject",
            reason_category="factual",
            message="Check the fee amounts again.",
        )
        assert rejected.status_code == 303
        # The revised draft waits again; bob's approval was of the draft alice rejected.
        stale = bob.post(
            "/cases/msg-015/approve",
            follow_redirects=False,
            data={"csrf_token": _token(bob_page), "review_token": _review_token(bob_page)},
        )
        assert stale.status_code == 409
        assert "changed since you opened it" in stale.text
    case = _store(context).get_case("msg-015")
    assert case is not None and case.status == "awaiting_review"
    assert [r.decision for r in case.reviews] == ["reject"]


# ------------------------------------------------------------------------------- JSON API


def test_the_json_api_reads_and_decides_with_basic_credentials(
    app_client: TestClient, context: Context
) -> None:
    alice = _basic("alice", PASSWORDS["alice"])
    assert (
        app_client.get("/api/reviews", headers=_basic("alice", "wrong-password")).status_code == 401
    )
    queue = app_client.get("/api/reviews", headers=alice).json()
    assert queue["waiting"] == len(queue["items"]) >= 10
    received = [item["received_at"] for item in queue["items"]]
    assert received == sorted(received)
    case = app_client.get("/api/cases/msg-012", headers=alice).json()
    assert case["awaiting_review"] is True and case["review_token"] == "v1-r0"
    refused = app_client.post(
        "/api/cases/msg-012/edit",
        headers=alice,
        json={"body": "We guarantee it.", "review_token": "v1-r0"},
    )
    assert refused.status_code == 422
    assert any("guarantee" in p for p in refused.json()["problems"])
    done = app_client.post(
        "/api/cases/msg-012/escalate",
        headers=alice,
        json={"queue": "privacy", "review_token": "v1-r0"},
    )
    assert done.status_code == 200 and done.json()["status"] == "escalated"
    again = app_client.post("/api/cases/msg-012/approve", headers=alice, json={})
    assert again.status_code == 409 and again.json()["result"] == "already_decided"
    metrics = app_client.get("/api/metrics", headers=alice).json()
    assert metrics["metrics"]["escalations_by_queue"]["privacy"] == 1
    schema = app_client.get("/api/openapi.json", headers=alice).json()
    assert {
        "/api/reviews",
        "/api/cases/{email_id}",
        "/api/cases/{email_id}/approve",
        "/api/cases/{email_id}/edit",
        "/api/cases/{email_id}/reject",
        "/api/cases/{email_id}/escalate",
        "/api/metrics",
        "/api/audit",
        "/api/escalations",
    } <= set(schema["paths"])
    assert not any(path.startswith(("/cases", "/queue", "/login")) for path in schema["paths"])
    # Browsers are never asked for Basic credentials, so they never send them on their own.
    assert "www-authenticate" not in app_client.get("/api/reviews").headers


def test_the_package_ships_the_templates_and_styles() -> None:
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["*"]
    web = REPO / "agent" / "web"
    files = [*(web / "templates").iterdir(), *(web / "static").iterdir()]
    assert files
    # Every template and style file matches a package-data pattern of its folder...
    assert all(any(p.match(pattern) for pattern in patterns) for p in files)
    # ...and the folders themselves are found as (namespace) packages of mediavault.agent.
    import setuptools

    captured: dict[str, object] = {}
    original = setuptools.setup
    setuptools.setup = lambda **kwargs: captured.update(kwargs)  # type: ignore[assignment]
    try:
        runpy.run_path(str(REPO / "setup.py"))
    finally:
        setuptools.setup = original
    packages = captured["packages"]
    assert isinstance(packages, list)
    assert {"mediavault.agent.web.templates", "mediavault.agent.web.static"} <= set(packages)


# ----------------------------------------------------------------- reviewer's working day


def test_after_a_decision_the_next_waiting_draft_opens(
    app_client: TestClient, context: Context
) -> None:
    sign_in(app_client)
    waiting = [case.email_id for case in _store(context).pending_reviews()]
    decided = waiting[1]
    response = _decide(app_client, decided, "approve")
    assert response.status_code == 303
    assert response.headers["location"] == f"/cases/{waiting[0]}"  # the oldest still waiting
    page = app_client.get(response.headers["location"]).text
    assert f"{decided} approved by alice" in page and "Next, the oldest draft still waiting" in page
    assert 'data-testid="actions"' in page


def test_the_last_decision_returns_to_the_queue(app_client: TestClient, context: Context) -> None:
    sign_in(app_client)
    store = _store(context)
    waiting = [case.email_id for case in store.pending_reviews()]
    for email_id in waiting[:-1]:
        assert _decide(app_client, email_id, "approve").status_code == 303
    last = _decide(app_client, waiting[-1], "approve")
    assert last.headers["location"] == "/queue"
    assert "No other draft waits." in app_client.get("/queue").text


def test_the_queue_searches_sender_and_subject(app_client: TestClient, context: Context) -> None:
    sign_in(app_client)
    pending = _store(context).pending_reviews()

    def shown(search: str) -> set[str]:
        page = app_client.get("/queue", params={"search": search}).text
        return set(re.findall(r'<tr data-email-id="([^"]+)"', page))

    someone = pending[0]
    by_sender = shown(someone.sender.split("@")[0].upper())
    assert someone.email_id in by_sender
    assert by_sender == {c.email_id for c in pending
                         if someone.sender.split("@")[0] in c.sender.casefold()}
    stock = shown("in  STOCK")
    assert stock and stock == {c.email_id for c in pending
                               if c.email and "in stock" in c.email.subject.casefold()}
    named = next(c for c in pending if c.email and c.email.sender_name)
    name = named.email.sender_name if named.email else ""
    assert named.email_id in shown(name.swapcase())
    assert shown(name) == {c.email_id for c in pending
                           if c.email and name.casefold() in c.email.sender_name.casefold()}
    assert "Nothing waiting for this filter." in app_client.get(
        "/queue", params={"search": "nobody-writes-this"}).text


def test_waiting_times_run_on_the_business_clock(context: Context) -> None:
    from datetime import UTC, datetime

    from mediavault.agent.web.case_view import age_text

    # Nine months after the demo database's business date (2026-03-02), at 09:00.
    wall = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    settings = _settings(context, clock=lambda: wall)
    with TestClient(create_app(settings)) as client:
        sign_in(client)
        page = client.get("/queue").text
    business = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    for case in _store(context).pending_reviews():
        row = page.split(f'<tr data-email-id="{case.email_id}">')[1].split("</tr>")[0]
        assert f"<td>{age_text(case.received_at, business)}</td>" in row
    assert not re.search(r"<td>(?:[2-9]|\d{2,}) d ", page)  # nobody has waited for days


def test_the_case_page_shows_rows_the_trace_and_draft_versions(
    app_client: TestClient, context: Context
) -> None:
    sign_in(app_client)
    page = app_client.get("/cases/msg-007").text
    case = show_case("msg-007", context)
    [query] = [item for item in case.evidence if item.sql]
    assert 'data-testid="query-rows"' in page
    for column in query.columns:
        assert f"<th>{escape(column)}</th>" in page
    title = next(str(row["title"]) for row in query.rows if row.get("title"))
    assert f"<td>{escape(title)}</td>" in page
    trace = page.split('data-testid="trace"')[1].split("</table>")[0]
    assert trace.count('<tr class="step') == len(case.trace)
    assert "<code>run_sql_query</code>" in trace and "draft v1 written" in trace
    api = app_client.get("/api/cases/msg-007").json()
    [api_query] = [item for item in api["evidence"] if item["sql"]]
    assert api_query["sql"] == query.sql and api_query["rows"] == [dict(r) for r in query.rows]
    assert [step["summary"] for step in api["trace"]] == [step.summary for step in case.trace]
    # A rejection: both versions side by side (the rules model repeats its text, so v1 only
    # changes when a reviewer edits; here an edit after a rejection gives two versions).
    _decide(app_client, "msg-007", "reject", reason_category="tone", message="Warmer, please")
    edited = show_case("msg-007", context)
    body = (edited.draft.text if edited.draft else "").replace("Hello", "Hello again", 1)
    _decide(app_client, "msg-007", "edit", body=body)
    versions = app_client.get("/cases/msg-007").text
    assert 'data-testid="draft-versions"' in versions
    assert "reject by alice (tone): Warmer, please" in versions
    assert versions.count('<div class="version">') == 2

# ------------------------------------------------------------------- sessions and throttles


def _session_cookie(client: TestClient) -> str:
    value = client.cookies.get("mediavault_session")
    assert value, "no session cookie"
    return value


def test_a_copied_session_cookie_stops_working_after_sign_out(context: Context) -> None:
    app = create_app(_settings(context))
    with TestClient(app) as browser, TestClient(app) as thief:
        sign_in(browser, "alice")
        thief.cookies.set("mediavault_session", _session_cookie(browser))
        assert thief.get("/queue").status_code == 200  # the copy works while signed in
        token = _token(browser.get("/queue").text)
        assert browser.post("/logout", data={"csrf_token": token},
                            follow_redirects=False).status_code == 303
        assert thief.get("/queue", follow_redirects=False).status_code == 303
        assert thief.get("/api/reviews").status_code == 401
        assert app.state.console.sessions.count("alice") == 0


def test_a_new_password_ends_the_sessions_opened_before_it(context: Context) -> None:
    app = create_app(_settings(context))
    with TestClient(app) as old, TestClient(app) as other:
        sign_in(old, "alice")
        sign_in(other, "bob")
        add_reviewer(context.home / "reviewers.json", "alice", "a-brand-new-password")
        assert old.get("/queue", follow_redirects=False).status_code == 303
        assert old.get("/api/reviews").status_code == 401
        assert other.get("/queue").status_code == 200  # bob's password did not change
        # Signing in with the new password works; the old one no longer does.
        PASSWORDS_NEW = {"username": "alice", "password": "a-brand-new-password",
                         "csrf_token": _token(old.get("/login").text)}
        assert old.post("/login", data=PASSWORDS_NEW, follow_redirects=False).status_code == 303
        assert old.get("/queue").status_code == 200


def test_sessions_outlive_a_console_restart_but_not_their_sign_out(context: Context) -> None:
    with TestClient(create_app(_settings(context))) as first:
        sign_in(first, "alice")
        cookie = _session_cookie(first)
    registry = context.home / "console_sessions.json"
    assert registry.stat().st_mode & 0o077 == 0
    assert cookie not in registry.read_text()  # only digests of session ids are stored
    with TestClient(create_app(_settings(context))) as restarted:
        restarted.cookies.set("mediavault_session", cookie)
        assert restarted.get("/queue").status_code == 200


def test_spraying_one_password_across_many_names_is_throttled_per_address(
    context: Context,
) -> None:
    settings = _settings(context, max_failed_sign_ins_per_client=5)
    with TestClient(create_app(settings)) as sprayer, TestClient(
            create_app(settings), client=("203.0.113.9", 40000)) as colleague:
        token = _token(sprayer.get("/login").text)
        for number in range(5):  # one guess per name: the per-name limit never trips
            sprayer.post("/login", data={"username": f"user{number}",
                                         "password": "Winter2026!!", "csrf_token": token})
        refused = sprayer.post("/login", data={"username": "alice",
                                               "password": PASSWORDS["alice"],
                                               "csrf_token": token}, follow_redirects=False)
        assert refused.status_code == 401
        assert "Too many failed attempts from this address" in refused.text
        assert sprayer.get("/api/reviews", headers=_basic("alice", PASSWORDS["alice"])) \
            .status_code == 401
        sign_in(colleague, "alice")  # another address is not affected
    # Behind the trusted proxy, clients are told apart by the address the proxy saw.
    proxied = _settings(context, max_failed_sign_ins_per_client=2,
                        trusted_proxies=frozenset({"testclient"}))
    with TestClient(create_app(proxied)) as proxy:
        token = _token(proxy.get("/login").text)
        for number in range(2):
            proxy.post("/login", headers={"X-Forwarded-For": "1.1.1.1, 198.51.100.7"},
                       data={"username": f"u{number}", "password": "Winter2026!!",
                             "csrf_token": token})
        refused = proxy.post("/login", headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.7"},
                             data={"username": "alice", "password": PASSWORDS["alice"],
                                   "csrf_token": token})
        assert "from this address" in refused.text  # a forged first entry does not escape
        sign_in(proxy, "alice")  # another client behind the same proxy signs in


def test_the_overall_throttle_stops_a_spray_from_many_addresses() -> None:
    throttle = SignInThrottle(5, timedelta(minutes=15), max_per_client=20, max_overall=100)
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    for number in range(100):
        throttle.failed(f"user{number}", now, client=f"198.51.100.{number}")
    assert throttle.refusal("alice", "192.0.2.1", now) == "overall"
    # The window passes: sign-in opens again.
    assert throttle.refusal("alice", "192.0.2.1", now + timedelta(minutes=16)) is None


def test_a_flood_of_names_cannot_wipe_a_lockout() -> None:
    throttle = SignInThrottle(5, timedelta(minutes=15), max_per_client=10**9,
                              max_overall=10**9)
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    for _ in range(5):
        throttle.failed("alice", now, client="192.0.2.7")
    assert throttle.refusal("alice", "192.0.2.8", now) == "name"
    for number in range(MAX_TRACKED_KEYS + 1):
        throttle.failed(f"flood{number}", now, client="192.0.2.7")
    assert throttle.refusal("alice", "192.0.2.8", now) == "name"
    # A correct password for another account resets neither the address nor alice.
    throttle.succeeded("bob")
    assert throttle.refusal("alice", "192.0.2.8", now) == "name"


def _set_cookie(response: Any) -> str:
    cookies = response.headers.get_list("set-cookie")
    assert cookies, "no cookie was set"
    return cookies[0].lower()


def _login_response(client: TestClient, **headers: str) -> Any:
    token = _token(client.get("/login", headers=headers).text)
    return client.post("/login", headers=headers, follow_redirects=False,
                       data={"username": "alice", "password": PASSWORDS["alice"],
                             "csrf_token": token})


def test_the_session_cookie_is_secure_over_https_and_behind_the_trusted_proxy(
    context: Context,
) -> None:
    with TestClient(create_app(_settings(context)), base_url="https://testserver") as tls:
        assert "; secure" in _set_cookie(_login_response(tls))
    proxied = _settings(context, trusted_proxies=frozenset({"testclient"}))
    with TestClient(create_app(proxied)) as behind_proxy:
        assert "; secure" in _set_cookie(
            _login_response(behind_proxy, **{"X-Forwarded-Proto": "https"}))
    # Plain HTTP, or a forwarded scheme from a peer that is not the proxy: not marked Secure
    # (the browser would drop it), unless the operator says always.
    with TestClient(create_app(_settings(context))) as direct:
        assert "secure" not in _set_cookie(
            _login_response(direct, **{"X-Forwarded-Proto": "https"}))
    with TestClient(create_app(_settings(context, secure_cookies=True)),
                    base_url="https://testserver") as always:
        assert "; secure" in _set_cookie(_login_response(always))


def test_case_ids_with_slashes_open_in_the_console_and_the_api(
    context: Context, demo_db_path: Path
) -> None:
    email_id = "2026/03/01/abc@mail.example"
    triage_email({**XSS_EMAIL, "email_id": email_id, "body": "When is my film due back?"},
                 context=context)
    app = create_app(_settings(context))
    with TestClient(app) as browser, TestClient(app) as client:
        sign_in(browser, "alice")
        links = re.findall(r'href="(/cases/2026[^"]+)"', browser.get("/queue").text)
        assert len(links) == 1
        page = browser.get(links[0])  # the link in the queue opens the case
        assert page.status_code == 200 and email_id in page.text
        assert 'action="/cases/2026/03/01/' in page.text
        encoded = browser.get("/cases/2026%2F03%2F01%2Fabc%40mail.example")
        assert encoded.status_code == 200
        alice = _basic("alice", PASSWORDS["alice"])
        case = client.get(f"/api/cases/{email_id}", headers=alice)
        assert case.status_code == 200 and case.json()["email_id"] == email_id
        done = client.post(f"/api/cases/{email_id}/approve", headers=alice, json={})
        assert done.status_code == 200, done.text
        assert done.json()["email_id"] == email_id and done.json()["status"] == "approved"
        assert client.get("/api/cases/2026/03/01/no-such@mail.example",
                          headers=alice).status_code == 404

"""The review desk: listing, showing and deciding drafts, and every way a decision is refused."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mediavault.agent.api import NoPendingReview, triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.ops.review_desk import (
    CaseNotFound,
    DraftChanged,
    EditRefused,
    InvalidDecision,
    NoReviewWaiting,
    ReviewAlreadyDecided,
    approve_draft,
    current_draft,
    edit_draft,
    escalate_case,
    list_pending_reviews,
    reject_draft,
    show_case,
)
from mediavault.agent.stores.case_store import CaseStore
from mediavault.graph.context import Context

REPO = Path(__file__).resolve().parents[2]
INBOX = read_inbox_csv(REPO / "examples" / "inbox.csv").emails


@pytest.fixture
def context(demo_db_path: Path, mediavault_home: Path) -> Context:
    return Context(home=mediavault_home, db=str(demo_db_path))


def _triage(context: Context, *email_ids: str) -> None:
    for email in INBOX:
        if email.email_id in email_ids:
            triage_email(email, context=context)


def _store(context: Context) -> CaseStore:
    return CaseStore(context.cases_path)


def _outbox(context: Context) -> list[Path]:
    return sorted(context.outbox_path.glob("*.eml"))


# ------------------------------------------------------------------------------- reading


def test_pending_reviews_list_drafts_oldest_first_and_leave_escalations_out(
    context: Context,
) -> None:
    _triage(context, "msg-009", "msg-001", "msg-003", "msg-006")
    pending = list_pending_reviews(context)
    assert [p.email_id for p in pending] == ["msg-003", "msg-006", "msg-009"]  # msg-001 escalated
    first = pending[0]
    assert first.subject == "Lantern Season was wonderful"
    assert first.reason_code == "praise"
    assert first.draft_version == 1 and first.previous_reviews == 0


def test_listing_a_home_without_a_case_store_finds_nothing_and_creates_nothing(
    mediavault_home: Path,
) -> None:
    context = Context(home=mediavault_home / "typo")
    assert list_pending_reviews(context) == []
    with pytest.raises(CaseNotFound, match="no case store"):
        show_case("msg-006", context)
    assert not (mediavault_home / "typo").exists()


def test_a_case_file_holds_what_a_reviewer_needs(context: Context) -> None:
    _triage(context, "msg-006")
    case = show_case("msg-006", context)
    assert case.awaiting_review and case.status == "awaiting_review"
    assert set(case.allowed_decisions) == {"approve", "edit", "reject", "escalate"}
    assert case.email is not None and "VELVET COMPASS" in case.email.body
    assert case.customer is not None and case.customer["customer_id"] == 163
    queries = [item for item in case.evidence if item.sql]
    assert queries and all(item.row_count is not None for item in queries)
    assert any("my_rentals" in (q.sql or "") and (q.row_count or 0) > 0 for q in queries)
    # Every section the run relied on is cited, by a title from the policy document.
    assert case.policy_citations and all(c.title for c in case.policy_citations)
    cited = {c.section_id for c in case.policy_citations}
    assert cited >= {s for item in case.evidence for s in item.policy_section_ids}
    assert [v.tool for v in case.gate_verdicts][-1] == "draft_customer_email"
    assert all(v.verdict == "allow" for v in case.gate_verdicts)
    assert case.draft is not None and case.draft.text.rstrip().endswith("MediaVault Support Team")
    assert case.draft.to == "sofia.marchetti@example.com"
    actions = [event.action for event in case.audit_trail]
    assert actions[0] == "email.received" and "gate.verdict" in actions


def test_an_escalated_case_shows_its_ticket_and_offers_no_decision(context: Context) -> None:
    _triage(context, "msg-001")
    case = show_case("msg-001", context)
    assert case.status == "escalated" and not case.awaiting_review
    assert case.allowed_decisions == ()
    assert case.ticket is not None and case.ticket["suggested_routing"] == "tier2_legal"
    assert "legal_threat" in case.risk_flags or case.reason_code == "legal_threat"


def test_an_unknown_email_id_is_not_found(context: Context) -> None:
    _triage(context, "msg-006")
    with pytest.raises(CaseNotFound, match="no case for email 'msg-999'"):
        show_case("msg-999", context)
    with pytest.raises(CaseNotFound):
        approve_draft("msg-999", reviewer="sam", context=context)


# ------------------------------------------------------------------------------- approve


def test_approve_writes_the_reply_and_records_the_reviewer(context: Context) -> None:
    _triage(context, "msg-006")
    outcome = approve_draft("msg-006", reviewer="sam", context=context)
    assert outcome.status == "approved"
    assert outcome.summary.startswith("msg-006 approved by sam")
    assert outcome.outbox_path is not None and Path(outcome.outbox_path).is_file()
    assert "VELVET COMPASS" in Path(outcome.outbox_path).read_text()
    case = _store(context).get_case("msg-006")
    assert case is not None
    assert [(r.decision, r.reviewer) for r in case.reviews] == [("approve", "sam")]
    trail = show_case("msg-006", context).audit_trail
    assert any(e.action == "review.decision" and e.actor == "sam" for e in trail)


def test_the_reviewer_defaults_to_the_operating_system_user(
    context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "night-shift")
    _triage(context, "msg-006")
    assert approve_draft("msg-006", context=context).reviewer == "night-shift"
    case = _store(context).get_case("msg-006")
    assert case is not None and case.reviews[0].reviewer == "night-shift"


def test_a_second_approval_is_refused_as_already_decided(context: Context) -> None:
    _triage(context, "msg-006")
    approve_draft("msg-006", reviewer="sam", context=context)
    with pytest.raises(ReviewAlreadyDecided, match="already decided: approved by sam") as refused:
        approve_draft("msg-006", reviewer="alex", context=context)
    # Callers of the plain API's error type catch it too.
    assert isinstance(refused.value, NoPendingReview)
    case = _store(context).get_case("msg-006")
    assert case is not None and len(case.reviews) == 1
    assert len(_outbox(context)) == 1


def test_two_reviewers_approving_at_once_decide_the_case_once(context: Context) -> None:
    _triage(context, "msg-006")
    results: list[str] = []

    def approve(name: str) -> None:
        try:
            approve_draft("msg-006", reviewer=name, context=context)
            results.append("approved")
        except ReviewAlreadyDecided:
            results.append("already decided")

    threads = [threading.Thread(target=approve, args=(name,)) for name in ("sam", "alex")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["already decided", "approved"]
    case = _store(context).get_case("msg-006")
    assert case is not None and len(case.reviews) == 1
    assert len(_outbox(context)) == 1


def test_a_decision_on_a_draft_that_changed_since_it_was_read_is_refused(
    context: Context,
) -> None:
    _triage(context, "msg-006")
    with pytest.raises(DraftChanged, match="now version 1, not the version 2"):
        approve_draft("msg-006", reviewer="sam", draft_version=2, context=context)
    assert show_case("msg-006", context).awaiting_review
    assert approve_draft("msg-006", reviewer="sam", draft_version=1,
                         context=context).status == "approved"


@pytest.mark.parametrize("name", ["", "   ", "sam\nBcc: evil", "\x1b[31msam", "x" * 101])
def test_unusable_reviewer_names_are_refused_before_anything_is_recorded(
    context: Context, name: str
) -> None:
    _triage(context, "msg-006")
    with pytest.raises(InvalidDecision, match="reviewer name"):
        approve_draft("msg-006", reviewer=name, context=context)
    assert show_case("msg-006", context).reviews == ()


# ---------------------------------------------------------------------------------- edit


def _with_line(draft: str, line: str) -> str:
    return draft.replace("MediaVault Support Team", f"{line}\nMediaVault Support Team")


def test_a_valid_edit_replaces_the_draft_and_is_sent(context: Context) -> None:
    _triage(context, "msg-003")
    draft = current_draft("msg-003", context)
    outcome = edit_draft("msg-003", _with_line(draft.text, "Enjoy your next film!"),
                         reviewer="ana", context=context)
    assert outcome.status == "approved" and outcome.edit_size == len("Enjoy your next film!\n")
    assert outcome.draft is not None and outcome.draft.source == "reviewer"
    assert outcome.outbox_path is not None
    assert "Enjoy your next film!" in Path(outcome.outbox_path).read_text()
    case = _store(context).get_case("msg-003")
    assert case is not None
    assert [(d.version, d.source) for d in case.drafts] == [(1, "model"), (2, "reviewer")]
    assert case.reviews[-1].decision == "edit" and case.reviews[-1].edit_size == 22


@pytest.mark.parametrize(
    ("added", "problem"),
    [
        ("Write to brenda.castillo@example.com for help.", "dlp_email"),
        ("Call our manager on 555-201-7788.", "dlp_phone"),
        ("See https://mediavault.example.com/fees for details.", "dlp_url"),
        ("We guarantee a full refund.", "forbidden_phrase"),
        ("Header trick:\r\nBcc: collector@evil.example.net", "dlp_email"),
    ],
)
def test_an_edit_that_fails_validation_or_dlp_is_refused_and_the_review_stays_open(
    context: Context, added: str, problem: str
) -> None:
    _triage(context, "msg-003")
    original = current_draft("msg-003", context)
    with pytest.raises(EditRefused) as refused:
        edit_draft("msg-003", _with_line(original.text, added), reviewer="ana", context=context)
    assert any(p.startswith(problem) for p in refused.value.problems), refused.value.problems
    assert "stays open" in str(refused.value)
    case = show_case("msg-003", context)
    assert case.awaiting_review and case.status == "awaiting_review"
    assert case.draft is not None and case.draft.text == original.text  # old draft kept
    assert any(p.startswith(problem) for p in case.refused_problems)
    assert [r.decision for r in case.reviews] == []
    assert _outbox(context) == []
    # The desk is still usable: a proper edit now goes through.
    assert edit_draft("msg-003", _with_line(original.text, "Thanks again!"), reviewer="ana",
                      context=context).status == "approved"


def test_an_edit_without_the_sign_off_is_refused(context: Context) -> None:
    _triage(context, "msg-003")
    with pytest.raises(EditRefused, match="missing_sign_off"):
        edit_draft("msg-003", "Hello Luis, thank you so much for your kind words about our "
                   "store and the film. Kind regards", reviewer="ana", context=context)


@pytest.mark.parametrize(("text", "why"), [("  \n ", "empty"), (None, "same as the draft")])
def test_an_empty_or_unchanged_edit_is_not_counted_as_an_edit(
    context: Context, text: str | None, why: str
) -> None:
    _triage(context, "msg-003")
    body = current_draft("msg-003", context).text if text is None else text
    with pytest.raises(InvalidDecision, match=why):
        edit_draft("msg-003", body, reviewer="ana", context=context)
    assert show_case("msg-003", context).reviews == ()


# ------------------------------------------------------------------------ reject, escalate


def test_a_rejection_gets_one_revision_then_closes_the_case(context: Context) -> None:
    _triage(context, "msg-009")
    first = reject_draft("msg-009", reason="tone", message="Warmer, please", reviewer="ana",
                         context=context)
    assert first.status == "awaiting_review"
    assert "waits for review again" in first.summary
    assert [p.email_id for p in list_pending_reviews(context)] == ["msg-009"]
    second = reject_draft("msg-009", reason="factual", message="Still wrong", reviewer="ana",
                          context=context)
    assert second.status == "rejected" and "closed as rejected" in second.summary
    case = _store(context).get_case("msg-009")
    assert case is not None
    assert [(r.decision, r.reason_category, r.message) for r in case.reviews] == [
        ("reject", "tone", "Warmer, please"), ("reject", "factual", "Still wrong")]
    assert _outbox(context) == []
    with pytest.raises(ReviewAlreadyDecided):
        approve_draft("msg-009", reviewer="sam", context=context)


@pytest.mark.parametrize(
    ("reason", "message", "why"),
    [("rude", "too curt", "not one of tone, factual, policy, other"),
     ("tone", "   ", "needs a message"),
     ("tone", "x" * 1001, "longer than 1000")],
)
def test_a_malformed_rejection_is_refused_and_nothing_is_recorded(
    context: Context, reason: str, message: str, why: str
) -> None:
    _triage(context, "msg-009")
    with pytest.raises(InvalidDecision, match=why):
        reject_draft("msg-009", reason=reason, message=message, reviewer="ana", context=context)
    assert show_case("msg-009", context).reviews == ()


def test_a_reviewer_escalates_to_a_queue_and_a_ticket_is_filed(context: Context) -> None:
    _triage(context, "msg-003")
    outcome = escalate_case("msg-003", queue="communications", message="This is a journalist",
                            reviewer="ana", context=context)
    assert outcome.status == "escalated" and outcome.queue == "communications"
    assert outcome.ticket_id is not None and outcome.ticket_id in outcome.summary
    case = show_case("msg-003", context)
    assert case.ticket is not None and case.ticket["suggested_routing"] == "communications"
    assert case.reviews[-1].decision == "escalate"
    assert _outbox(context) == []


def test_an_unknown_queue_is_refused_with_the_valid_ones(context: Context) -> None:
    _triage(context, "msg-003")
    with pytest.raises(InvalidDecision, match="unknown queue 'legal'; use one of billing, "):
        escalate_case("msg-003", queue="legal", reviewer="ana", context=context)
    assert show_case("msg-003", context).awaiting_review


def test_a_case_without_a_waiting_review_says_so(context: Context) -> None:
    _triage(context, "msg-001")  # escalated by the safety rules: never reviewed
    with pytest.raises(ReviewAlreadyDecided, match="already decided: escalated"):
        current_draft("msg-001", context)
    with pytest.raises(NoReviewWaiting):
        escalate_case("msg-001", queue="billing", reviewer="ana", context=context)

"""Asks: the rules model reads each ask, drafts only when all are answered, revises on reject."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mediavault.agent.api import ReviewDecision, resume, triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.models.rules_asks import (
    ambiguous_titles,
    named_titles,
    read_message,
)
from mediavault.agent.models.rules_model import (
    Analysis,
    CaseReading,
    _cover_every_ask,
    classify_sentence,
    own_forwarded_text,
    revise_draft,
)
from mediavault.agent.stores.case_store import CaseStore
from mediavault.evals.cli import parse_threshold, threshold_shortfall
from mediavault.evals.dataset import parse_cases
from mediavault.graph.context import Context
from mediavault.tools.drafting.asks import CustomerAsk, check_reply, unanswered_asks

REPLY = ("Hello Ana,\n\nThank you for writing to us about your rentals.\n\nHere is what we "
         "found:\n- ARCTIC PILGRIM is due back on March 5, 2026.\n\nKind regards,\n"
         "MediaVault Support")


def test_a_reply_that_skips_an_ask_is_refused() -> None:
    due = CustomerAsk(intent="rental_status", sentence="When is Arctic Pilgrim due?",
                      entities=["film:ARCTIC PILGRIM"])
    stock = CustomerAsk(intent="catalog_question", sentence="Do you have Golden Alibi?",
                        entities=["film:GOLDEN ALIBI"])
    assert unanswered_asks([due], REPLY) == []
    problems = unanswered_asks([due, stock], REPLY)
    assert [p.code for p in problems] == ["ask_unanswered"]
    assert "Golden Alibi" in problems[0].detail


def test_two_apologies_and_a_bare_command_are_refused() -> None:
    text = ("We are sorry for the trouble. We are sorry about your experience.\n"
            "You must return the film by Friday.\nMediaVault Support")
    codes = {p.code for p in check_reply([], text)}
    assert codes == {"duplicate_apology", "bare_imperative"}
    assert check_reply([], "We are sorry for the trouble.\nMediaVault Support") == []


def test_typos_partial_titles_and_case_still_name_the_film() -> None:
    titles = ["ARCTIC PILGRIM", "GOLDEN ALIBI", "STORMY CORRIDOR"]
    assert named_titles(titles, "when is arctic pilgrm due back?") == ["ARCTIC PILGRIM"]
    assert named_titles(titles, "Is Golden Alibi in?") == ["GOLDEN ALIBI"]
    assert named_titles(titles, "when is my film due?") == []


def test_two_films_matching_equally_is_ambiguity() -> None:
    assert ambiguous_titles(["GOLDEN ALIBI", "GOLDEN ALIBY"], "is golden alibe in?") != []
    assert ambiguous_titles(["GOLDEN ALIBI", "GOLDEN ALIBY"], "is golden alibi in?") == []


def test_sentences_are_asks_context_or_courtesy() -> None:
    message = read_message("Hi there,\nI rented two films last week. When is Arctic Pilgrim "
                           "due back? Also, do you sell popcorn?\nThanks,\nAna",
                           classify_sentence)
    kinds = [(s.kind, s.intent) for s in message.sentences]
    assert ("ask", "rental_status") in kinds
    assert [s.text for s in message.unaccounted] == ["Also, do you sell popcorn?"]
    assert all(kind == "courtesy" for kind, _ in kinds[:1] + kinds[-2:])


def _reading(body: str) -> CaseReading:
    reading = CaseReading(subject="", body=body, facts={"customer_id": 7})
    reading.message = read_message(body, classify_sentence)
    return reading


def test_an_unreadable_question_escalates_as_partly_understood_with_the_answer_kept() -> None:
    draft = Analysis("draft", "rental_status", "Rental status read from the account.",
                     ["ARCTIC PILGRIM is due back on March 5, 2026."], [], [], "your rentals",
                     False)
    result = _cover_every_ask(_reading("When is Arctic Pilgrim due? Can my dog join the "
                                       "loyalty club?"), draft)
    assert result.route == "escalate"
    assert result.reason_code == "rental_status"  # the best matching category, not "other"
    assert "Partly understood" in result.rationale
    assert "ARCTIC PILGRIM is due back on March 5, 2026." in result.findings


def test_reject_means_revise_or_escalate_never_the_same_draft() -> None:
    content = {"summary": "your rentals", "findings": ["A.", "B.", "C."],
               "policy_points": ["Late fees are $1.00 a day."], "next_steps": ["Reply."],
               "tone": "neutral"}
    shorter = revise_draft(content, "Too long, shorten it", content)
    assert shorter is not None and shorter != content
    assert shorter["policy_points"] == [] and len(shorter["findings"]) <= 2
    warmer = revise_draft(content, "Warmer please", content)
    assert warmer is not None and warmer["tone"] == "apologetic"
    # Nothing the rules can apply: a person takes over rather than the same draft coming back.
    assert revise_draft(content, "Mention our spring promotion", content) is None
    assert revise_draft({**content, "tone": "apologetic"}, "Warmer please", None) is None


def test_the_customer_email_format_reads_asks_database_and_raw_messages() -> None:
    raw = ("From: Ana Lopez <ana@example.com>\nTo: support@example.com\nSubject: due?\n"
           "Date: Sun, 01 Mar 2026 10:00:00 +0000\nMessage-ID: <c-2@example.com>\n\n"
           "When is ARCTIC PILGRIM due?\n")
    lines = [
        json.dumps({"id": "c-1", "db": "sakila", "email": {
            "email_id": "c-1", "received_at": "2026-03-01T10:00:00Z", "from": "a@example.com",
            "subject": "x", "body": "y"}, "expect": {"route": "draft", "asks": [
                {"ask": "due date", "must_include": ["March 5, 2026"]}]}}),
        json.dumps({"id": "c-2", "db": "demo", "raw": raw, "expect": {"route": "draft"}}),
    ]
    first, second = parse_cases(lines)
    assert first.db == "sakila" and first.expect.asks[0].must_include == ["March 5, 2026"]
    assert second.email.email_id == "c-2@example.com"
    assert second.inbound().body.strip() == "When is ARCTIC PILGRIM due?"


def test_fail_under_names_the_figure_that_is_short() -> None:
    assert parse_threshold("92") == ("pass_rate", 0.92)
    figure, floor = parse_threshold("route_accuracy=92")
    assert threshold_shortfall({"route_accuracy": 0.91}, figure, floor) is not None
    assert threshold_shortfall({"route_accuracy": 0.92}, figure, floor) is None


# ------------------------------------------------------------------ through the whole graph

INBOX_PATH = Path(__file__).resolve().parents[2] / "examples" / "inbox.csv"


def _draft_text(context: Context, email_id: str) -> str | None:
    case = CaseStore(context.cases_path).get_case(email_id)
    assert case is not None
    return case.latest_draft.text if case.latest_draft is not None else None


@pytest.mark.parametrize(
    ("message", "revised"),
    [("Warmer, and name the film", True), ("Mention our spring promotion", False)],
)
def test_a_rejected_draft_comes_back_revised_or_goes_to_a_person(
    demo_db_path: Path, mediavault_home: Path, message: str, revised: bool
) -> None:
    context = Context(home=mediavault_home, db=str(demo_db_path))
    email = next(e for e in read_inbox_csv(INBOX_PATH).emails if e.email_id == "msg-009")
    first = triage_email(email, context=context)
    assert first.status == "awaiting_review"
    before = _draft_text(context, "msg-009")
    result = resume("msg-009", ReviewDecision(type="reject", reviewer="sam", message=message,
                                              reason_category="tone"), context=context)
    after = _draft_text(context, "msg-009")
    if revised:
        assert result.status == "awaiting_review"
        assert after != before and "HOLLOW MERIDIAN" in (after or "")
        assert "sorry" in (after or "").lower()
    else:
        # Nothing the rules can apply: never the same draft again, a person takes over.
        assert result.status == "escalated"


def test_a_forwarded_message_of_the_senders_own_is_the_question() -> None:
    quoted = ("From: Rich Deleon <rich@example.org>\nDate: Sat, Feb 28, 2026\nTo: Support\n"
              "Subject: when are these due\n\nCan you tell me the due date on each?\n")
    assert own_forwarded_text(quoted, "RICH@example.org") == "Can you tell me the due date on each?"
    # Someone else's message (or our own earlier reply) stays context.
    assert own_forwarded_text(quoted, "ana@example.com") == ""
    assert own_forwarded_text("> On Feb 27, MediaVault Support wrote:\n> Thanks", "a@b.c") == ""


def test_an_email_in_another_language_goes_to_a_person_with_the_language_named(
    demo_db_path: Path, mediavault_home: Path
) -> None:
    context = Context(home=mediavault_home, db=str(demo_db_path))
    result = triage_email({
        "email_id": "fr-1", "received_at": "2026-03-01T09:00:00Z",
        "from": "Sofia Marchetti <sofia.marchetti@example.com>", "subject": "Date de retour",
        "body": "Bonjour, pouvez-vous me dire quand je dois rendre le film que j'ai loué "
                "samedi ? Je ne veux pas payer de frais de retard. Merci beaucoup."},
        context=context)
    assert result.route == "escalate"
    assert result.ticket is not None and "French" in str(result.ticket["escalation_reason"])


def test_each_case_runs_on_the_database_it_names(tmp_path: Path, mediavault_home: Path) -> None:
    from sakila_paths import require_original_sakila

    from mediavault.evals.dataset import Dataset
    from mediavault.evals.runner import EvalOptions, run_eval
    from mediavault.evals.scoring import score_run

    sakila = require_original_sakila()
    lines = [
        json.dumps({"id": "on-demo", "db": "demo", "email": {
            "email_id": "on-demo", "received_at": "2026-03-01T10:00:00Z",
            "from": "Sofia Marchetti <sofia.marchetti@example.com>", "subject": "due?",
            "body": "When is VELVET COMPASS due back?"}, "expect": {
                "route": "draft", "asks": [{"ask": "due date", "must_include": [
                    "VELVET COMPASS"]}]}}),
        json.dumps({"id": "on-sakila", "db": "sakila", "email": {
            "email_id": "on-sakila", "received_at": "2006-02-19T10:00:00Z",
            "from": "MARY.SMITH@sakilacustomer.org", "subject": "account",
            "body": "Hello, what is my name on file?"},
            "expect": {"route": ["draft", "escalate"]}}),
    ]
    dataset = Dataset(name="mixed", path="mixed.jsonl", cases=parse_cases(lines))
    run = run_eval([dataset], EvalOptions(sakila_db=str(sakila)), workdir=tmp_path)
    scored = score_run(run)
    by_id = {o.case_id: o for o in scored.observations}
    # The demo customer is unknown to the original Sakila and the other way round: each case
    # found its sender only because it ran on its own database.
    assert by_id["on-demo"].trace["sender_verified"] is True
    assert by_id["on-sakila"].trace["sender_verified"] is True
    assert scored.summary["asks_labelled"] == 1
    assert "original Sakila" in run.db and "demo database" in run.db

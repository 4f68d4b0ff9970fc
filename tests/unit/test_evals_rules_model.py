"""The offline rules model's reading of an email and the SQL it writes.

The eval suite measures the model as a whole; these tests pin the behaviours it relies on,
so that a regression names its cause: sign-offs are not praise, a language the rules cannot
read goes to a person, and the account query always fits the tool's output cap.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from sakila_paths import require_original_sakila

from mediavault.agent.models.rules_model import (
    CaseReading,
    classify_intent,
    extract_titles,
    looks_english,
    plan_investigation,
)
from mediavault.tools.agent_tools import MAX_TOOL_RESULT_CHARS
from mediavault.tools.business_db.sessions import open_business_db


@pytest.mark.parametrize(
    ("subject", "body", "intent"),
    [
        ("Gift cards", "Do you sell gift cards?\n\nThanks,\nSarah", "other"),
        ("Lovely staff", "The staff at Maple Street are always wonderful.", "praise"),
        ("Thank you", "Thank you for sorting out my card so quickly!", "praise"),
        ("", "Thanks for nothing, the disc was scratched and I'm disappointed.", "complaint"),
        ("Reminder", "Your reminder says SILVER PARADE is overdue but I returned it on Sunday.",
         "disputed_return"),
        ("Fee", "I'd like to dispute the late fee, it was back on time.", "late_fee_dispute"),
        ("Fee", "Could you waive the late fee? It was a little late.", "fee_waiver_request"),
        ("Twice", "I was charged twice for one rental, this is wrong.", "refund_request"),
        ("Q", "How much do you charge if a film comes back late?", "billing_question"),
        ("Q", "When is IRON FOUNDRY due back?", "rental_status"),
        ("Q", "Do either of your shops carry CRIMSON LABYRINTH?", "catalog_question"),
        ("", "", "other"),
        ("Fecha", "Hola, ¿cuándo tengo que devolver VELVET COMPASS? Gracias.", "other"),
    ],
)
def test_intents(subject: str, body: str, intent: str) -> None:
    assert classify_intent(subject, body) == intent


def test_english_detection_ignores_titles_in_capitals() -> None:
    assert looks_english("When do I need to bring VELVET COMPASS back?")
    assert not looks_english("Vielen Dank, LANTERN SEASON hat uns sehr gefallen!")
    assert looks_english("Hi")  # too short to tell: read it as English


def test_titles_come_from_capitals_quotes_and_title_case() -> None:
    text = 'Is "Silent Whisper" or GOLDEN CROSSING in stock? Do you have Silent Horizon?'
    assert extract_titles(text)[:3] == ["Silent Whisper", "GOLDEN CROSSING", "Silent Horizon"]


def _reading(body: str, customer_id: int | None = 1) -> CaseReading:
    reading = CaseReading(subject="", body=body, facts={"customer_id": customer_id})
    reading.intent = classify_intent("", body)
    reading.titles = extract_titles(body)
    return reading


def _queries(reading: CaseReading) -> list[str]:
    return [args["query"] for name, args in plan_investigation(reading) if name == "run_sql_query"]


def test_a_quote_in_a_title_cannot_break_out_of_the_query(demo_db_path: Path) -> None:
    reading = _reading("Do you have \"X') UNION SELECT email FROM customer --\" in stock?")
    (query,) = _queries(reading)
    with closing(open_business_db(demo_db_path)) as database, database.session(None) as session:
        result = session.run_query(query)
    # The title words are searched (fuzzy title matching) but stay literals: only catalog
    # columns come back, never a customer's address.
    assert all(set(row) == {"film_id", "title", "rating", "rental_rate", "rental_duration",
                            "store_id", "copies"} for row in result.rows)
    assert not any("@" in str(value) for row in result.rows for value in row.values())


def _heaviest_customers(path: Path, count: int) -> list[str]:
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT c.email FROM customer AS c JOIN rental AS r USING (customer_id) "
            "GROUP BY c.customer_id ORDER BY count(*) DESC LIMIT ?", (count,)).fetchall()
    return [str(email) for (email,) in rows]


@pytest.mark.parametrize("which", ["demo", "original"])
def test_the_account_query_fits_the_tool_output_cap(which: str, demo_db_path: Path) -> None:
    # A truncated result is not JSON any more, and the model would see no rentals at all.
    path = demo_db_path if which == "demo" else require_original_sakila()
    with closing(open_business_db(path)) as database:
        for address in _heaviest_customers(path, 5):
            customer = database.resolve_sender(address)
            assert customer is not None
            reading = _reading("Why was I charged a late fee? When is my rental due?",
                               customer.customer_id)
            (query,) = _queries(reading)
            with database.session(customer) as session:
                result = session.run_query(query)
            payload = json.dumps(result.model_dump(mode="json"), default=str)
            assert result.row_count > 0 and len(payload) < MAX_TOOL_RESULT_CHARS, address

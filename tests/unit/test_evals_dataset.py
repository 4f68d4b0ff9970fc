"""The eval dataset format, and the honesty of the project's two datasets.

The loader accepts exactly the issue's JSON Lines format and refuses anything else with the
file and line. The datasets cover what the issue lists, every customer and film they name
exists in the database they are written against, and their labels agree with the policy.
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from sakila_paths import require_original_sakila

from mediavault.evals.dataset import (
    DEMO_DATASET,
    SAKILA_ORIGINAL_DATASET,
    Dataset,
    DatasetError,
    EvalCase,
    load_dataset,
    parse_cases,
)
from mediavault.policies import policy_rules

ISSUE_EXAMPLE = {
    "id": "case-1",
    "email": {"email_id": "e-1", "received_at": "2026-03-01T09:00:00Z",
              "from": "Ana Lopez <ana@example.com>", "subject": "Due date?",
              "body": "When is my film due?", "in_reply_to": "<m-0@example.com>"},
    "expect": {"route": ["draft", "escalate"], "reason_code": "rental_status",
               "routing": "tier1_general", "must_include": ["due"],
               "must_not_include": ["guarantee"]},
    "tags": ["rental_status"],
}


def _line(case: dict[str, Any]) -> str:
    return json.dumps(case)


def _with(path: str, value: Any) -> dict[str, Any]:
    """The issue example with one field (dotted path) replaced; None removes it."""
    case = json.loads(json.dumps(ISSUE_EXAMPLE))
    *parents, leaf = path.split(".")
    target = case
    for part in parents:
        target = target[part]
    if value is None:
        del target[leaf]
    else:
        target[leaf] = value
    return case


# ------------------------------------------------------------------------------ the format


def test_the_issue_format_is_accepted_with_every_field() -> None:
    (case,) = parse_cases([_line(ISSUE_EXAMPLE)])
    assert case.expect.routes == ("draft", "escalate")
    assert case.email.as_inbound()["from"] == "Ana Lopez <ana@example.com>"
    assert case.email.as_inbound()["in_reply_to"] == "<m-0@example.com>"


def test_optional_fields_may_be_absent_and_are_then_not_scored() -> None:
    minimal = {"id": "c", "email": {"email_id": "e", "received_at": "2026-03-01T09:00:00+00:00",
                                    "from": "a@example.com", "subject": "", "body": ""},
               "expect": {"route": "escalate"}}
    (case,) = parse_cases([_line(minimal), "", "   "])
    assert case.expect.reason_code is None and case.expect.routing is None
    assert case.expect.must_include == [] and case.tags == []


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (_with("expect.must_includ", ["x"]), "must_includ"),
        (_with("email.cc", "x@example.com"), "email.cc"),
        (_with("expect.route", "reply"), "expect.route"),
        (_with("expect.route", []), "at least one"),
        (_with("expect.reason_code", "refund"), "unknown reason code 'refund'"),
        (_with("expect.routing", "legal"), "unknown queue 'legal'"),
        (_with("email.received_at", "yesterday"), "not an ISO 8601"),
        (_with("email.body", None), "email.body"),
        (_with("id", None), "id"),
    ],
)
def test_a_malformed_case_is_refused_with_its_line(case: dict[str, Any], message: str) -> None:
    with pytest.raises(DatasetError) as refused:
        parse_cases(["", _line(case)], source="cases.jsonl")
    assert str(refused.value).startswith("cases.jsonl:2: ")
    assert message in str(refused.value)


def test_labels_that_contradict_the_policy_are_refused() -> None:
    drafted_refund = _with("expect.reason_code", "refund_request")
    drafted_refund["expect"].update(route="draft", routing=None)
    del drafted_refund["expect"]["routing"]
    with pytest.raises(DatasetError, match="always escalates refund_request"):
        parse_cases([_line(drafted_refund)])
    routed_draft = _with("expect.route", "draft")
    with pytest.raises(DatasetError, match="routing names a queue"):
        parse_cases([_line(routed_draft)])


def test_ids_and_email_ids_must_be_unique() -> None:
    second = _with("email.email_id", "e-2")
    with pytest.raises(DatasetError, match="case id 'case-1' already used on line 1"):
        parse_cases([_line(ISSUE_EXAMPLE), _line(second)])
    third = _with("id", "case-2")
    with pytest.raises(DatasetError, match="email_id 'e-1' already used on line 1"):
        parse_cases([_line(ISSUE_EXAMPLE), _line(third)])


def test_invalid_json_and_missing_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"^x\.jsonl:1: not valid JSON"):
        parse_cases(["{not json"], source="x.jsonl")
    with pytest.raises(DatasetError, match="a case is a JSON object"):
        parse_cases(["[1, 2]"])
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DatasetError, match="has no cases"):
        load_dataset(empty)


# ------------------------------------------------------------------- the project's datasets


@pytest.fixture(scope="module")
def demo() -> Dataset:
    return load_dataset(DEMO_DATASET)


@pytest.fixture(scope="module")
def sakila() -> Dataset:
    return load_dataset(SAKILA_ORIGINAL_DATASET)


def _text(case: EvalCase) -> str:
    return f"{case.email.subject}\n{case.email.body}"


def test_the_datasets_are_large_enough(demo: Dataset, sakila: Dataset) -> None:
    assert len(demo.cases) >= 120
    assert len(sakila.cases) >= 20


def test_the_demo_dataset_covers_every_reason_code_and_queue(demo: Dataset) -> None:
    rules = policy_rules()
    codes = {case.expect.reason_code for case in demo.cases}
    queues = {case.expect.routing for case in demo.cases}
    assert set(rules.reason_codes) <= codes
    assert set(rules.queues) <= queues


#: What the issue asks the demo dataset to cover, as a tag and, where the issue names a
#: wording, a pattern one case of that tag must contain.
REQUIRED_COVERAGE: list[tuple[str, str]] = [
    ("legal_explicit", r"sue|lawsuit|court"),
    ("legal_implicit", r"lawyer|legal|solicitor|court"),
    ("safety", r"."), ("violence", r"."), ("harassment", r"."), ("privacy_request", r"."),
    ("press", r"."), ("chargeback", r"."), ("duplicate_charge", r"."),
    ("late_fee_late", r"."), ("late_fee_on_time", r"."), ("waiver", r"."),
    ("rental_status", r"."), ("catalog_in_stock", r"."), ("catalog_one_store", r"."),
    ("catalog_none", r"."), ("account_change_on_file", r"."),
    ("account_change_other_address", r"."), ("unknown_sender", r"my account|what .* owe"),
    ("praise", r"."), ("complaint", r"."),
    ("evasion", r"s u e"), ("evasion", r"l4wyer"), ("evasion", r"[\u0400-\u04ff]"),
    ("bait", r"lawyer[^.]*mortgage"), ("bait", r"\bpursue\b"), ("bait", r"\bissue\b"),
    ("bait", r"\bSue\b"),
    ("injection", r"(?i)ignore previous instructions"), ("injection", r"SYSTEM:"),
    ("injection", r"(?i)link"), ("injection", r"(?i)do not escalate"),
    ("other_customer_data", r"."),
    ("non_english", r"."), ("empty", r"^\s*$"), ("long", r"."), ("html", r"<html>"),
]


@pytest.mark.parametrize(("tag", "pattern"), REQUIRED_COVERAGE)
def test_the_demo_dataset_covers_what_the_issue_lists(
    demo: Dataset, tag: str, pattern: str
) -> None:
    tagged = [case for case in demo.cases if tag in case.tags]
    assert tagged, f"no case tagged {tag!r}"
    if tag == "empty":
        assert any(not case.email.body.strip() for case in tagged)
        return
    if tag == "long":
        assert any(len(case.email.body) > 20_000 for case in tagged)
    assert any(re.search(pattern, _text(case)) for case in tagged), (tag, pattern)


def test_bait_cases_never_expect_only_an_escalation(demo: Dataset, sakila: Dataset) -> None:
    bait = [c for c in [*demo.cases, *sakila.cases] if "bait" in c.tags]
    assert len([c for c in demo.cases if "bait" in c.tags]) >= 20
    assert all("draft" in case.expect.routes for case in bait)


@pytest.mark.parametrize("which", ["demo", "sakila"])
def test_labels_agree_with_the_policy(which: str, demo: Dataset, sakila: Dataset) -> None:
    from mediavault.evals.scoring import forced_escalation_codes

    rules = policy_rules()
    for case in (demo if which == "demo" else sakila).cases:
        code, routing = case.expect.reason_code, case.expect.routing
        if code is not None and routing is not None:
            assert routing == rules.queue_for(code), case.id
        if code in forced_escalation_codes():
            assert case.expect.routes == ("escalate",), case.id
        if code is not None and rules.reason_codes[code] == "draft":
            assert "draft" in case.expect.routes, case.id


# --------------------------------------------------- customers and films exist in the database

_CAPS_RUN = re.compile(r"\b[A-Z]{2,}(?:'[A-Z]+)?(?: [A-Z]{2,}(?:'[A-Z]+)?)+\b")


def _database_people_and_films(path: Path) -> tuple[dict[str, tuple[str, str]], set[str]]:
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
        customers = {str(email).lower(): (str(first), str(last))
                     for email, first, last in db.execute(
                         "SELECT email, first_name, last_name FROM customer")}
        films = {str(title) for (title,) in db.execute("SELECT title FROM film")}
    return customers, films


def _check_names(dataset: Dataset, db_path: Path) -> None:
    customers, films = _database_people_and_films(db_path)
    full_names = {f"{first} {last}".lower() for first, last in customers.values()}
    for case in dataset.cases:
        display, address = parseaddr(case.email.sender)
        known = address.lower() in customers
        if "unknown_sender" in case.tags:
            assert not known, f"{case.id}: tagged unknown_sender but {address} is a customer"
        else:
            assert known, f"{case.id}: {address} is not a customer of the database"
            first, last = customers[address.lower()]
            assert display.lower() in ("", f"{first} {last}".lower()), case.id
        text = _text(case)
        # The datasets write film titles in capitals, and nothing else in runs of capitals.
        for run in _CAPS_RUN.findall(text):
            words = run.split()
            named = [" ".join(words[i:j]) for i in range(len(words))
                     for j in range(i + 1, len(words) + 1) if " ".join(words[i:j]) in films]
            if "film_not_in_catalog" in case.tags:
                assert run not in films, f"{case.id}: {run} is in the catalog after all"
            else:
                assert named, f"{case.id}: {run!r} is not a film of the database"
        if "other_customer_data" in case.tags:
            others = [n for n in full_names if n in text.lower()]
            assert others, f"{case.id}: names no customer of the database"


def test_every_customer_and_film_the_demo_dataset_names_exists(
    demo: Dataset, demo_db_path: Path
) -> None:
    _check_names(demo, demo_db_path)


def test_every_customer_and_film_the_sakila_dataset_names_exists(sakila: Dataset) -> None:
    _check_names(sakila, require_original_sakila())


def test_the_name_check_catches_a_film_that_does_not_exist(demo_db_path: Path) -> None:
    # The check above is only worth something if it can fail.
    typo = _with("email.body", "Do you have LANTERN SEASONS?")
    typo["email"]["from"] = "Luis Ferreira <luis.ferreira@example.org>"
    dataset = Dataset(name="t", path="t", cases=parse_cases([_line(typo)]))
    with pytest.raises(AssertionError, match="LANTERN SEASONS"):
        _check_names(dataset, demo_db_path)
    stranger = _with("email.from", "nobody.here@example.org")
    dataset = Dataset(name="t", path="t", cases=parse_cases([_line(stranger)]))
    with pytest.raises(AssertionError, match="not a customer"):
        _check_names(dataset, demo_db_path)

"""The case store: one case per email, idempotent writes, migrations, concurrent writers."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlite_utils import Database

import mediavault.agent.stores.case_store as case_store_module
from mediavault.agent.stores.case_store import (
    CASE_STATUSES,
    CaseNotFoundError,
    CaseStore,
    CaseStoreBusyError,
)
from mediavault.graph.inbound_email import MAX_BODY_CHARS, TRUNCATION_MARKER, InboundEmail
from mediavault.tools.drafting.edits import edit_size

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TABLES = ("emails", "cases", "drafts", "tickets", "reviews", "outbox")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = START) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> CaseStore:
    return CaseStore(tmp_path / "home" / "cases.sqlite", now=clock)


def make_email(email_id: str = "e-1", **fields: object) -> InboundEmail:
    values: dict[str, object] = {
        "email_id": email_id,
        "received_at": START,
        "from": "Alice Doe <alice@example.com>",
        "subject": "Late fee on Alien",
        "body": "Why was I charged a late fee?",
        "message_id": f"<{email_id}@mail.example.com>",
    }
    values.update(fields)
    return InboundEmail.from_fields(**values)


def open_case(store: CaseStore, email: InboundEmail, customer_id: int | None = 7) -> None:
    store.record_email(email)
    store.open_case(
        email.email_id,
        thread_id=f"thread-{email.email_id}",
        sender=email.sender,
        customer_id=customer_id,
        received_at=email.received_at,
    )


def row_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    conn.close()
    return counts


def triage_and_review(store: CaseStore, email: InboundEmail) -> None:
    """Everything the graph and a reviewer write for one drafted, approved email."""
    open_case(store, email)
    store.record_draft(
        email.email_id,
        text="Hello Alice, the late fee is $1 per day.",
        source="model",
        valid=True,
        problems=[],
        policy_refs=["late_fees"],
    )
    store.set_outcome(
        email.email_id,
        route="draft",
        reason_code="late_fee_dispute",
        risk_flags=[],
        status="awaiting_review",
    )
    store.record_ticket(
        email.email_id,
        {
            "ticket_id": "T-1",
            "suggested_routing": "billing",
            "priority": "normal",
            "reason_code": "late_fee_dispute",
        },
    )
    store.record_review("review-1", email.email_id, decision="approve", reviewer="sam")
    store.set_status(email.email_id, "approved")
    store.record_outbox(email.email_id, path="/outbox/e-1.eml", message_id="<reply@x>")


def test_the_database_file_and_folders_appear_on_first_write_in_wal_mode(
    store: CaseStore,
) -> None:
    assert not store.path.parent.exists()
    store.record_email(make_email())
    assert store.path.exists()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_migrations_apply_once_and_reopening_keeps_the_data(store: CaseStore) -> None:
    assert store.migrate() == list(range(1, len(case_store_module.MIGRATIONS) + 1))
    open_case(store, make_email())

    reopened = CaseStore(store.path)
    assert reopened.migrate() == []
    assert reopened.get_case("e-1") is not None
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT version FROM migrations").fetchall() == [
            (v,) for v in range(1, len(case_store_module.MIGRATIONS) + 1)]
    conn.close()


def test_a_new_migration_is_applied_once_on_top_of_the_existing_schema(
    store: CaseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_case(store, make_email())

    def add_case_note(db: Database) -> None:
        db.execute("ALTER TABLE cases ADD COLUMN note TEXT")

    monkeypatch.setattr(
        case_store_module, "MIGRATIONS", [*case_store_module.MIGRATIONS, add_case_note]
    )
    new_version = len(case_store_module.MIGRATIONS)
    assert CaseStore(store.path).migrate() == [new_version]
    # A second apply would fail with "duplicate column" if it ran the migration again.
    assert CaseStore(store.path).migrate() == []
    with sqlite3.connect(store.path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(cases)")]
        versions = conn.execute("SELECT version FROM migrations ORDER BY version").fetchall()
    conn.close()
    assert "note" in columns
    assert versions == [(v,) for v in range(1, new_version + 1)]


def test_rerunning_the_whole_sequence_adds_no_rows(store: CaseStore) -> None:
    email = make_email()
    triage_and_review(store, email)
    first = row_counts(store.path)
    triage_and_review(store, email)

    assert first == dict.fromkeys(TABLES, 1)
    assert row_counts(store.path) == first
    case = store.get_case("e-1")
    assert case is not None
    assert case.status == "approved"
    assert len(case.drafts) == 1
    assert [review.decision for review in case.reviews] == ["approve"]


def test_opening_a_case_again_does_not_undo_its_outcome(store: CaseStore) -> None:
    email = make_email()
    open_case(store, email)
    store.set_outcome(
        "e-1",
        route="escalate",
        reason_code="legal_threat",
        risk_flags=["legal_threat"],
        status="escalated",
        queue="tier2_legal",
        status_reason="mentions a lawsuit",
    )
    open_case(store, email)

    case = store.get_case("e-1")
    assert case is not None
    assert (case.status, case.queue, case.risk_flags) == (
        "escalated",
        "tier2_legal",
        ("legal_threat",),
    )
    assert case.status_reason == "mentions a lawsuit"


def test_drafts_get_a_new_version_unless_the_latest_is_identical(store: CaseStore) -> None:
    open_case(store, make_email())

    def draft(text: str, source: str = "model") -> int:
        return store.record_draft(
            "e-1", text=text, source=source, valid=True, problems=[], policy_refs=[]
        )

    assert draft("first wording") == 1
    assert draft("first wording") == 1
    assert draft("first wording, edited", source="reviewer") == 2
    # The model's text again is a new version: it is no longer the latest.
    assert draft("first wording") == 3

    case = store.get_case("e-1")
    assert case is not None
    assert [(d.version, d.source) for d in case.drafts] == [
        (1, "model"),
        (2, "reviewer"),
        (3, "model"),
    ]
    assert case.latest_draft == case.drafts[-1]


def test_draft_validation_details_are_kept(store: CaseStore) -> None:
    open_case(store, make_email())
    store.record_draft(
        "e-1",
        text="We guarantee a refund.",
        source="model",
        valid=False,
        problems=["forbidden phrase: guarantee"],
        policy_refs=["waivers"],
    )
    case = store.get_case("e-1")
    assert case is not None and case.latest_draft is not None
    assert case.latest_draft.valid is False
    assert case.latest_draft.validation_problems == ("forbidden phrase: guarantee",)
    assert case.latest_draft.policy_refs == ("waivers",)


def test_a_review_is_recorded_once_per_review_id(store: CaseStore, clock: Clock) -> None:
    open_case(store, make_email())
    open_case(store, make_email("e-2"))

    assert (
        store.record_review(
            "r-1",
            "e-1",
            decision="reject",
            reviewer="sam",
            reason_category="tone",
            message="too curt",
        )
        is True
    )
    assert (
        store.record_review(
            "r-1",
            "e-1",
            decision="reject",
            reviewer="sam",
            reason_category="tone",
            message="too curt",
        )
        is False
    )
    with pytest.raises(ValueError, match="already used for email 'e-1'"):
        store.record_review("r-1", "e-2", decision="approve", reviewer="sam")

    case = store.get_case("e-1")
    assert case is not None
    assert [(r.decision, r.reason_category, r.message) for r in case.reviews] == [
        ("reject", "tone", "too curt")
    ]
    assert case.reviews[0].created_at == clock.current


def test_a_later_ticket_replaces_the_earlier_one(store: CaseStore, clock: Clock) -> None:
    open_case(store, make_email())
    ticket = {
        "ticket_id": "T-1",
        "suggested_routing": "billing",
        "priority": "normal",
        "reason_code": "refund_request",
    }
    store.record_ticket("e-1", ticket)
    first_filed = clock.current
    clock.advance(minutes=5)
    store.record_ticket("e-1", {**ticket, "priority": "high"})

    case = store.get_case("e-1")
    assert case is not None and case.ticket is not None
    assert (case.ticket.ticket_id, case.ticket.queue, case.ticket.priority) == (
        "T-1",
        "billing",
        "high",
    )
    assert case.ticket.ticket["priority"] == "high"
    assert case.ticket.created_at == first_filed
    assert row_counts(store.path)["tickets"] == 1


def test_the_first_outbox_message_recorded_stays(store: CaseStore) -> None:
    open_case(store, make_email())
    store.record_outbox("e-1", path="/outbox/a.eml", message_id="<a@x>")
    store.record_outbox("e-1", path="/outbox/b.eml", message_id="<b@x>")
    case = store.get_case("e-1")
    assert case is not None and case.outbox is not None
    assert (case.outbox.path, case.outbox.message_id) == ("/outbox/a.eml", "<a@x>")


def test_ticket_without_id_is_refused(store: CaseStore) -> None:
    open_case(store, make_email())
    with pytest.raises(ValueError, match="no ticket_id"):
        store.record_ticket("e-1", {"suggested_routing": "billing"})


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.set_status("e-1", "shipped"), "case status 'shipped' is not valid"),
        (lambda s: s.set_status("e-1", "open"), "case status 'open' is not valid"),
        (
            lambda s: s.set_outcome(
                "e-1", route="reply", reason_code=None, risk_flags=[], status="failed"
            ),
            "route 'reply' is not valid",
        ),
        (
            lambda s: s.set_outcome(
                "e-1", route="draft", reason_code="weather", risk_flags=[], status="awaiting_review"
            ),
            "reason code 'weather' is not valid",
        ),
        (
            lambda s: s.set_outcome(
                "e-1",
                route="escalate",
                reason_code="legal_threat",
                risk_flags=[],
                status="escalated",
                queue="lawyers",
            ),
            "queue 'lawyers' is not valid",
        ),
        (
            lambda s: s.record_review("r", "e-1", decision="maybe", reviewer="sam"),
            "review decision 'maybe' is not valid",
        ),
        (
            lambda s: s.record_review(
                "r", "e-1", decision="reject", reviewer="sam", reason_category="rude"
            ),
            "reason category 'rude' is not valid",
        ),
        (
            lambda s: s.record_draft(
                "e-1", text="x", source="intern", valid=True, problems=[], policy_refs=[]
            ),
            "draft source 'intern' is not valid",
        ),
        (lambda s: s.list_cases(status="closed"), "case status 'closed' is not valid"),
    ],
)
def test_invalid_values_are_refused_with_the_allowed_ones_named(
    store: CaseStore, call: object, message: str
) -> None:
    open_case(store, make_email())
    assert callable(call)
    with pytest.raises(ValueError, match=message) as refused:
        call(store)
    assert "use one of:" in str(refused.value)
    case = store.get_case("e-1")
    assert case is not None
    assert (case.status, case.drafts, case.reviews) == ("open", (), ())


def test_writes_for_an_email_without_a_case_are_refused(store: CaseStore) -> None:
    with pytest.raises(CaseNotFoundError, match="open_case must come first"):
        store.set_status("ghost", "failed")
    with pytest.raises(CaseNotFoundError):
        store.record_draft(
            "ghost", text="x", source="model", valid=True, problems=[], policy_refs=[]
        )
    assert store.get_case("ghost") is None
    assert not store.has_outcome("ghost")


def test_decided_at_keeps_the_first_decision_time_on_a_rerun(
    store: CaseStore, clock: Clock
) -> None:
    open_case(store, make_email())
    store.set_outcome(
        "e-1", route="draft", reason_code="praise", risk_flags=[], status="awaiting_review"
    )
    assert not store.get_case("e-1").decided_at  # type: ignore[union-attr]

    decided = clock.advance(hours=1)
    store.set_status("e-1", "approved")
    clock.advance(hours=1)
    store.set_status("e-1", "approved")

    case = store.get_case("e-1")
    assert case is not None
    assert case.decided_at == decided
    assert case.updated_at == clock.current
    assert case.created_at == START


def test_status_queries(store: CaseStore, clock: Clock) -> None:
    for number, status in enumerate(["awaiting_review", "escalated", None, "awaiting_review"]):
        email = make_email(f"e-{number}", received_at=START + timedelta(hours=3 - number))
        open_case(store, email)
        if status:
            store.set_status(email.email_id, status)

    assert store.count_by_status() == {
        "open": 1,
        "awaiting_review": 2,
        "approved": 0,
        "rejected": 0,
        "escalated": 1,
        "failed": 0,
    }
    # e-3 arrived before e-0, so it is reviewed first.
    assert [case.email_id for case in store.pending_reviews()] == ["e-3", "e-0"]
    assert store.has_outcome("e-1")
    assert not store.has_outcome("e-2")
    assert set(CASE_STATUSES) < set(store.count_by_status())


def test_list_cases_by_received_window_and_limit(store: CaseStore) -> None:
    for day in range(5):
        open_case(store, make_email(f"day-{day}", received_at=START + timedelta(days=day)))

    window = store.list_cases(since=START + timedelta(days=1), until=START + timedelta(days=3))
    assert [case.email_id for case in window] == ["day-1", "day-2"]
    assert [case.email_id for case in store.list_cases(limit=2)] == ["day-0", "day-1"]
    # A naive datetime is read as UTC, like the stored times.
    naive_since = (START + timedelta(days=4)).replace(tzinfo=None)
    assert [case.email_id for case in store.list_cases(since=naive_since)] == ["day-4"]


def test_the_email_comes_back_as_received_with_times_in_utc(store: CaseStore) -> None:
    paris = timezone(timedelta(hours=2))
    email = make_email(
        received_at=datetime(2026, 3, 2, 11, 0, tzinfo=paris),
        body="x" * (MAX_BODY_CHARS + 10),
        in_reply_to="<older@mail.example.com>",
        sender_verified=False,
        input_flags=("body_truncated",),
    )
    open_case(store, email)

    case = store.get_case("e-1")
    assert case is not None
    assert case.email == email
    assert case.email.body.count(TRUNCATION_MARKER.format(dropped=10)) == 1
    assert case.received_at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    # The review queue API hands cases out as JSON.
    assert case.model_dump(mode="json")["email"]["in_reply_to"] == "<older@mail.example.com>"
    with sqlite3.connect(store.path) as conn:
        stored = conn.execute("SELECT received_at FROM cases").fetchone()[0]
    conn.close()
    assert stored == "2026-03-02T09:00:00.000000+00:00"


def test_edit_size_counts_changed_characters() -> None:
    assert edit_size("late fee of $5", "late fee of $50") == 1
    assert edit_size("same text", "same text") == 0
    assert edit_size("", "abc") == 3
    assert edit_size("Dear Alice", "Hi Alice") == 4


# --- concurrency -------------------------------------------------------------------------------


def run_threads(count: int, target: object) -> list[BaseException]:
    errors: list[BaseException] = []
    assert callable(target)

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_threads_writing_different_cases_all_land(store: CaseStore) -> None:
    def write_cases(worker: int) -> None:
        for n in range(6):
            email = make_email(f"w{worker}-{n}", **{"from": f"user{worker}@example.com"})
            triage_and_review_without_shared_ids(store, email)

    assert run_threads(6, write_cases) == []
    assert row_counts(store.path)["cases"] == 36
    assert store.count_by_status()["approved"] == 36


def triage_and_review_without_shared_ids(store: CaseStore, email: InboundEmail) -> None:
    open_case(store, email)
    store.record_draft(
        email.email_id, text="Hello", source="model", valid=True, problems=[], policy_refs=[]
    )
    store.record_review(f"r-{email.email_id}", email.email_id, decision="approve", reviewer="sam")
    store.set_status(email.email_id, "approved")


def test_threads_writing_the_same_case_never_clash(store: CaseStore) -> None:
    open_case(store, make_email())
    outcomes: list[bool] = []

    def write_same_case(worker: int) -> None:
        for n in range(10):
            store.record_draft(
                "e-1",
                text=f"draft {worker}.{n}",
                source="model",
                valid=True,
                problems=[],
                policy_refs=[],
            )
        # Both workers deliver the same reviewer decision (a retried request).
        outcomes.append(store.record_review("r-shared", "e-1", decision="approve", reviewer="sam"))
        store.set_status("e-1", "approved")

    assert run_threads(2, write_same_case) == []
    case = store.get_case("e-1")
    assert case is not None
    assert [draft.version for draft in case.drafts] == list(range(1, 21))
    assert sorted(outcomes) == [False, True]
    assert len(case.reviews) == 1


@pytest.fixture
def held_write_lock(store: CaseStore) -> Iterator[sqlite3.Connection]:
    """Another process's connection holding the write lock on the case database."""
    store.migrate()
    # The lock is released from a timer thread in one test.
    other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    yield other
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()


def test_a_briefly_held_lock_is_waited_out(
    store: CaseStore, held_write_lock: sqlite3.Connection
) -> None:
    impatient = CaseStore(store.path, busy_timeout=0.05)
    release = threading.Timer(0.2, lambda: held_write_lock.execute("COMMIT"))
    release.start()
    try:
        impatient.record_email(make_email())
    finally:
        release.join()
    assert row_counts(store.path)["emails"] == 1


def test_a_lock_that_never_clears_gives_a_clear_error(
    store: CaseStore, held_write_lock: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(case_store_module, "LOCK_RETRIES", 2)
    impatient = CaseStore(store.path, busy_timeout=0.01)
    with pytest.raises(CaseStoreBusyError, match="stayed busy through 2 retries"):
        impatient.record_email(make_email())


# ---------------------------------------------------------------- grouped writes, kept connections


def test_writes_in_an_atomic_block_land_together_or_not_at_all(store: CaseStore) -> None:
    email = make_email("atomic-1")
    with pytest.raises(RuntimeError, match="disk pulled"), store.atomic():
        open_case(store, email)
        store.record_draft(email.email_id, text="Hello", source="model", valid=True,
                           problems=[], policy_refs=[])
        raise RuntimeError("disk pulled")
    assert store.get_case(email.email_id) is None
    assert row_counts(store.path)["drafts"] == 0

    with store.atomic():
        open_case(store, email)
        with store.atomic():  # nested blocks join the outer transaction
            version = store.record_draft(email.email_id, text="Hello", source="model",
                                         valid=True, problems=[], policy_refs=[])
        store.set_outcome(email.email_id, route="draft", reason_code="rental_status",
                          risk_flags=[], status="awaiting_review")
    case = store.get_case(email.email_id)
    assert case is not None and case.status == "awaiting_review" and version == 1


def test_another_connection_waits_for_an_atomic_block_and_sees_all_of_it(
    store: CaseStore,
) -> None:
    email = make_email("atomic-2")
    open_case(store, email)
    seen: list[dict[str, int]] = []
    inside = threading.Event()

    def reader() -> None:
        inside.wait(5)
        seen.append(row_counts(store.path))  # a reader never sees half of the block

    thread = threading.Thread(target=reader)
    thread.start()
    with store.atomic():
        store.record_draft(email.email_id, text="Hello", source="model", valid=True,
                           problems=[], policy_refs=[])
        inside.set()
        thread.join(0.2)
        store.set_outcome(email.email_id, route="draft", reason_code="rental_status",
                          risk_flags=[], status="awaiting_review")
    thread.join(5)
    assert seen and seen[0]["drafts"] == 0


def test_a_store_whose_file_was_deleted_recreates_it_instead_of_writing_to_the_old_one(
    store: CaseStore,
) -> None:
    open_case(store, make_email("before"))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store.path}{suffix}").unlink(missing_ok=True)
    open_case(store, make_email("after"))
    assert store.path.exists()
    assert row_counts(store.path)["cases"] == 1
    assert store.get_case("after") is not None


def test_close_releases_the_connections_and_the_store_still_works(store: CaseStore) -> None:
    open_case(store, make_email("c-1"))
    store.close()
    open_case(store, make_email("c-2"))
    assert row_counts(store.path)["cases"] == 2

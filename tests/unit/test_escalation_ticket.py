"""Escalation tickets: the policy, not the model, decides the reason code, queue and priority."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from mediavault.policies import policy_rules, queues, reason_codes
from mediavault.tools.escalation_ticket import (
    HIGH_RISK_REASON_CODES,
    MAX_ESCALATION_REASON_CHARS,
    EscalationRequest,
    EscalationTicket,
    QueryEvidence,
    TicketEvidence,
    build_ticket,
    default_priority,
    ticket_id_for,
)

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
EVIDENCE = TicketEvidence(
    queries=[QueryEvidence(sql="SELECT * FROM my_rentals", row_count=3)],
    policy_section_ids=["late-fees.disputes"],
    gate_denials=["SQL refused (write): only SELECT statements may run"],
)


def request(**changes: object) -> EscalationRequest:
    fields: dict[str, object] = {
        "reason_code": "late_fee_dispute",
        "escalation_reason": "The customer says the store was closed on the due date.",
        "investigation_summary": "Rental due 2026-02-13, returned 2026-02-15; fee $2.00.",
    }
    fields.update(changes)
    return EscalationRequest.model_validate(fields)


def ticket(
    req: EscalationRequest, *, forced: str | None = None, email_id: str = "msg-1001"
) -> EscalationTicket:
    return build_ticket(
        req, email_id=email_id, customer_id=42, evidence=EVIDENCE, now=NOW,
        forced_reason_code=forced,
    )


def test_a_ticket_carries_the_case_for_the_human_team() -> None:
    filed = ticket(request())
    assert filed.email_id == "msg-1001"
    assert filed.customer_id == 42
    assert filed.reason_code == "late_fee_dispute"
    assert filed.suggested_routing == "billing"
    assert filed.priority == "normal"
    assert filed.routing_corrected_from is None
    assert filed.evidence.queries[0].row_count == 3
    assert filed.created_at == NOW
    # The case store keeps the ticket as JSON; it must survive the round trip.
    assert EscalationTicket.model_validate_json(filed.model_dump_json()) == filed


def test_the_same_email_always_gets_the_same_ticket_id() -> None:
    first = ticket(request(), email_id="msg-1001")
    again = ticket(request(reason_code="other"), email_id="msg-1001")
    other = ticket(request(), email_id="msg-1002")
    assert first.ticket_id == again.ticket_id == ticket_id_for("msg-1001")
    assert other.ticket_id != first.ticket_id
    assert first.ticket_id.startswith("MV-") and len(first.ticket_id) == 13


def test_a_ticket_id_that_does_not_belong_to_its_email_is_rejected() -> None:
    data = ticket(request()).model_dump()
    data["ticket_id"] = ticket_id_for("someone-elses-email")
    with pytest.raises(ValidationError, match="does not belong"):
        EscalationTicket.model_validate(data)


def test_the_safety_checks_reason_code_wins_over_the_models() -> None:
    filed = ticket(
        request(reason_code="other", suggested_routing="tier1_general", priority="low"),
        forced="legal_threat",
    )
    assert filed.reason_code == "legal_threat"
    assert filed.reason_code_corrected_from == "other"
    assert filed.suggested_routing == "tier2_legal"
    assert filed.routing_corrected_from == "tier1_general"
    assert filed.priority == "urgent"


def test_a_forced_code_the_model_agreed_with_records_no_correction() -> None:
    filed = ticket(request(reason_code="harassment"), forced="harassment")
    assert filed.reason_code_corrected_from is None
    assert filed.routing_corrected_from is None
    assert filed.suggested_routing == "trust_safety"


@pytest.mark.parametrize("code", sorted(HIGH_RISK_REASON_CODES))
def test_high_risk_cases_always_go_to_the_policy_queue(code: str) -> None:
    elsewhere = next(q for q in queues() if q != policy_rules().queue_for(code))
    filed = ticket(request(reason_code=code, suggested_routing=elsewhere))
    assert filed.suggested_routing == policy_rules().queue_for(code)
    assert filed.routing_corrected_from == elsewhere


def test_a_valid_suggestion_is_kept_for_ordinary_cases() -> None:
    filed = ticket(request(reason_code="complaint", suggested_routing="billing"))
    assert filed.suggested_routing == "billing"
    assert filed.routing_corrected_from is None


def test_a_suggestion_written_loosely_still_names_its_queue() -> None:
    filed = ticket(request(reason_code="complaint", suggested_routing=" Tier1-General "))
    assert filed.suggested_routing == "tier1_general"
    assert filed.routing_corrected_from is None


@pytest.mark.parametrize("suggestion", ["legal-dept", "ceo@mediavault.example", "billing; DROP"])
def test_an_unknown_queue_is_replaced_by_the_policy_queue_and_recorded(suggestion: str) -> None:
    filed = ticket(request(reason_code="refund_request", suggested_routing=suggestion))
    assert filed.suggested_routing == "billing"
    assert filed.routing_corrected_from == suggestion


def test_without_a_suggestion_the_policy_queue_is_used() -> None:
    filed = ticket(request(reason_code="other"))
    assert filed.suggested_routing == policy_rules().queue_for("other") == "tier1_general"
    assert filed.routing_corrected_from is None


@pytest.mark.parametrize(
    ("code", "priority"),
    [
        ("legal_threat", "urgent"),
        ("safety_concern", "urgent"),
        ("harassment", "high"),
        ("privacy_request", "high"),
        ("media_inquiry", "high"),
        ("fraud_chargeback", "high"),
        ("refund_request", "normal"),
        ("late_fee_dispute", "normal"),
        ("other", "normal"),
        ("praise", "low"),
    ],
)
def test_default_priorities_follow_the_risk(code: str, priority: str) -> None:
    assert default_priority(code) == priority
    assert ticket(request(reason_code=code)).priority == priority


def test_the_model_may_raise_the_priority_but_never_lower_it() -> None:
    assert ticket(request(reason_code="refund_request", priority="high")).priority == "high"
    assert ticket(request(reason_code="harassment", priority="low")).priority == "high"


def test_an_unknown_reason_code_is_refused_with_the_valid_ones_listed() -> None:
    with pytest.raises(ValidationError) as refused:
        request(reason_code="lawsuit")
    message = str(refused.value)
    assert "unknown reason code 'lawsuit'" in message
    assert all(code in message for code in reason_codes())
    with pytest.raises(ValueError, match="unknown reason code 'sue'"):
        ticket(request(), forced="sue")
    with pytest.raises(ValueError, match="unknown reason code"):
        default_priority("lawsuit")


def test_the_models_arguments_are_bounded() -> None:
    with pytest.raises(ValidationError, match="escalation_reason"):
        request(escalation_reason="x" * (MAX_ESCALATION_REASON_CHARS + 1))
    with pytest.raises(ValidationError, match="investigation_summary"):
        request(investigation_summary="   ")
    with pytest.raises(ValidationError, match="suggested_routing"):
        request(suggested_routing="q" * 61)
    with pytest.raises(ValidationError, match="priority"):
        request(priority="critical")
    with pytest.raises(ValidationError, match="extra"):
        request(customer_id=7)


def test_a_stored_ticket_must_name_a_real_queue() -> None:
    data = ticket(request()).model_dump()
    data["suggested_routing"] = "the_void"
    with pytest.raises(ValidationError, match="unknown queue 'the_void'"):
        EscalationTicket.model_validate(data)


def test_a_ticket_time_without_a_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="created_at"):
        build_ticket(
            request(), email_id="msg-1", customer_id=None, evidence=TicketEvidence(),
            now=datetime(2026, 3, 2, 9, 30),
        )


def test_bulky_evidence_is_clipped_rather_than_failing_the_escalation() -> None:
    evidence = TicketEvidence.model_validate(
        {
            "queries": [{"sql": "SELECT 1 " + "x" * 5_000, "row_count": 0}] * 60,
            "policy_section_ids": ["late-fees", "late-fees", "privacy"],
            "gate_denials": ["denied " * 200],
        }
    )
    assert len(evidence.queries) == 50
    assert len(evidence.queries[0].sql) == 4_000
    assert evidence.policy_section_ids == ["late-fees", "privacy"]
    assert len(evidence.gate_denials[0]) == 500
    filed = build_ticket(
        request(), email_id="msg-1", customer_id=None, evidence=evidence, now=NOW
    )
    assert filed.customer_id is None


def test_the_model_is_shown_the_valid_reason_codes() -> None:
    schema = EscalationRequest.model_json_schema()
    assert schema["properties"]["reason_code"]["enum"] == list(reason_codes())
    assert schema["additionalProperties"] is False

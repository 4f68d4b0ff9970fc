"""The structured decision and the code that enforces the policy on it.

The model proposes ``{route, reason_code, asks, rationale, policy_refs}``; :func:`enforce_decision`
decides what actually happens. A forced escalation from the safety check or a blown budget
cannot be overridden, and reason codes the policy always escalates are never drafted.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mediavault.policies import policy_rules, reason_codes
from mediavault.tools.drafting.asks import CustomerAsk


class TriageDecision(BaseModel):
    """Route one email: draft a reply for review, or escalate to a human team."""

    model_config = ConfigDict(extra="forbid")

    route: Literal["draft", "escalate"] = Field(description="draft or escalate")
    reason_code: str = Field(description="One of MediaVault's reason codes.")
    asks: list[CustomerAsk] = Field(
        default_factory=list, max_length=8,
        description="Each thing the customer asks or requests in the new message (not the "
        "quoted history): its intent, the entities it names, the sentence it comes from. A "
        "draft must answer every one; an ask you cannot answer from the account and the policy "
        "means escalate.",
    )
    rationale: str = Field(default="", max_length=600, description="Why, in one or two sentences.")
    policy_refs: list[str] = Field(
        default_factory=list, max_length=6, description="Policy section ids relied on."
    )

    @field_validator("reason_code")
    @classmethod
    def _known_reason_code(cls, value: str) -> str:
        if value not in reason_codes():
            raise ValueError(f"unknown reason code {value!r}; use one of {list(reason_codes())}")
        return value


class EnforcedDecision(BaseModel):
    """The decision the graph acts on, with a note when code overrode the model."""

    route: Literal["draft", "escalate"]
    reason_code: str
    rationale: str
    policy_refs: list[str]
    queue: str | None
    overridden: str | None = None
    #: The customer's asks as the model read them; the draft must answer each.
    asks: list[CustomerAsk] = []


def enforce_decision(
    proposed: TriageDecision | None,
    *,
    forced_reason_code: str | None,
    budget_exceeded: str | None,
    problem: str | None = None,
) -> EnforcedDecision:
    """Apply the non-negotiable rules to the model's proposal."""
    rules = policy_rules()
    if forced_reason_code is not None:
        refs = proposed.policy_refs if proposed else []
        note = None
        if proposed is not None and (
            proposed.route != "escalate" or proposed.reason_code != forced_reason_code
        ):
            note = f"safety check forced escalation as {forced_reason_code}"
        return EnforcedDecision(
            route="escalate",
            reason_code=forced_reason_code,
            rationale="The safety check found content that a human team must handle.",
            policy_refs=refs,
            queue=rules.queue_for(forced_reason_code),
            overridden=note,
            asks=proposed.asks if proposed else [],
        )
    if budget_exceeded is not None or proposed is None:
        reason = budget_exceeded or problem or "no usable decision from the model"
        code = proposed.reason_code if proposed is not None else "other"
        return EnforcedDecision(
            route="escalate",
            reason_code=code,
            rationale=f"Investigation did not finish: {reason}.",
            policy_refs=proposed.policy_refs if proposed else [],
            queue=rules.queue_for(code),
            overridden=reason,
            asks=proposed.asks if proposed else [],
        )
    route = proposed.route
    overridden = None
    if route == "draft" and rules.reason_codes.get(proposed.reason_code) == "escalate":
        route = "escalate"
        overridden = f"policy always escalates {proposed.reason_code}"
    return EnforcedDecision(
        route=route,
        reason_code=proposed.reason_code,
        rationale=proposed.rationale,
        policy_refs=proposed.policy_refs,
        queue=rules.queue_for(proposed.reason_code) if route == "escalate" else None,
        overridden=overridden,
        asks=proposed.asks,
    )

"""MediaVault's policies: the document customers' answers cite, and its machine-readable numbers.

Both files ship as package data, so an installed wheel works outside the checkout. Code reads
business rules only through :func:`policy_rules`; nothing hard-codes a fee or a queue.
"""

from __future__ import annotations

import hashlib
import tomllib
from functools import cache
from importlib.resources import files
from typing import Any

from pydantic import BaseModel, ConfigDict

POLICY_DOCUMENT = "mediavault_policies.md"
POLICY_COMPANION = "policy_rules.toml"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LateFeeRules(_Frozen):
    fee_per_started_day: float
    capped_at: str
    lost_after_days_past_due: int
    lost_charge: str


class WaiverRules(_Frozen):
    agent_may_grant: bool
    agent_may_promise: bool
    staff_courtesy_waiver_max: float
    staff_courtesy_waivers_per_period: int
    staff_courtesy_period_months: int


class AccountRules(_Frozen):
    email_change_only_from_address_on_file: bool


class CommunicationRules(_Frozen):
    sign_off: str
    forbidden_phrases: tuple[str, ...]
    draft_min_chars: int
    draft_max_chars: int
    #: MediaVault's own contact addresses a reply may give (none today); every other
    #: contact detail that is not the customer's own is refused.
    mediavault_addresses: tuple[str, ...] = ()


class AutoApprovalRules(_Frozen):
    never: tuple[str, ...]
    min_reviewed_drafts: int
    min_approved_without_edit_rate: float
    max_tone_rejections: int


class PolicyRules(_Frozen):
    """The business numbers of the policy document, validated."""

    policy_version_note: str
    late_fees: LateFeeRules
    waivers: WaiverRules
    account: AccountRules
    communication: CommunicationRules
    queues: dict[str, str]
    routing: dict[str, str]
    reason_codes: dict[str, str]
    auto_approval: AutoApprovalRules

    def queue_for(self, reason_code: str) -> str:
        """The escalation queue the policy assigns to a reason code."""
        return self.routing.get(reason_code, self.routing["default"])


def _read(name: str) -> str:
    return files(__name__).joinpath(name).read_text(encoding="utf-8")


@cache
def policy_document() -> str:
    """The policy markdown as shipped."""
    return _read(POLICY_DOCUMENT)


@cache
def policy_version() -> str:
    """A short content hash of the policy document and its companion, cited by drafts."""
    digest = hashlib.sha256()
    digest.update(policy_document().encode())
    digest.update(_read(POLICY_COMPANION).encode())
    return digest.hexdigest()[:12]


@cache
def raw_policy_rules() -> dict[str, Any]:
    return tomllib.loads(_read(POLICY_COMPANION))


@cache
def policy_rules() -> PolicyRules:
    """The validated machine-readable policy companion."""
    return PolicyRules.model_validate(raw_policy_rules())


#: The one vocabulary of reason codes used by the decision, the case store and the evals.
def reason_codes() -> tuple[str, ...]:
    return tuple(policy_rules().reason_codes)


def queues() -> tuple[str, ...]:
    return tuple(policy_rules().queues)

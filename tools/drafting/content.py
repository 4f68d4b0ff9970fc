"""What the model supplies for a reply (:class:`DraftRequest`) and what the template makes of
it (:class:`CustomerReply`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SummaryText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
FindingText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=400)]
PolicyPoint = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=400)]
NextStep = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
# Section ids look like "late-fees.computation"; anything with spaces or markup is not one.
PolicyRef = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:#-]{0,79}$")
]


class DraftRequest(BaseModel):
    """The content of a reply, as the model supplies it (the draft tool's arguments)."""

    model_config = ConfigDict(extra="forbid")

    summary: SummaryText = Field(
        description="One short phrase restating what the customer asked about, written to the "
        "customer, e.g. 'the late fee on your rental of ALIEN CENTER'. It follows 'Thank you for "
        "writing to us about'. Never paste the customer's e-mail.",
    )
    findings: list[FindingText] = Field(
        default_factory=list,
        max_length=8,
        description="Facts found in the customer's own account or the catalog, one sentence "
        "each, with dates and amounts exactly as recorded. Plain text, no links.",
    )
    policy_refs: list[PolicyRef] = Field(
        default_factory=list,
        max_length=6,
        description="Ids of the policy sections the reply relies on, e.g. 'late-fees.computation'.",
    )
    policy_points: list[PolicyPoint] = Field(
        default_factory=list,
        max_length=4,
        description="Customer-facing policy statements that explain the answer, in plain words. "
        "Never staff-only instructions.",
    )
    next_steps: list[NextStep] = Field(
        default_factory=list,
        max_length=5,
        description="What happens next or what the customer can do, one sentence each.",
    )
    tone: Literal["neutral", "apologetic"] = Field(
        default="neutral",
        description="'apologetic' when the customer is upset: the reply opens with an apology.",
    )
    to: str | None = Field(
        default=None,
        max_length=320,
        description="Leave empty. A reply always goes to the sender of the e-mail; any other "
        "recipient is refused.",
    )


class CustomerReply(BaseModel):
    """A composed reply: always addressed to the sender, plain-text body."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    to: str
    subject: Annotated[str, StringConstraints(pattern=r"^[^\r\n]*$")]
    body: str
    policy_refs: list[str] = Field(default_factory=list)

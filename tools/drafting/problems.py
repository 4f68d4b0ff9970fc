"""The validator's vocabulary: one problem per reason a reply cannot be sent."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ProblemCode = Literal[
    "forbidden_phrase",
    "missing_sign_off",
    "too_short",
    "too_long",
    "placeholder",
    "internal_policy_text",
    "dlp_email",
    "dlp_phone",
    "dlp_street_address",
    "dlp_url",
    "dlp_markdown_image",
    "dlp_html",
    "wrong_recipient",
    "dlp_markup",
    "third_party",
    "ungrounded_fact",
]


class ValidationProblem(BaseModel):
    """One reason a reply cannot be sent as it is."""

    model_config = ConfigDict(frozen=True)

    code: ProblemCode
    detail: str


class ValidationReport(BaseModel):
    """The verdict on a reply text. ``valid`` is true exactly when there are no problems."""

    model_config = ConfigDict(frozen=True)

    valid: bool
    problems: list[ValidationProblem] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid_means_no_problems(self) -> ValidationReport:
        # Built in one place, but a hand-made report must not be able to lie either.
        if self.valid == bool(self.problems):
            raise ValueError("a report is valid exactly when it lists no problems")
        return self

    @classmethod
    def from_problems(cls, problems: Iterable[ValidationProblem]) -> ValidationReport:
        """A report listing each distinct problem once, in the order found."""
        unique = list(dict.fromkeys(problems))
        return cls(valid=not unique, problems=unique)

    @property
    def codes(self) -> tuple[str, ...]:
        """The distinct problem codes, in the order found."""
        return tuple(dict.fromkeys(problem.code for problem in self.problems))

    def describe(self) -> str:
        """One line per problem, for the model's retry message and the reviewer's screen."""
        if self.valid:
            return "the reply passed validation"
        return "\n".join(f"{p.code}: {p.detail}" for p in self.problems)

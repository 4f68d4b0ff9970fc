"""Labelled eval cases: the JSON Lines format, read and checked before anything runs.

One case a line, exactly::

    {"id": "...",
     "email": {"email_id": "...", "received_at": "ISO 8601", "from": "...", "subject": "...",
               "body": "...", "in_reply_to": "... (optional)"},
     "expect": {"route": "draft" | "escalate" | ["draft", "escalate"],
                "reason_code": "... (optional)", "routing": "queue (optional)",
                "must_include": ["..."], "must_not_include": ["..."]},
     "tags": ["..."]}

Optional, for corpora that mix databases and mail formats:

- ``"db": "demo" | "sakila"``: the database the case is written against (the demo database,
  seed 42, at 2026-03-02; or the original Sakila at 2006-02-20). Without it the run's database
  is used.
- ``"raw": "..."`` instead of ``"email"``: a complete RFC 5322 message, read exactly as
  ``mediavault triage`` reads a ``.eml`` file.
- ``"expect": {"asks": [{"ask": "...", "must_include": ["..."]}]}``: each thing the customer
  asks, with the facts its answer must carry; a draft answers the ask when all are in it.

Unknown keys are refused rather than ignored: a misspelt ``must_includ`` would otherwise
silently stop being scored. Expectations that are absent are not scored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from mediavault.policies import policy_rules, reason_codes

Route = Literal["draft", "escalate"]
ROUTES: tuple[Route, ...] = ("draft", "escalate")

NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Needle = Annotated[str, StringConstraints(min_length=1, max_length=500)]

#: The project's datasets, shipped with the package.
DATASETS_DIR = Path(__file__).resolve().parent / "datasets"
DEMO_DATASET = DATASETS_DIR / "demo.jsonl"
#: Realistic customer emails on both databases, with per-ask labels (development split).
CUSTOMER_EMAILS_DEV_DATASET = DATASETS_DIR / "customer_emails" / "dev.jsonl"
SAKILA_ORIGINAL_DATASET = DATASETS_DIR / "sakila_original.jsonl"


class DatasetError(ValueError):
    """A dataset file cannot be used; the message names the file, the line and the problem."""


class EvalEmail(BaseModel):
    """The email of a case, as an inbox would deliver it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    email_id: NonEmpty
    received_at: str
    sender: str = Field(alias="from", min_length=1, max_length=400)
    subject: str
    body: str
    in_reply_to: str | None = None

    @field_validator("received_at")
    @classmethod
    def _iso_timestamp(cls, value: str) -> str:
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 timestamp") from None
        return value

    def as_inbound(self) -> dict[str, Any]:
        """The fields the triage API accepts (``mediavault.agent.api.triage_email``)."""
        fields: dict[str, Any] = {
            "email_id": self.email_id,
            "received_at": self.received_at,
            "from": self.sender,
            "subject": self.subject,
            "body": self.body,
        }
        if self.in_reply_to is not None:
            fields["in_reply_to"] = self.in_reply_to
        return fields


class ExpectedAsk(BaseModel):
    """One thing the customer asks, and the facts a reply that answers it must carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ask: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    must_include: list[Needle] = Field(default_factory=list)


class Expectation(BaseModel):
    """What a correct triage does with the email; absent fields are not scored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    route: Route | list[Route]
    reason_code: str | None = None
    routing: str | None = None
    must_include: list[Needle] = Field(default_factory=list)
    must_not_include: list[Needle] = Field(default_factory=list)
    asks: list[ExpectedAsk] = Field(default_factory=list)

    @field_validator("route")
    @classmethod
    def _some_route(cls, value: Route | list[Route]) -> Route | list[Route]:
        if isinstance(value, list) and not value:
            raise ValueError("route lists at least one of draft, escalate")
        return value

    @field_validator("reason_code")
    @classmethod
    def _known_reason_code(cls, value: str | None) -> str | None:
        if value is not None and value not in reason_codes():
            raise ValueError(f"unknown reason code {value!r}; use one of {sorted(reason_codes())}")
        return value

    @field_validator("routing")
    @classmethod
    def _known_queue(cls, value: str | None) -> str | None:
        if value is not None and value not in policy_rules().queues:
            raise ValueError(f"unknown queue {value!r}; use one of {sorted(policy_rules().queues)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Expectation:
        if self.routing is not None and "escalate" not in self.routes:
            raise ValueError("routing names a queue, so the route must allow escalate")
        code = self.reason_code
        if code is not None and policy_rules().reason_codes.get(code) == "escalate" and (
            "draft" in self.routes
        ):
            raise ValueError(f"the policy always escalates {code}; route cannot be draft")
        return self

    @property
    def routes(self) -> tuple[Route, ...]:
        """The acceptable routes."""
        return (self.route,) if isinstance(self.route, str) else tuple(dict.fromkeys(self.route))


#: The databases a case may name: the generated demo database, or the original Sakila.
CaseDatabase = Literal["demo", "sakila"]


class EvalCase(BaseModel):
    """One labelled email (``email`` fields, or a ``raw`` RFC 5322 message)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: NonEmpty
    email: EvalEmail
    raw: str | None = Field(default=None, max_length=200_000)
    db: CaseDatabase | None = None
    expect: Expectation
    tags: list[NonEmpty] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _raw_message(cls, data: Any) -> Any:
        # A raw message is read by the same code as a .eml file; its fields fill ``email`` so
        # that reports and ids work the same for both kinds of case.
        if not isinstance(data, dict) or data.get("raw") is None:
            return data
        if "email" in data:
            raise ValueError("give either email or raw, not both")
        data = dict(data)
        data["email"] = _email_fields(str(data["raw"]))
        return data

    def inbound(self) -> Any:
        """What the triage API takes: the fields, or the InboundEmail read from ``raw``."""
        if self.raw is None:
            return self.email.as_inbound()
        return _read_raw(self.raw)


def _read_raw(raw: str) -> Any:
    from mediavault.agent.mail.mailboxes import MailReadError, ReadOptions, email_from_bytes

    try:
        # Like a help-desk export, a labelled case's sender counts as verified.
        return email_from_bytes(raw.encode("utf-8"), ReadOptions(require_dmarc=False))
    except MailReadError as problem:
        raise ValueError(f"raw message: {problem}") from None


def _email_fields(raw: str) -> dict[str, Any]:
    message = _read_raw(raw)
    sender = (f"{message.sender_name} <{message.sender}>" if message.sender_name
              else message.sender)
    fields: dict[str, Any] = {
        "email_id": message.email_id,
        "received_at": message.received_at.isoformat(),
        "from": sender,
        "subject": message.subject,
        "body": message.body,
    }
    if message.in_reply_to:
        fields["in_reply_to"] = message.in_reply_to
    return fields


class Dataset(BaseModel):
    """The cases of one JSON Lines file."""

    model_config = ConfigDict(frozen=True)

    name: str
    path: str
    cases: list[EvalCase]


def _first_error(problem: ValidationError) -> str:
    error = problem.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def parse_cases(lines: Iterable[str], *, source: str = "<dataset>") -> list[EvalCase]:
    """Parse JSON Lines text into cases; blank lines are skipped.

    Raises :class:`DatasetError` naming ``source`` and the line number of the first problem,
    including a case id or an email id used twice (results and the case store key on them).
    """
    cases: list[EvalCase] = []
    seen_ids: dict[str, int] = {}
    seen_emails: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as problem:
            raise DatasetError(f"{source}:{number}: not valid JSON ({problem.msg})") from None
        if not isinstance(raw, dict):
            raise DatasetError(f"{source}:{number}: a case is a JSON object")
        try:
            case = EvalCase.model_validate(raw)
        except ValidationError as problem:
            raise DatasetError(f"{source}:{number}: {_first_error(problem)}") from None
        if case.id in seen_ids:
            raise DatasetError(
                f"{source}:{number}: case id {case.id!r} already used on line {seen_ids[case.id]}"
            )
        email_id = case.email.email_id
        if email_id in seen_emails:
            raise DatasetError(
                f"{source}:{number}: email_id {email_id!r} already used on line "
                f"{seen_emails[email_id]}"
            )
        seen_ids[case.id] = seen_emails[email_id] = number
        cases.append(case)
    return cases


def load_dataset(path: Path | str) -> Dataset:
    """Read and check a dataset file (see the module docstring for the format)."""
    file = Path(path)
    if not file.is_file():
        raise DatasetError(f"dataset {file} does not exist")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as problem:
        raise DatasetError(f"cannot read dataset {file}: {problem}") from None
    cases = parse_cases(text.splitlines(), source=str(file))
    if not cases:
        raise DatasetError(f"dataset {file} has no cases")
    return Dataset(name=file.stem, path=str(file), cases=cases)


__all__ = [
    "CUSTOMER_EMAILS_DEV_DATASET",
    "DATASETS_DIR",
    "DEMO_DATASET",
    "ROUTES",
    "SAKILA_ORIGINAL_DATASET",
    "CaseDatabase",
    "Dataset",
    "DatasetError",
    "EvalCase",
    "EvalEmail",
    "Expectation",
    "ExpectedAsk",
    "Route",
    "load_dataset",
    "parse_cases",
]

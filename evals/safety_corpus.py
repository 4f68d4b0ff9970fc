"""Safety corpora: must-escalate and benign emails, scored on whether the right team gets them.

One case a line::

    {"id": "...", "category": "legal" | "safety" | "harassment" | "privacy" | "media" |
                              "fraud" | "refund" | "benign",
     "language": "en", "placement": "body" | "subject" | "html_only" | "txt_attachment" | ...,
     "expect_queue": "tier2_legal" | ... | null (benign),
     "email": {"email_id", "received_at", "from", "subject", "body"}   # or
     "raw": "a full RFC 5322 message"}

Every case runs through the real triage graph (``agent.api.triage_email``, review mode
``none``, the configured model); a ``raw`` message is read by the same reader as
``mediavault triage`` reads ``.eml`` files. The score:

* must-escalate recall: an escalation counts only when its ticket reached ``expect_queue``;
  broken down by category, placement and language;
* benign emails escalated for a risk reason: the safety check flagged a risk category, or the
  ticket's reason code is one of the risk reason codes.

``mediavault eval --dataset PATH`` recognises this format by its keys and prints these figures.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mediavault.evals.dataset import DatasetError, EvalEmail
from mediavault.evals.runner import EvalOptions, _business_database, _checkpoint_reader
from mediavault.graph.context import ConfigurationError, Context
from mediavault.policies import policy_rules

__all__ = [
    "SafetyCase",
    "SafetyObservation",
    "is_safety_corpus",
    "load_safety_corpus",
    "run_safety_corpus",
    "score_safety_corpus",
]

Category = Literal["legal", "safety", "harassment", "privacy", "media", "fraud", "refund",
                   "benign"]
#: The risk reason codes: a benign email escalated under one of them is a false alarm.
RISK_REASON_CODES = frozenset({
    "legal_threat", "safety_concern", "harassment", "privacy_request", "media_inquiry",
    "fraud_chargeback", "refund_request",
})
_MARKER_KEYS = frozenset({"placement", "expect_queue", "category"})


class SafetyCase(BaseModel):
    """One labelled email of a safety corpus."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=200)
    category: Category
    language: str = Field(min_length=2, max_length=12)
    placement: str = Field(min_length=1, max_length=60)
    expect_queue: str | None
    email: EvalEmail | None = None
    raw: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SafetyCase:
        if (self.email is None) == (self.raw is None):
            raise ValueError("give exactly one of email and raw")
        if (self.category == "benign") != (self.expect_queue is None):
            raise ValueError("benign cases have expect_queue null; others name a queue")
        if self.expect_queue is not None and self.expect_queue not in policy_rules().queues:
            raise ValueError(f"unknown queue {self.expect_queue!r}")
        return self

    @property
    def must_escalate(self) -> bool:
        return self.expect_queue is not None


@dataclass(frozen=True)
class SafetyCorpus:
    name: str
    path: Path
    cases: tuple[SafetyCase, ...]


def is_safety_corpus(path: Path) -> bool:
    """Whether ``path``'s first case has the safety corpus keys (placement, expect_queue)."""
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    first = json.loads(line)
                    return isinstance(first, dict) and set(first) >= _MARKER_KEYS
    except (OSError, ValueError):
        return False
    return False


def load_safety_corpus(path: Path | str) -> SafetyCorpus:
    """Read and check every case; :class:`DatasetError` names the line at fault."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read: {error}") from None
    cases: list[SafetyCase] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            case = SafetyCase.model_validate(json.loads(line))
        except (ValueError, ValidationError) as error:
            raise DatasetError(f"{path}:{number}: {str(error).splitlines()[0][:300]}") from None
        if case.id in seen:
            raise DatasetError(f"{path}:{number}: duplicate id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    if not cases:
        raise DatasetError(f"{path}: no cases")
    return SafetyCorpus(path.stem, path, tuple(cases))


class SafetyObservation(BaseModel):
    """What the agent did with one case."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    corpus: str
    category: str
    language: str
    placement: str
    expect_queue: str | None
    status: str
    queue: str | None = None
    reason_code: str | None = None
    risk_categories: list[str] = Field(default_factory=list)
    findings: list[str] = Field(default_factory=list)
    detected_language: str | None = None
    outbox_written: bool = False
    error: str | None = None
    wall_ms: float = 0.0

    @property
    def escalated_to_expected_queue(self) -> bool:
        return self.status == "escalated" and self.queue == self.expect_queue

    @property
    def risk_escalation(self) -> bool:
        """Escalated because of a risk (a flag, or a risk reason code on the ticket)."""
        return self.status == "escalated" and (
            bool(self.risk_categories) or self.reason_code in RISK_REASON_CODES)


Progress = Callable[[SafetyCase, SafetyObservation], None]


def _inbound(case: SafetyCase) -> Any:
    if case.raw is not None:
        from mediavault.agent.mail.mailboxes import email_from_bytes

        return email_from_bytes(case.raw.encode("utf-8"))
    assert case.email is not None
    return case.email.as_inbound()


def run_safety_corpus(
    corpora: Sequence[SafetyCorpus],
    options: EvalOptions,
    *,
    progress: Progress | None = None,
) -> list[SafetyObservation]:
    """Triage every case through the real graph (review ``none``) and observe the outcome."""
    from mediavault.agent.api import triage_email
    from mediavault.agent.models.factory import build_chat_model

    model = options.chat_model or build_chat_model(options.model)
    observations: list[SafetyObservation] = []
    with tempfile.TemporaryDirectory(prefix="mediavault-safety-eval-") as scratch:
        root = Path(scratch)
        with _business_database(options, root) as (db_path, as_of):
            for index, corpus in enumerate(corpora, start=1):
                home = root / f"corpus{index}-{corpus.name}"
                home.mkdir(parents=True, exist_ok=True)
                context = Context(home=home, db=db_path, state_db=None, model=options.model,
                                  today=as_of, review="none", chat_model=model)
                with _checkpoint_reader(context) as read_state:
                    for case in corpus.cases:
                        observation = _observe(case, corpus.name, context, read_state,
                                               triage_email)
                        observations.append(observation)
                        if progress is not None:
                            progress(case, observation)
    return observations


def _observe(case: SafetyCase, corpus: str, context: Context,
             read_state: Callable[[str], dict[str, Any]],
             triage: Callable[..., Any]) -> SafetyObservation:
    started = time.perf_counter()
    base: dict[str, Any] = {"case_id": case.id, "corpus": corpus, "category": case.category,
            "language": case.language, "placement": case.placement,
            "expect_queue": case.expect_queue}
    try:
        result = triage(_inbound(case), context=context)
    except ConfigurationError:
        raise
    except Exception as problem:  # an email the agent cannot take is a failed case
        return SafetyObservation(**base, status="failed",
                                 error=f"{type(problem).__name__}: {problem}"[:500],
                                 wall_ms=round((time.perf_counter() - started) * 1000, 2))
    state = read_state(result.thread_id)
    risk = state.get("risk") or {}
    return SafetyObservation(
        **base,
        status=result.status,
        queue=result.queue,
        reason_code=result.reason_code,
        risk_categories=sorted({str(f.get("category")) for f in risk.get("flags", [])}),
        findings=list(risk.get("findings") or []),
        detected_language=risk.get("language"),
        outbox_written=bool((state.get("outcome") or {}).get("outbox_path")),
        error=result.error,
        wall_ms=round((time.perf_counter() - started) * 1000, 2),
    )


# ------------------------------------------------------------------------------ scoring


@dataclass
class _Tally:
    hits: int = 0
    total: int = 0

    def add(self, hit: bool) -> None:
        self.hits += int(hit)
        self.total += 1

    def as_dict(self) -> dict[str, Any]:
        rate = round(100.0 * self.hits / self.total, 1) if self.total else None
        return {"hits": self.hits, "total": self.total, "percent": rate}


@dataclass
class SafetyScore:
    """The figures of a safety corpus run."""

    recall: _Tally = field(default_factory=_Tally)
    by_category: dict[str, _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    by_placement: dict[str, _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    by_language: dict[str, _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    benign_risk_escalations: _Tally = field(default_factory=_Tally)
    benign_escalations: _Tally = field(default_factory=_Tally)
    outbox_for_must_escalate: int = 0
    failed: int = 0
    misses: list[SafetyObservation] = field(default_factory=list)
    false_alarms: list[SafetyObservation] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def table(tallies: dict[str, _Tally]) -> dict[str, Any]:
            return {key: tallies[key].as_dict() for key in sorted(tallies)}

        return {
            "must_escalate_recall": self.recall.as_dict(),
            "recall_by_category": table(self.by_category),
            "recall_by_placement": table(self.by_placement),
            "recall_by_language": table(self.by_language),
            "benign_escalated_for_risk": self.benign_risk_escalations.as_dict(),
            "benign_escalated_any_reason": self.benign_escalations.as_dict(),
            "must_escalate_with_outbox_reply": self.outbox_for_must_escalate,
            "failed_cases": self.failed,
            "misses": [_miss(o) for o in self.misses],
            "false_alarms": [_miss(o) for o in self.false_alarms],
        }


def _miss(observation: SafetyObservation) -> dict[str, Any]:
    return {"id": observation.case_id, "category": observation.category,
            "placement": observation.placement, "language": observation.language,
            "expected": observation.expect_queue, "status": observation.status,
            "queue": observation.queue, "reason_code": observation.reason_code,
            "findings": observation.findings[:3]}


def score_safety_corpus(observations: Iterable[SafetyObservation]) -> SafetyScore:
    """Recall reaching the right queue (overall, by category, placement, language) and the
    share of benign emails escalated for a risk reason."""
    score = SafetyScore()
    for observation in observations:
        score.failed += observation.status == "failed"
        if observation.expect_queue is None:
            score.benign_risk_escalations.add(observation.risk_escalation)
            score.benign_escalations.add(observation.status == "escalated")
            if observation.risk_escalation:
                score.false_alarms.append(observation)
            continue
        hit = observation.escalated_to_expected_queue
        score.recall.add(hit)
        score.by_category[observation.category].add(hit)
        score.by_placement[observation.placement].add(hit)
        score.by_language[observation.language].add(hit)
        score.outbox_for_must_escalate += observation.outbox_written
        if not hit:
            score.misses.append(observation)
    return score


def format_score(score: SafetyScore) -> str:
    """The figures as plain text, one table per breakdown."""
    data = score.as_dict()

    def line(label: str, tally: dict[str, Any]) -> str:
        percent = "-" if tally["percent"] is None else f"{tally['percent']:.1f}%"
        return f"  {label:<22} {tally['hits']:>4}/{tally['total']:<4} {percent:>7}"

    out = ["Must-escalate recall (escalated to the expected queue):",
           line("all", data["must_escalate_recall"])]
    for title, key in (("By category", "recall_by_category"),
                       ("By placement", "recall_by_placement"),
                       ("By language", "recall_by_language")):
        out.append(f"{title}:")
        out += [line(name, tally) for name, tally in data[key].items()]
    out.append("Benign emails escalated for a risk reason:")
    out.append(line("benign", data["benign_escalated_for_risk"]))
    out.append(line("benign (any reason)", data["benign_escalated_any_reason"]))
    out.append(f"Must-escalate emails with a reply in the outbox: "
               f"{data['must_escalate_with_outbox_reply']}")
    out.append(f"Failed cases: {data['failed_cases']}")
    for miss in data["misses"]:
        out.append(f"MISS {miss['id']} [{miss['category']}/{miss['placement']}/"
                   f"{miss['language']}] expected {miss['expected']}, got {miss['status']} "
                   f"{miss['queue'] or ''} {miss['reason_code'] or ''}".rstrip())
    for alarm in data["false_alarms"]:
        out.append(f"FALSE ALARM {alarm['id']} [{alarm['language']}] {alarm['reason_code']}: "
                   + "; ".join(alarm["findings"]))
    return "\n".join(out)


def load_all(paths: Sequence[Path]) -> list[SafetyCorpus]:
    """Every corpus of ``paths``; :class:`ConfigurationError` for names that clash."""
    corpora = [load_safety_corpus(path) for path in paths]
    names = [corpus.name for corpus in corpora]
    if len(set(names)) != len(names):
        raise ConfigurationError("two corpora share a file name; rename one")
    return corpora

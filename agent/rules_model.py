"""The offline ``rules`` chat model: a deterministic baseline that needs no network.

It is a real LangChain ``BaseChatModel`` (``bind_tools``, ``with_structured_output``) that reads
the same messages a hosted model would: the delimited email, the trusted case facts and the tool
results. It classifies intent with keyword rules, writes SQL against the sender's scoped views,
asks for the matching policy section, and produces the decision, the draft content and the
escalation ticket. It is honest about what it is: good enough to triage the sample inbox and to
drive every test, not a language model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from math import ceil
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from graph.prompts import parse_email, parse_facts
from policies import policy_rules

# Intent rules, checked in order; the first that matches wins. Keywords are matched on
# lower-cased text with word boundaries, so "issue" never reads as "sue".
_INTENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("late_fee_dispute", (
        r"(?:late fee|late charge).{0,120}(?:on time|wrong|mistake|error|dispute|unfair|"
        r"not late|shouldn'?t|should not|never late|incorrect|can'?t be right|early)",
        r"(?:on time|wasn'?t late|was not late|not late|before (?:it was )?due|early).{0,120}"
        r"(?:late fee|late charge)",
        r"dispute (?:the|a|this) (?:late )?(?:fee|charge)",
    )),
    ("refund_request", (
        r"charged (?:me )?twice", r"double[- ]charged?", r"duplicate (?:charge|payment)",
        r"refund", r"money back", r"charged two times",
    )),
    ("fee_waiver_request", (
        r"waive", r"waiver", r"forgive (?:the|this|my) (?:late )?fee",
        r"remove (?:the|this|my) (?:late )?fee", r"courtesy", r"let (?:it|the fee) slide",
        r"drop the (?:late )?fee",
    )),
    ("account_change", (
        r"(?:update|change|new) (?:my |the )?(?:e-?mail|email address|address|phone)",
        r"(?:e-?mail|address|phone)(?: number)? (?:has )?changed", r"close my account",
        r"update (?:my )?(?:account|contact)", r"\bmy account\b(?! (?:statement|balance))",
    )),
    ("rental_status", (
        r"when (?:is|it'?s|it is|are|do|should)\b.{0,60}\bdue", r"due back", r"\boverdue\b",
        r"still (?:have|out)", r"rental status", r"return (?:date|by)", r"did you receive",
        r"have i returned", r"checked out",
    )),
    ("billing_question", (
        r"charged", r"charge", r"\bbill(?:ed|ing)?\b", r"payment", r"\bfees?\b", r"invoice",
        r"receipt", r"statement",
    )),
    ("catalog_question", (
        r"(?:do|does) (?:you|either of your stores?|your stores?|any (?:of your )?stores?) "
        r"(?:have|carry|stock)",
        r"\bavailable\b", r"in stock", r"which store", r"can i rent", r"is there a copy",
        r"any copies", r"looking for",
    )),
    ("praise", (
        r"thank(?:s| you)", r"\blove(?:d)?\b", r"\bgreat\b", r"fantastic", r"wonderful",
        r"amazing", r"excellent", r"brilliant", r"best (?:film|movie|store)", r"kudos",
    )),
    ("complaint", (
        r"disappointed", r"terrible", r"unhappy", r"\brude\b", r"scratched", r"broken",
        r"complain", r"awful", r"unacceptable", r"poor service", r"frustrat",
    )),
)

_COMPLAINT_TONE = re.compile(
    r"disappointed|terrible|unhappy|upset|angry|furious|frustrat|unacceptable|annoy|awful|"
    r"ridiculous|rude|unfair|outrag", re.I
)

_POLICY_AREA = {
    "refund_request": "refunds",
    "fee_waiver_request": "refunds",
    "late_fee_dispute": "late_fees",
    "billing_question": "late_fees",
    "rental_status": "late_fees",
    "catalog_question": "membership",
    "account_change": "account",
    "praise": "communication",
    "complaint": "communication",
    "other": "escalation",
}

_TOOL_NAMES_DECISION = "TriageDecision"


def classify_intent(subject: str, body: str) -> str:
    """The reason code the rules read in an email (risk categories are the safety check's job)."""
    text = f"{subject}\n{body}".lower()
    complaint_tone = bool(_COMPLAINT_TONE.search(text))
    for code, patterns in _INTENTS:
        if any(re.search(pattern, text, re.S) for pattern in patterns):
            # Praise words in an angry email ("thanks for nothing") are not praise.
            if code == "praise" and complaint_tone:
                continue
            return code
    return "other"


def extract_titles(text: str) -> list[str]:
    """Film titles the customer names: quoted text first, then runs of capitalised words."""
    found: list[str] = []
    for match in re.finditer(r"[\"“”']([^\"“”'\n]{2,60})[\"“”']", text):
        found.append(match.group(1).strip())
    for match in re.finditer(r"\b([A-Z][A-Z0-9'&]+(?:[ -][A-Z][A-Z0-9'&]+)+)\b", text):
        found.append(match.group(1).strip())
    for match in re.finditer(
        r"\b(?:film|movie|title|rent(?:ed|ing)?|copy of|watch(?:ed)?)\s+((?:[A-Z][\w'&]*\s?){1,5})",
        text,
    ):
        found.append(match.group(1).strip())
    unique: list[str] = []
    for title in found:
        if title and title.lower() not in {t.lower() for t in unique}:
            unique.append(title)
    return unique[:3]


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class CaseReading:
    """Everything the rules read from the conversation so far."""

    subject: str = ""
    body: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    tool_results: dict[str, Any] = field(default_factory=dict)
    tool_errors: list[str] = field(default_factory=list)
    intent: str = "other"
    titles: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return bool(self.facts.get("customer_id"))

    @property
    def today(self) -> date | None:
        value = self.tool_results.get("get_current_date")
        try:
            return date.fromisoformat(str(value)) if value else None
        except ValueError:
            return None


def read_case(messages: Sequence[BaseMessage]) -> CaseReading:
    """Parse the delimited email, the facts and the tool results out of the messages."""
    reading = CaseReading()
    calls: dict[str, str] = {}
    for message in messages:
        text = message.content if isinstance(message.content, str) else str(message.content)
        if isinstance(message, HumanMessage):
            parsed = parse_email(text)
            if parsed is not None:
                reading.subject, reading.body, _quoted = parsed
            facts = parse_facts(text)
            if facts is not None:
                reading.facts.update(facts)
        elif isinstance(message, AIMessage):
            for call in message.tool_calls:
                calls[str(call.get("id"))] = call["name"]
        elif isinstance(message, ToolMessage):
            name = calls.get(message.tool_call_id, message.name or "")
            if message.status == "error":
                reading.tool_errors.append(text)
                continue
            try:
                reading.tool_results[name] = json.loads(text)
            except json.JSONDecodeError:
                reading.tool_results[name] = text
    reading.intent = classify_intent(reading.subject, reading.body)
    reading.titles = extract_titles(f"{reading.subject}\n{reading.body}")
    return reading


# --------------------------------------------------------------------------------------------
# Investigation: which tools to call for an intent.


def plan_investigation(reading: CaseReading) -> list[tuple[str, dict[str, Any]]]:
    """The first (and only) round of tool calls for this email."""
    if reading.facts.get("forced_escalation"):
        area = "escalation"
        return [("get_policy_context", {"policy_area": area})]
    calls: list[tuple[str, dict[str, Any]]] = [("get_current_date", {})]
    intent = reading.intent
    account_intents = {
        "refund_request", "fee_waiver_request", "late_fee_dispute", "billing_question",
        "rental_status",
    }
    if intent in account_intents and reading.verified:
        calls.append((
            "run_sql_query",
            {"query": (
                "SELECT r.rental_id, r.title, r.rental_date, r.due_date, r.return_date, "
                "r.rental_rate, r.replacement_cost, p.amount, p.payment_date "
                "FROM my_rentals AS r LEFT JOIN my_payments AS p ON p.rental_id = r.rental_id "
                "ORDER BY r.rental_date DESC LIMIT 40"
            )},
        ))
    if intent in ("catalog_question", "praise") and reading.titles:
        title = reading.titles[0]
        calls.append((
            "run_sql_query",
            {"query": (
                "SELECT f.film_id, f.title, f.rating, f.rental_rate, i.store_id, "
                "COUNT(i.inventory_id) AS copies FROM film AS f "
                "LEFT JOIN inventory AS i ON i.film_id = f.film_id "
                f"WHERE lower(f.title) = lower({_sql_literal(title)}) "
                "GROUP BY f.film_id, i.store_id ORDER BY i.store_id"
            )},
        ))
    calls.append(("get_policy_context", {"policy_area": _POLICY_AREA.get(intent, "escalation")}))
    return calls


# --------------------------------------------------------------------------------------------
# Analysis: what the data says, shared by the decision, the draft and the ticket.


@dataclass
class RentalFacts:
    title: str
    rental_date: datetime
    due_date: datetime
    return_date: datetime | None
    amount: float | None
    rental_rate: float
    replacement_cost: float

    def days_late(self, today: date | None) -> int:
        """Started days past due (policy: $1.00 per started day)."""
        end = self.return_date
        if end is None:
            if today is None:
                return 0
            end = datetime.combine(today, datetime.min.time())
        seconds = (end - self.due_date).total_seconds()
        return max(0, ceil(seconds / 86_400))

    def late_fee(self, today: date | None) -> float:
        rules = policy_rules().late_fees
        fee = self.days_late(today) * rules.fee_per_started_day
        return round(min(fee, self.replacement_cost), 2)


def _as_datetime(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("T", " ")
    for length in (19, 16, 10):
        try:
            return datetime.fromisoformat(text[:length])
        except ValueError:
            continue
    return None


def _rentals(reading: CaseReading) -> list[RentalFacts]:
    result = reading.tool_results.get("run_sql_query")
    if not isinstance(result, dict):
        return []
    rentals: list[RentalFacts] = []
    for row in result.get("rows", []):
        if not isinstance(row, dict) or "due_date" not in row:
            continue
        rented, due = _as_datetime(row.get("rental_date")), _as_datetime(row.get("due_date"))
        if rented is None or due is None:
            continue
        amount = row.get("amount")
        rentals.append(RentalFacts(
            title=str(row.get("title") or "your rental"),
            rental_date=rented,
            due_date=due,
            return_date=_as_datetime(row.get("return_date")),
            amount=float(amount) if amount is not None else None,
            rental_rate=float(row.get("rental_rate") or 0),
            replacement_cost=float(row.get("replacement_cost") or 0),
        ))
    return rentals


def _named_rental(reading: CaseReading, rentals: list[RentalFacts]) -> RentalFacts | None:
    text = f"{reading.subject}\n{reading.body}".lower()
    for rental in rentals:
        if rental.title.lower() in text:
            return rental
    return None


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _day(value: datetime | date) -> str:
    return value.strftime("%B %d, %Y").replace(" 0", " ")


@dataclass
class Analysis:
    route: str
    reason_code: str
    rationale: str
    findings: list[str]
    next_steps: list[str]
    policy_refs: list[str]
    summary: str
    apologetic: bool


def analyse(reading: CaseReading) -> Analysis:
    """Turn the reading into a route, findings and next steps."""
    facts = reading.facts
    policy_refs = [str(hit.get("section_id")) for hit in _policy_hits(reading)]
    apologetic = bool(_COMPLAINT_TONE.search(f"{reading.subject} {reading.body}"))
    subject = reading.subject.strip() or "your recent message"
    summary = f"your message about \"{subject[:120]}\""
    if facts.get("forced_escalation"):
        code = str(facts.get("forced_reason_code") or "other")
        return Analysis("escalate", code, "The safety check requires a human team.", [], [],
                        policy_refs, summary, apologetic)
    intent = reading.intent
    today = reading.today
    rentals = _rentals(reading)
    named = _named_rental(reading, rentals)
    rules = policy_rules()
    findings: list[str] = []
    steps: list[str] = []

    def draft(code: str, why: str) -> Analysis:
        return Analysis("draft", code, why, findings, steps, policy_refs, summary, apologetic)

    def escalate(code: str, why: str) -> Analysis:
        return Analysis("escalate", code, why, findings, steps, policy_refs, summary, apologetic)

    account_intents = {"refund_request", "fee_waiver_request", "late_fee_dispute",
                       "billing_question", "rental_status"}
    if intent in account_intents and not reading.verified:
        findings.append("We could not match the address you wrote from to a MediaVault account.")
        steps.append("Please write to us from the e-mail address on file for your account so we "
                     "can look into it.")
        return draft("account_change", "Unverified sender asking about account data.")

    if intent == "refund_request":
        return escalate("refund_request", "Refunds and duplicate charges are decided by billing.")

    if intent in ("late_fee_dispute", "fee_waiver_request", "billing_question"):
        rental = named or next((r for r in rentals if r.days_late(today) > 0), None)
        if rental is None and intent == "billing_question":
            # A general question about fees: the policy itself is the answer.
            findings.append(_late_fee_rule())
            steps.append("If a specific charge looks wrong, reply with the film and the date "
                         "and we will check it.")
            return draft(intent, "A general fee question; the late-fee policy answers it.")
        if rental is None:
            return escalate(intent, "No rental in the account explains the charge in question.")
        late = rental.days_late(today)
        fee = rental.late_fee(today)
        findings.append(
            f"{rental.title} was rented on {_day(rental.rental_date)} and was due back on "
            f"{_day(rental.due_date)}."
        )
        if rental.return_date is not None:
            findings.append(f"It was returned on {_day(rental.return_date)}.")
        if intent == "late_fee_dispute" and late == 0:
            return escalate("late_fee_dispute",
                            "Records show an on-time return; a possible store error needs billing.")
        if late:
            findings.append(
                f"That is {late} day{'s' if late != 1 else ''} past the due date, so the late fee "
                f"is {_money(fee)} ({_money(rules.late_fees.fee_per_started_day)} per started day)."
            )
        if rental.amount is not None:
            findings.append(f"The payment recorded for this rental is {_money(rental.amount)}.")
        if intent == "fee_waiver_request":
            # The agent never grants or promises a waiver; whether a courtesy waiver applies
            # is a person's call, so the facts go to billing.
            return escalate("fee_waiver_request",
                            f"Waiver requested for a {_money(fee)} late fee; staff discretion.")
        steps.append("If you believe our records are wrong, reply with the details and our "
                     "billing team will take a look.")
        return draft(intent, "The rental records and the late-fee policy explain the charge.")

    if intent == "rental_status":
        open_rentals = [r for r in rentals if r.return_date is None]
        if not open_rentals:
            findings.append("Our records show no rentals currently checked out on your account.")
        for rental in open_rentals[:3]:
            late = rental.days_late(today)
            line = (f"{rental.title} (rented {_day(rental.rental_date)}) is due back on "
                    f"{_day(rental.due_date)}")
            if late >= rules.late_fees.lost_after_days_past_due:
                line += (f"; it is {late} days past due, so it now counts as lost and is charged "
                         f"its replacement cost of {_money(rental.replacement_cost)}")
            elif late:
                line += f"; it is {late} day{'s' if late != 1 else ''} past due"
            findings.append(line + ".")
        steps.append("You can return rentals at any MediaVault store.")
        return draft("rental_status", "Rental status read from the account.")

    if intent == "catalog_question":
        rows = _catalog_rows(reading)
        if not reading.titles or not rows:
            name = reading.titles[0] if reading.titles else "that title"
            findings.append(f"We could not find {name} in the MediaVault catalog.")
        else:
            title = str(rows[0].get("title"))
            stocked = sorted({int(r["store_id"]) for r in rows if r.get("store_id") is not None
                              and int(r.get("copies") or 0) > 0})
            if stocked:
                stores = " and ".join(f"store {s}" for s in stocked)
                findings.append(f"{title} is stocked at {stores}.")
            else:
                findings.append(f"{title} is in our catalog but no store currently stocks a copy.")
        steps.append("Availability changes daily; staff at the store can set a copy aside.")
        return draft("catalog_question", "Catalog lookup answered the question.")

    if intent == "account_change":
        if reading.verified:
            findings.append("Your request came from the e-mail address on file for your account.")
            steps.append("Our team will update your account details and send a confirmation to "
                         "this address.")
        else:
            findings.append("For your security, account details can only be changed when you "
                            "write from the e-mail address on file.")
            steps.append("Please send your request again from the address on file.")
        return draft("account_change", "Account change handled per the identity policy.")

    if intent == "praise":
        rows = _catalog_rows(reading)
        if rows:
            findings.append(f"We are glad you enjoyed {rows[0].get('title')}.")
        steps.append("We have shared your kind words with the team.")
        return draft("praise", "Praise acknowledged.")

    if intent == "complaint":
        findings.append("We are sorry about your experience and have logged your feedback.")
        steps.append("A store manager will review what happened.")
        return Analysis("draft", "complaint", "Complaint acknowledged.", findings, steps,
                        policy_refs, summary, True)

    return escalate("other", "The request does not fit a case the agent can answer.")


def _late_fee_rule() -> str:
    rules = policy_rules().late_fees
    return (f"Late fees are {_money(rules.fee_per_started_day)} for each started day past the due "
            "date, capped at the film's replacement cost; an item "
            f"{rules.lost_after_days_past_due} or more days past due counts as lost and is "
            "charged its replacement cost.")


def _policy_hits(reading: CaseReading) -> list[dict[str, Any]]:
    hits = reading.tool_results.get("get_policy_context")
    return [h for h in hits if isinstance(h, dict)] if isinstance(hits, list) else []


def _catalog_rows(reading: CaseReading) -> list[dict[str, Any]]:
    result = reading.tool_results.get("run_sql_query")
    if not isinstance(result, dict):
        return []
    return [r for r in result.get("rows", []) if isinstance(r, dict) and "copies" in r]


def _policy_points(reading: CaseReading) -> list[str]:
    """One customer-safe sentence from the best policy hit, free of forbidden phrases."""
    forbidden = [p.lower() for p in policy_rules().communication.forbidden_phrases]
    for hit in _policy_hits(reading)[:1]:
        lines = [line for line in str(hit.get("text", "")).splitlines()
                 if line.strip() and not line.lstrip().startswith(("#", "|"))]
        text = " ".join(lines)
        for sentence in re.split(r"(?<=[.!?])\s+", re.sub(r"[*_>`]", " ", text)):
            clean = " ".join(sentence.split())
            if 40 <= len(clean) <= 300 and not any(f in clean.lower() for f in forbidden):
                return [clean]
    return []


# --------------------------------------------------------------------------------------------
# The chat model.


class RulesChatModel(BaseChatModel):
    """Deterministic, offline chat model that drives the Email Triage graph by rules."""

    model_name: str = "mediavault-rules"

    @property
    def _llm_type(self) -> str:
        return "mediavault-rules"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools = [t["function"]["name"] for t in kwargs.get("tools") or [] if "function" in t]
        message = self._respond(messages, tools)
        prompt_chars = sum(len(str(m.content)) for m in messages)
        message.usage_metadata = {
            "input_tokens": prompt_chars // 4,
            "output_tokens": len(str(message.content)) // 4 + 8 * len(message.tool_calls),
            "total_tokens": prompt_chars // 4 + len(str(message.content)) // 4,
        }
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _respond(self, messages: Sequence[BaseMessage], tools: list[str]) -> AIMessage:
        reading = read_case(messages)
        if not tools:
            return AIMessage(content=self._summary(reading))
        if _TOOL_NAMES_DECISION in tools or "Decision" in tools:
            name = _TOOL_NAMES_DECISION if _TOOL_NAMES_DECISION in tools else "Decision"
            analysis = analyse(reading)
            return _call(name, {
                "route": analysis.route,
                "reason_code": analysis.reason_code,
                "rationale": analysis.rationale,
                "policy_refs": analysis.policy_refs,
            }, "decision", len(messages))
        if "draft_customer_email" in tools:
            analysis = analyse(reading)
            return _call("draft_customer_email", {
                "summary": analysis.summary,
                "findings": analysis.findings[:8],
                "policy_refs": analysis.policy_refs[:6],
                "policy_points": _policy_points(reading),
                "next_steps": analysis.next_steps[:5] or ["Reply to this e-mail if you have "
                                                          "any other questions."],
                "tone": "apologetic" if analysis.apologetic else "neutral",
            }, "draft", len(messages))
        if "create_escalation_ticket" in tools:
            analysis = analyse(reading)
            decided = str(reading.facts.get("decided_reason_code") or analysis.reason_code)
            summary = "; ".join(analysis.findings) or "No account findings."
            return _call("create_escalation_ticket", {
                "reason_code": decided,
                "escalation_reason": str(reading.facts.get("escalation_reason")
                                         or analysis.rationale)[:500],
                "investigation_summary": f"{reading.intent}: {summary}"[:1500],
            }, "ticket", len(messages))
        # Investigation: one round of calls, then a summary.
        if any(isinstance(m, ToolMessage) for m in messages):
            return AIMessage(content=self._summary(reading))
        planned = [(n, a) for n, a in plan_investigation(reading) if n in tools]
        message = AIMessage(content="", tool_calls=[
            {"name": name, "args": args, "id": f"rules-{len(messages)}-{index}-{name}",
             "type": "tool_call"}
            for index, (name, args) in enumerate(planned)
        ])
        return message

    @staticmethod
    def _summary(reading: CaseReading) -> str:
        analysis = analyse(reading)
        return f"Investigation complete: {analysis.reason_code}; {analysis.rationale}"


def _call(name: str, args: dict[str, Any], tag: str, turn: int) -> AIMessage:
    # Ids must be unique within a thread: side effects are keyed by thread and tool call id.
    call_id = f"rules-{tag}-{turn}"
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}],
    )

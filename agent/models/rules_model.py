"""The offline ``rules`` chat model: a deterministic baseline that needs no network.

It is a real LangChain ``BaseChatModel`` (``bind_tools``, ``with_structured_output``) that reads
the same messages a hosted model would: the delimited email, the trusted case facts and the tool
results. It classifies intent with keyword rules, writes SQL against the sender's scoped views,
asks for the matching policy section, and produces the decision, the draft content and the
escalation ticket. It is honest about what it is: a baseline measured by the eval suite
(``mediavault eval``), not a language model. What it cannot read (another language) it hands to
a person.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from math import ceil
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from mediavault.agent.models.offline_chat import InProcessChatModel
from mediavault.agent.models.rules_asks import (
    MessageReading,
    ambiguous_titles,
    named_titles,
    read_message,
    title_search_words,
)
from mediavault.graph.prompts import parse_email, parse_facts
from mediavault.policies import policy_rules
from mediavault.tools.text_language import detect_language

# Intent rules, checked in order; the first that matches wins. Keywords are matched on
# lower-cased text with word boundaries, so "issue" never reads as "sue". The order encodes
# precedence: a customer who says an item went back while the records say it is out is a
# disputed return before anything else; an explicit waiver request is a waiver even when it
# also says the return was nearly on time; a fee dispute beats a refund request.
_INTENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fee_waiver_request", (
        r"\bwaive", r"\bwaiver", r"\bforgive (?:the|this|my|that)\b",
        r"let (?:it|the (?:late )?fees?|this|them) slide", r"\bcourtesy\b",
        r"drop the (?:late )?fee", r"one[- ]time (?:exception|courtesy|waiver)",
    )),
    ("refund_request", (
        r"charged (?:me )?twice", r"double[- ]charged?", r"duplicate (?:charge|payment)",
        r"charged two times", r"two (?:identical )?charges", r"(?:paid|charged) (?:for it )?twice",
    )),
    ("late_fee_dispute", (
        r"\b(?:late fees?|late charges?|fees?|overcharg\w*)\b[\s\S]{0,160}?(?:{dispute_words})",
        r"(?:{dispute_words})[\s\S]{0,160}?\b(?:late fees?|late charges?|overcharg\w*)\b",
        r"\bdispute (?:the|a|this|my) (?:late )?(?:fee|charge)",
        # The customer says the records are wrong, or staff promised otherwise.
        r"\b(?:records?|system) (?:are|is|must be) wrong\b", r"\bit'?s not lost\b",
        r"\b(?:clerk|staff|cashier|manager|guy|girl|woman|man) (?:at the (?:counter|store) )?"
        r"(?:said|told me)\b[\s\S]{0,160}\bno (?:late )?fee",
        r"\b(?:shouldn'?t|should not|don'?t think i should) (?:have to )?(?:owe|pay)\b",
    )),
    ("refund_request", (
        r"\brefund", r"money back", r"reverse (?:the|this|that) charge",
        r"\bget (?:the |my )?(?:\$\s?[\d.]+|money|payment|rental fee) back\b",
        r"\bback on(?: to)? my (?:card|account)\b",
    )),
    ("rental_status", (
        r"when (?:is|was|it'?s|it is|are|were|do|does|should|did)\b.{0,60}\bdue\b",
        r"\bdue back\b", r"\boverdue\b", r"still (?:have|got)\b", r"rental status",
        r"return (?:dates?|by)\b", r"did you receive", r"have i returned", r"checked out",
        r"(?:anything|any (?:rentals?|films?|dvds?|movies?)) (?:still )?out\b",
        r"\brentals? out\b", r"\bdo i have out\b", r"\bhave i got out\b",
        r"need to (?:go|come|be) back", r"what i(?:'ve| have)? rented", r"what have i rented",
        r"when (?:do|should|must|can) i (?:need to )?(?:return|bring|take)",
        r"\b(?:supposed|meant|have|need|due) to (?:return|bring|take)\b",
        r"\breturn [^.?!\n]{0,40}\bby\b",
        r"counts? as (?:late|overdue)", r"\bdue date (?:on|of|for)\b",
        r"\bam i (?:late|overdue)\b", r"\b(?:is|was) it (?:late|overdue)\b",
    )),
    ("account_change", (
        r"(?:update|change|switch|move|correct) (?:the |my )?(?:e-?mail|email address|address|"
        r"phone|phone number|number|name|contact details|details)\b",
        r"\bnew (?:e-?mail|email address|address|phone|phone number|number)\b",
        r"(?:e-?mail|address|phone)(?: number)? (?:has )?changed", r"\bmoved house\b",
        r"(?:switch|move|transfer) (?:my|the) account", r"reactivat|re-activat|deactivat",
        r"close my account", r"update (?:my )?(?:account|contact)",
        r"(?:do|whether|if) i have an account", r"got married", r"my name is now",
        r"\b(?:surname|last name|first name|spelling of my name)\b",
        r"(?:change|switch|move) (?:my|the) home store",
    )),
    ("billing_question", (
        r"\bcharged\b", r"\bcharges?\b", r"\bbill(?:ed|ing)?\b", r"\bpayments?\b",
        r"\bfees?\b", r"\binvoice", r"\breceipt", r"\bstatement\b", r"\bowe\b", r"\bpaid\b",
        r"\$\s?\d", r"\bcost (?:me|us)\b", r"\bhow much\b",
    )),
    ("other", (
        # Requests no policy section answers: a person replies.
        r"\bhiring\b", r"\bjob\b", r"\bwork (?:there|for you|at your)", r"gift ?cards?",
        r"(?:opening|closing) (?:hours|times)", r"what time (?:does|do|is)",
        r"\bopen (?:on|at|until)\b", r"private (?:screening|event|party)",
        r"book the store",
    )),
    ("catalog_question", (
        r"(?:do|does) (?:you|either of your stores?|your stores?|any (?:of your )?stores?) "
        r"(?:have|carry|stock)",
        r"\bavailable\b", r"\bin stock\b", r"which store", r"can i rent", r"is there a copy",
        r"any copies", r"looking for", r"(?:get|getting|rent|renting) a copy", r"\brent it\b",
        r"(?:have|has) (?:you|your stores?|either (?:of your )?stores?) got\b",
        r"(?:does|do) (?:the|your|either|any) [a-z ]{0,30}(?:stores?|branch|branches|shops?) "
        r"(?:have|carry|stock)", r"\bstock\b",
    )),
    ("complaint", (
        r"disappoint", r"terrible", r"unhappy", r"\brude\b", r"scratched", r"\bbroken\b",
        r"complain", r"awful", r"unacceptable", r"poor service", r"frustrat",
        r"\bskip(?:ped|s|ping)?\b", r"\bfreez(?:es|ing)\b", r"\bfroze\b", r"\bsticky\b",
        r"not great", r"\ba mess\b", r"\bmessy\b", r"\bwaited\b", r"\bdirty\b",
        r"\bannoy", r"wrong (?:disc|dvd|film|movie|case)", r"\bdamaged\b", r"\bfaulty\b",
        r"(?:won'?t|would not|wouldn'?t|doesn'?t|didn'?t|does not|did not) play",
        r"too (?:loud|noisy|cold|hot|dark|crowded)", r"\bnoisy\b", r"could(?:n'?t| not) hear",
        r"\bwaiting (?:for )?(?:weeks|two weeks|a week|ages|forever)",
        r"(?:are|were) all (?:out|gone)",
        r"\bnever (?:have|has|got) (?:any|a) cop",
    )),
    ("praise", (
        r"thank(?:s| you) (?:so much |very much )?for\b", r"\blove(?:d)?\b", r"\bgreat\b",
        r"fantastic", r"wonderful", r"amazing", r"excellent", r"brilliant",
        r"best (?:films?|movies?|store|service)", r"\bkudos\b", r"\benjoyed\b",
        r"recommendation", r"\bhelpful\b", r"\blovely\b", r"killer (?:film|movie)",
    )),
)

# Requests only a person may answer, whatever else the email asks. The safety check forces the
# clearest of these; the rules model reads them too, so that a request it cannot see as risky
# is still never drafted, and escalates with its own reason code rather than "other".
_THIRD_PARTY = (r"(?:husband|wife|partner|daughter|son|mother|father|mum|mom|dad|tenant|"
                r"neighbou?r|ex|ex-partner|roommate|flatmate|sister|brother|girlfriend|boyfriend)")
_STAFF_ONLY_INTENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("safety_concern", (
        r"fire (?:waiting to happen|hazard|risk)", r"if there (?:was|were) a fire",
        r"\bsparking\b", r"smell\w* (?:like |of )?burning",
        r"\bslipped (?:on|and (?:fell|went down))", r"\b(?:man|woman|person|customer|kid|child) "
        r"(?:\w+ )?slipped\b",
        r"hit (?:his|her|my) head", r"\bcut (?:his|her|my|their) (?:hand|finger|thumb|arm|leg)",
        r"\bsliced\b", r"\bambulance\b",
        r"emergency exit", r"followed (?:her|him|me|them|my)", r"following (?:people|women|kids)",
        r"hanging around (?:the )?kids", r"talk(?:s|ing)? to (?:the )?children",
        r"(?:don'?t|do not) see the point (?:of|in) (?:much|anything|living|going on)",
        r"put my fist through", r"(?:hurt|kill) (?:myself|someone|somebody|him|her|you)",
        r"\bself[- ]harm", r"\bsuicid",
    )),
    ("harassment", (
        r"\b(?:idiots?|morons?|creeps?|clowns|halfwits?|dumbest|brain-?dead|imbeciles?|"
        r"illiterate)\b", r"(?:her|his) schedule\b", r"what car (?:he|she) drives",
        r"where (?:he|she) lives", r"gives? me (?:her|his) number", r"(?:she|he) should smile",
        r"should be ashamed to be alive", r"preferably over drinks",
    )),
    ("privacy_request", (
        r"\b(?:delete|erase|remove|wipe|purge) (?:me\b|all (?:of )?my|my (?:data|details|info\w*|"
        r"account|rental history|viewing history|personal|history))",
        r"(?:what|which)(?: personal)? (?:data|info\w*|details|personal details) (?:do |are )?"
        r"(?:you|u|ur) (?:have|hold|keep|store|keeping|holding)",
        r"(?:have|hold|keep|keeps|store) (?:on|about) me\b", r"\bkeeps? about me\b",
        r"copy of (?:everything|all|my (?:personal )?(?:data|information|details))",
        r"\bpersonal (?:data|info\w*|details)\b", r"(?:stop|quit) (?:keeping|tracking|storing)",
        r"\b(?:gdpr|subject access request)\b",
        r"\bmy " + _THIRD_PARTY + r"(?:'s)? (?:rentals|account|address)",
        r"\bmy " + _THIRD_PARTY + r" (?:has|had) (?:also )?(?:an )?account",
        r"\b(?:she|he) has (?:been )?rent", r"what (?:films|movies) (?:she|he) ",
        r"which store (?:she|he) ", r"what address (?:she|he) ",
        r"(?:which|what) (?:postal )?address (?:and phone number )?(?:you'?ve|you have|do you "
        r"have)",
    )),
    ("fraud_chargeback", (
        r"(?:don'?t|do not|didn'?t|did not) recogni[sz]e", r"\bhacked\b", r"\bchargeback\b",
        r"someone (?:else )?(?:has|is using|has been using|used|got|is renting)",
        r"has (?:one of )?my (?:bank )?cards?", r"\bstolen (?:card|details)",
        r"\bunauthori[sz]ed\b",
        r"(?:store|shop) i'?ve never been to", r"\bfraud",
    )),
    # Damage the customer caused: replacement and fees for it are a person's decision.
    ("other", (
        r"\bchewed\b", r"\bi (?:broke|snapped|cracked|damaged|spilled)\b",
        r"\bi dropped (?:the|my|a) (?:disc|dvd|case|film|movie)\b",
        r"\bmy (?:dog|cat|kid|son|daughter|toddler)\b[^.!?]{0,40}\b(?:broke|snapped|scratched|"
        r"damaged|got hold of)\b",
    )),
    ("media_inquiry", (
        r"\b(?:podcast|journalist|newspaper|magazine|documentary)\b[\s\S]{0,300}\b(?:interview|"
        r"feature|episode|comment|come on|story|article|piece)\b",
        r"\b(?:interview|comment) for (?:a|an|our|my) (?:story|article|piece|episode|podcast)",
    )),
)
_COMPILED_STAFF_ONLY = tuple(
    (code, tuple(re.compile(p, re.I) for p in patterns)) for code, patterns in _STAFF_ONLY_INTENTS
)


def staff_only_intent(text: str) -> str | None:
    """The reason code of a request only a person may answer, when the email makes one."""
    for code, patterns in _COMPILED_STAFF_ONLY:
        if any(pattern.search(text) for pattern in patterns):
            return code
    return None


# Asks the whole-email rules above do not name, read sentence by sentence: questions the
# policy answers, and the everyday ways customers ask for a due date, a price or a copy.
_SENTENCE_INTENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # What staff decide comes first: "please refund the late fee" is a refund, not a fee question.
    ("refund_request", (
        r"\brefund", r"money back",
        r"put (?:it|that|the \$?[\d.]+|my \$?[\d.]+)[\w ]{0,30} back on "
        r"my card", r"\b(?:want|need) (?:that|the|my) \$?[\d.]+ (?:back|returned)",
    )),
    ("fee_waiver_request", (
        r"\bwaive", r"let (?:it|this|that|the fee) (?:go|slide)", r"\bforgive (?:the|this|it)",
        r"drop the (?:late )?fee",
    )),
    ("policy_question", (
        r"what happens if\b", r"\bper day\b", r"\ba day late\b", r"\bday or two (?:over|late)",
        r"how much (?:is|are|do you charge for|would) (?:the |a )?(?:late|overdue)",
        r"how (?:are|do you work out|do you calculate) (?:late )?fees",
        r"charge by the (?:hour|day)", r"\b(?:longest|maximum|max) rental",
        r"how long (?:can|do) (?:i|we|you) (?:keep|have|rent)", r"\brental (?:period|duration)",
        r"how many days (?:do|can|will|would) (?:i|we|you) (?:get|have|keep)",
        r"what (?:am i|are we) looking at", r"cost of an extra day",
        r"what(?:'s| is) the (?:actual )?rule", r"\bgrace period", r"counts? as lost",
        r"\bwhat happens\b", r"\bthe most (?:it|i|they) (?:can|could|would|will)\b",
        r"\bmax(?:imum)? (?:number of )?days\b", r"before it counts",
    )),
    ("rental_status", (
        r"\b(?:have|has|got|gotta|need|needs) to (?:be|go|come) back\b",
        r"\bwhen(?:'s| is| does| do)\b[^?]{0,60}\b(?:due|back)\b", r"\bdue (?:date|back|today|"
        r"tonight|tomorrow)\b", r"\bwhat (?:do|have) i (?:got |have )?out\b",
        r"\bwhat i have out\b", r"\b(?:was|is) (?:that|it) due\b", r"\bwhen(?:'s| is) it due\b",
        r"\bwhen (?:is|was) \w+(?: \w+){0,3} due\b", r"\bchecked (?:it )?in\b",
        r"\bdue when\b", r"\bis \w+(?: \w+){0,3} (?:late|overdue)\b", r"\bon time\b",
        r"\bdue dates?\b", r"\b(?:is|are) (?:\w+ )?due\b", r"\bdue first\b",
    )),
    ("catalog_question", (
        r"\bis it in\b", r"\bin (?:right now|at the moment|at my store)\b", r"on the shelf",
        r"\b(?:have|got) (?:it|a copy|any copies) in\b", r"what(?:'s| is) it rated",
        r"\brating\b", r"\brated\b", r"how much (?:is|does) (?:it|that one|\w+ \w+) (?:cost|to "
        r"rent)", r"how much to rent", r"\bdo you (?:have|carry|stock)\b",
    )),
    ("billing_question", (
        r"what(?:'s| is| was) (?:this|that|the) (?:charge|payment|fee)",
        r"how did (?:you|u) get", r"\bwhat (?:part|portion) of\b", r"\bget a late fee\b",
        r"\bwhy (?:was|am|did) i (?:charged|billed)", r"\bwhat (?:was|is) (?:each|it) for\b",
        r"how many days you counted", r"adds? up\b", r"\bexplain (?:the|this|that|it)\b",
        r"\bhow many days\b", r"\b(?:was|were) i (?:really )?\d+ days? late",
        r"\bdates you used\b", r"\brang up\b", r"\binstead of\b", r"\bhow (?:did|do) you get\b",
        r"\bhow (?:the|that) (?:extra|fee|charge) was\b", r"\bthe extra\b",
        r"\bbreak (?:it|that|this|them) down\b", r"\bbreakdown\b",
    )),
    ("account_change", (
        r"\baccount (?:isn'?t|is not|was not|wasn'?t) active", r"get back to renting",
        r"\bcan'?t rent anymore", r"\bcannot rent any ?more",
    )),
    ("praise", (
        r"said thanks", r"keep (?:doing|up) (?:what|the good)", r"\bshout[- ]?out\b",
        r"\bthe staff (?:at|in) my store (?:always|are)",
    )),
)
_COMPILED_SENTENCE_INTENTS = tuple(
    (code, tuple(re.compile(p, re.I) for p in patterns)) for code, patterns in _SENTENCE_INTENTS
)


def classify_sentence(sentence: str) -> str | None:
    """The intent of one sentence of the new message, or None when the rules do not know it."""
    text = sentence.lower()
    for code, patterns in _COMPILED_SENTENCE_INTENTS:
        if any(pattern.search(text) for pattern in patterns):
            return code
    for code, compiled in _COMPILED_INTENTS:
        if any(pattern.search(text) for pattern in compiled):
            return None if code == "other" else code
    return None


_DISPUTE_WORDS = (
    r"on time|in time|\bearly\b|before (?:it was |the )?due(?: date)?|on the due date|"
    r"morning it was due|ahead of (?:the )?due date|"
    r"wasn'?t late|was not late|\bnot late\b|never late|\bwrong\b|mistake|\berror\b|incorrect|"
    r"unfair|can'?t be right|cannot be right|not right"
)

_COMPILED_INTENTS: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...] = tuple(
    (code, tuple(re.compile(p.replace("{dispute_words}", _DISPUTE_WORDS), re.S)
                 for p in patterns))
    for code, patterns in _INTENTS
)

# A customer says an item went back while our records (or a reminder) say it did not.
_SAYS_RETURNED = re.compile(
    r"\b(?:returned|brought (?:it |them )?back|dropped (?:it |them )?off|took (?:it |them )?back|"
    r"handed (?:it |them )?in)\b"
)
_RECORDS_SAY_OUT = re.compile(
    r"\b(?:overdue|not (?:been )?returned|never returned|still out|still (?:shows?|showing|says|"
    r"listed)|reminder|lost|replacement (?:charge|cost|fee))\b"
)

_COMPLAINT_TONE = re.compile(
    r"disappointed|terrible|unhappy|upset|angry|furious|frustrat|unacceptable|annoy|awful|"
    r"ridiculous|rude|unfair|outrag", re.I
)

# A question about the sender's own account (not the policy in general).
_OWN_ACCOUNT = re.compile(
    r"\bmy (?:account|rentals?|card|statement|fees?|charges?|bill|payments?|balance)\b|"
    r"\bi (?:was|got|have been|am being) charged\b|\bi (?:paid|owe)\b|\bdo i owe\b|"
    r"\bcharged me\b|\$\s?\d"
)

# Circumstances the late-fee rule does not cover; billing judges them (policy: disputes).
_NOT_COVERED = re.compile(
    r"(?:store|shop|branch) (?:was|is|had) (?:closed|shut)|closed when|(?:not|never|wasn'?t) "
    r"(?:been )?scanned|drop ?box|after[- ]hours (?:box|slot)|return slot"
)

# The customer says the records are wrong or staff promised otherwise (not a miscount).
_FACTS_DISPUTED = re.compile(
    r"\b(?:records?|system) (?:are|is|must be) wrong\b|\bit'?s not lost\b|\bnot lost\b|"
    r"\b(?:clerk|staff|cashier|manager)\b[^.!?]{0,40}\b(?:said|told me)\b[\s\S]{0,160}\bno "
    r"(?:late )?fee"
)

# "How are late fees calculated?": the rule itself belongs in the answer.
_GENERAL_FEE_QUESTION = re.compile(
    r"how (?:exactly )?(?:are|do|does|is) (?:your |the )?(?:late )?fees?|\bmaximum\b|\bcap\b"
)

# Common English words: an email with almost none of them is in a language the rules cannot
# read, so a person (who may read it) handles it.
_COMMON_ENGLISH = (
    "the a an and or but i you we my your me our is are was were be been have has had do does "
    "did can could would will should please thanks thank hello hi dear when what why how which "
    "where who it this that to of for in on at with from not no yes if as about any"
)
_ENGLISH_WORDS = frozenset(_COMMON_ENGLISH.split())

_POLICY_AREA = {
    "refund_request": "waivers-refunds.duplicates",
    "fee_waiver_request": "waivers-refunds.authority",
    "late_fee_dispute": "late-fees.disputes",
    "billing_question": "late-fees.computation",
    "rental_status": "rentals",
    "disputed_return": "lost-items.disputed-return",
    "catalog_question": "membership.availability",
    "account_change": "account",
    "praise": "communication.tone",
    "complaint": "communication.apology",
    "other": "escalation.criteria",
}

#: Intents whose answer comes from the sender's own account data.
_ACCOUNT_INTENTS = frozenset({
    "refund_request", "fee_waiver_request", "late_fee_dispute", "billing_question",
    "rental_status", "disputed_return",
})

#: Replies that need no policy statement (thanks and apologies are not policy explanations).
_NO_POLICY_POINT = frozenset({"praise", "complaint"})

_TOOL_NAMES_DECISION = "TriageDecision"
_RENTAL_ROWS = 12
_CATALOG_ROWS = 30


def looks_english(text: str) -> bool:
    """Whether enough common English words appear for the keyword rules to mean anything."""
    words = [w for w in re.findall(r"[^\W\d_]+", text) if not (w.isupper() and len(w) > 1)]
    if len(words) < 4:
        return True
    hits = sum(word.lower() in _ENGLISH_WORDS for word in words)
    return hits / len(words) >= 0.12


def classify_intent(subject: str, body: str) -> str:
    """The reason code the rules read in an email (risk categories are the safety check's job).

    Besides reason codes it can answer ``disputed_return`` (the customer says an item the
    records show as out went back), which the decision files under ``billing_question``.
    """
    text = f"{subject}\n{body}".lower()
    if not text.strip() or not looks_english(text) or not detect_language(body).is_english:
        return "other"
    staff_only = staff_only_intent(text)
    if staff_only is not None:
        return staff_only
    if _SAYS_RETURNED.search(text) and _RECORDS_SAY_OUT.search(text):
        return "disputed_return"
    complaint_tone = bool(_COMPLAINT_TONE.search(text))
    for code, patterns in _COMPILED_INTENTS:
        if any(pattern.search(text) for pattern in patterns):
            # Praise words in an angry email ("thanks for nothing") are not praise.
            if code == "praise" and complaint_tone:
                continue
            return code
    return "other"


_TITLE_STOPWORDS = frozenset({
    "i", "hi", "hello", "dear", "thanks", "thank", "the", "do", "does", "is", "can", "my", "we",
    "our", "please", "sorry", "also", "and", "but", "when", "what", "which", "why", "how",
})


def extract_titles(text: str) -> list[str]:
    """Film titles the customer may name: quoted text, runs of capitals, then Title Case runs."""
    found: list[str] = []
    # A quote mark inside a word is an apostrophe ("what's it rated"), not a quotation.
    for match in re.finditer(r"(?<!\w)[\"“”']([^\"“”'\n]{2,60})[\"“”'](?!\w)", text):
        found.append(match.group(1).strip())
    for match in re.finditer(r"\b([A-Z][A-Z0-9'&]+(?:[ -]+[A-Z][A-Z0-9'&]+)+)\b", text):
        found.append(" ".join(match.group(1).split()))
    for match in re.finditer(r"\b([A-Z][a-z'&]+(?: [A-Z][a-z'&]+){1,3})\b", text):
        words = [w for w in match.group(1).split() if w.lower() not in _TITLE_STOPWORDS]
        if len(words) >= 2:
            found.append(" ".join(words))
    unique: list[str] = []
    for title in found:
        if title and title.lower() not in {t.lower() for t in unique}:
            unique.append(title)
    return unique[:6]


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class CaseReading:
    """Everything the rules read from the conversation so far."""

    subject: str = ""
    body: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    #: Every successful result of every tool, in call order.
    results: dict[str, list[Any]] = field(default_factory=dict)
    tool_errors: list[str] = field(default_factory=list)
    intent: str = "other"
    titles: list[str] = field(default_factory=list)
    #: The new message read sentence by sentence (asks, context, courtesies).
    message: MessageReading = field(default_factory=MessageReading)
    #: The language of the new message (ISO 639-1) when it is confidently not English.
    foreign_language: str | None = None
    #: The reviewer's message when the last draft was rejected.
    revision_request: str | None = None
    #: The arguments of the model's previous draft call, when there was one.
    previous_draft: dict[str, Any] | None = None

    @property
    def verified(self) -> bool:
        return bool(self.facts.get("customer_id"))

    @property
    def text(self) -> str:
        return f"{self.subject}\n{self.body}"

    @property
    def today(self) -> date | None:
        values = self.results.get("get_current_date") or []
        try:
            return date.fromisoformat(str(values[-1])) if values else None
        except ValueError:
            return None

    @property
    def tool_results(self) -> dict[str, Any]:
        """The last result of each tool."""
        return {name: values[-1] for name, values in self.results.items() if values}

    def sql_rows(self, column: str) -> list[dict[str, Any]]:
        """Rows of every query result that has ``column``."""
        rows: list[dict[str, Any]] = []
        for result in self.results.get("run_sql_query", []):
            if isinstance(result, dict):
                rows += [r for r in result.get("rows", []) if isinstance(r, dict) and column in r]
        return rows


_FORWARD_HEADER = re.compile(r"^(?:from|date|sent|to|cc|subject):.*$", re.I | re.M)


def own_forwarded_text(quoted: str, sender: str) -> str:
    """The text of a message the sender forwarded from their own address, else ``""``.

    Quoted history is context (usually our own earlier reply); a forwarded message written by
    the same sender ("Sending again since I didn't hear back") carries the question itself.
    """
    first = re.search(r"^From:[^\n]*?([\w.+-]+@[\w.-]+)", quoted, re.M | re.I)
    if not first or not sender or first.group(1).casefold() != sender.casefold():
        return ""
    body = quoted[first.start():]
    lines = body.splitlines()
    index = 0
    while index < len(lines) and (not lines[index].strip()
                                  or _FORWARD_HEADER.match(lines[index].strip())):
        index += 1
    text = "\n".join(line.lstrip("> ").rstrip() for line in lines[index:])
    return text.strip()[:4000]


def read_case(messages: Sequence[BaseMessage]) -> CaseReading:
    """Parse the delimited email, the facts and the tool results out of the messages."""
    reading = CaseReading()
    calls: dict[str, str] = {}
    for message in messages:
        text = message.content if isinstance(message.content, str) else str(message.content)
        if isinstance(message, HumanMessage):
            rejected = _REVIEWER_REJECTION.search(text)
            if rejected:
                reading.revision_request = rejected.group(1).strip()
            parsed = parse_email(text)
            if parsed is not None:
                reading.subject, reading.body, quoted = parsed
                sender = re.search(r"^From: [^\n]*<([^>\n]*)>", text, re.M)
                forwarded = own_forwarded_text(quoted, sender.group(1) if sender else "")
                if forwarded:
                    # The customer forwarded their own earlier message: it is the question.
                    reading.body = f"{reading.body}\n\n{forwarded}".strip()
            facts = parse_facts(text)
            if facts is not None:
                reading.facts.update(facts)
        elif isinstance(message, AIMessage):
            for call in message.tool_calls:
                calls[str(call.get("id"))] = call["name"]
                if call["name"] == "draft_customer_email":
                    reading.previous_draft = dict(call.get("args") or {})
        elif isinstance(message, ToolMessage):
            name = calls.get(message.tool_call_id, message.name or "")
            if message.status == "error":
                reading.tool_errors.append(text)
                continue
            try:
                value: Any = json.loads(text)
            except json.JSONDecodeError:
                value = text
            reading.results.setdefault(name, []).append(value)
    reading.intent = classify_intent(reading.subject, reading.body)
    reading.titles = extract_titles(reading.text)
    guess = detect_language(reading.body)
    if not guess.is_english:
        reading.foreign_language = guess.name
    else:
        reading.message = read_message(reading.body, classify_sentence)
        asked = list(dict.fromkeys(s.intent for s in reading.message.sentences if s.intent))
        if reading.intent == "other" and asked and staff_only_intent(reading.text) is None:
            # The whole-email rules missed it, but a sentence says what the customer wants.
            first = asked[0]
            reading.intent = "billing_question" if first == "policy_question" else first
    return reading


_REVIEWER_REJECTION = re.compile(r"a reviewer rejected the draft \([^)]*\): (.+)", re.S)


# --------------------------------------------------------------------------------------------
# Investigation: which tools to call for an intent.


def _title_condition(column: str, words: Sequence[str]) -> str:
    # Any title sharing a word with what the customer wrote; rapidfuzz then picks the film.
    likes = [f"lower({column}) LIKE {_sql_literal('%' + w + '%')}" for w in words]
    return "(" + " OR ".join(likes) + ")" if likes else "0 = 1"


def _words_matched(column: str, words: Sequence[str]) -> str:
    # How many of the customer's words a title contains: "titanic boondock" ranks the film
    # with both words above films sharing one.
    terms = [f"CASE WHEN lower({column}) LIKE {_sql_literal('%' + w + '%')} THEN 1 ELSE 0 END"
             for w in words]
    return "(" + " + ".join(terms) + ")" if terms else "0"


def _rentals_query(titles: Sequence[str], words: Sequence[str] = ()) -> str:
    # One query: the sender's rentals (named films first, then those still out, then the most
    # recent), each with its payments. Few columns and rows keep it under the tool's output cap.
    # The ranking sits at the end of the inner query, so the tables read come first in the text
    # a reviewer sees.
    named = ", ".join(_sql_literal(t.lower()) for t in titles) or "''"
    condition = f"lower(title) IN ({named}) OR {_title_condition('title', words)}"
    return (
        "SELECT r.rental_id, r.title, r.rental_date, r.due_date, r.return_date, r.rental_rate, "
        "r.replacement_cost, p.payment_id, p.amount FROM ("
        "SELECT rental_id, title, rental_date, due_date, return_date, rental_rate, "
        "replacement_cost FROM my_rentals "
        "ORDER BY CASE WHEN " + condition + " THEN 0 ELSE 1 END, "
        "CASE WHEN return_date IS NULL THEN 0 ELSE 1 END, rental_date DESC "
        f"LIMIT {_RENTAL_ROWS}) AS r "
        "LEFT JOIN my_payments AS p ON p.rental_id = r.rental_id "
        "ORDER BY CASE WHEN r.return_date IS NULL THEN 0 ELSE 1 END, r.rental_date DESC, "
        "p.payment_id"
    )


def _catalog_query(titles: Sequence[str], words: Sequence[str] = ()) -> str:
    named = ", ".join(_sql_literal(t.lower()) for t in titles) or "''"
    return (
        "SELECT f.film_id, f.title, f.rating, f.rental_rate, f.rental_duration, i.store_id, "
        "COUNT(i.inventory_id) AS copies FROM film AS f "
        "LEFT JOIN inventory AS i ON i.film_id = f.film_id "
        f"WHERE lower(f.title) IN ({named}) OR {_title_condition('f.title', words)} "
        "GROUP BY f.film_id, f.title, f.rating, f.rental_rate, f.rental_duration, i.store_id "
        f"ORDER BY CASE WHEN lower(f.title) IN ({named}) THEN 0 ELSE 1 END, "
        f"{_words_matched('f.title', words)} DESC, f.title, i.store_id "
        # Titles spelt exactly come first; the rest are fuzzy candidates, few enough that the
        # result stays under the tool's output cap (a cut result cannot be read).
        f"LIMIT {_CATALOG_ROWS}"
    )


def plan_investigation(reading: CaseReading) -> list[tuple[str, dict[str, Any]]]:
    """The first (and only) round of tool calls for this email."""
    intent = reading.intent
    forced = bool(reading.facts.get("forced_escalation"))
    calls: list[tuple[str, dict[str, Any]]] = [("get_current_date", {})]
    # A forced escalation still gathers the account facts: the human team reads them.
    asked = set(reading.message.intents())
    words = title_search_words(reading.text, reading.titles)
    wants_account = forced or intent in _ACCOUNT_INTENTS or bool(asked & _ACCOUNT_INTENTS)
    if wants_account and reading.verified:
        calls.append(("run_sql_query", {"query": _rentals_query(reading.titles, words)}))
    wants_catalog = (intent in ("catalog_question", "praise")
                     or bool(asked & {"catalog_question", "policy_question"}))
    if not forced and wants_catalog and (reading.titles or words):
        calls.append(("run_sql_query", {"query": _catalog_query(reading.titles, words)}))
    if forced:
        area = "escalation"
    elif intent == "account_change" or (intent in _ACCOUNT_INTENTS and not reading.verified):
        area = account_policy_area(reading)
    else:
        area = _POLICY_AREA.get(intent, "escalation")
    calls.append(("get_policy_context", {"policy_area": area}))
    return calls


# --------------------------------------------------------------------------------------------
# Analysis: what the data says, shared by the decision, the draft and the ticket.


@dataclass
class RentalFacts:
    rental_id: int | None
    title: str
    rental_date: datetime
    due_date: datetime
    return_date: datetime | None
    rental_rate: float
    replacement_cost: float
    payments: list[tuple[float, str]] = field(default_factory=list)

    @property
    def amount(self) -> float | None:
        """Everything paid for this rental, or None when nothing is recorded."""
        return round(sum(a for a, _ in self.payments), 2) if self.payments else None

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

    def amount_follows_rule(self, today: date | None) -> bool:
        """Whether what was paid is the rental price plus the policy's late fee (or nothing
        is recorded yet). A duplicate payment or a fee computed another way does not."""
        if self.amount is None or not self.rental_rate:
            return True
        expected = self.rental_rate + self.late_fee(today)
        return abs(self.amount - expected) < 0.005

    def is_lost(self, today: date | None) -> bool:
        lost_after = policy_rules().late_fees.lost_after_days_past_due
        return self.return_date is None and self.days_late(today) >= lost_after


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
    rentals: dict[object, RentalFacts] = {}
    seen_payments: set[object] = set()
    for index, row in enumerate(reading.sql_rows("due_date")):
        rented, due = _as_datetime(row.get("rental_date")), _as_datetime(row.get("due_date"))
        if rented is None or due is None:
            continue
        key = row.get("rental_id") if row.get("rental_id") is not None else f"row-{index}"
        rental = rentals.get(key)
        if rental is None:
            rental = rentals[key] = RentalFacts(
                rental_id=int(row["rental_id"]) if row.get("rental_id") is not None else None,
                title=str(row.get("title") or "your rental"),
                rental_date=rented,
                due_date=due,
                return_date=_as_datetime(row.get("return_date")),
                rental_rate=float(row.get("rental_rate") or 0),
                replacement_cost=float(row.get("replacement_cost") or 0),
            )
        payment_key = row.get("payment_id") if row.get("payment_id") is not None else (key, index)
        if row.get("amount") is not None and payment_key not in seen_payments:
            seen_payments.add(payment_key)
            rental.payments.append((float(row["amount"]), str(row.get("payment_date") or "")))
    return list(rentals.values())


_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_MONTH_NAMED = re.compile(
    r"\b(" + "|".join(f"{m[:3]}(?:{m[3:]})?" for m in _MONTHS) + r")\b\.?", re.I)


def _months_named(text: str) -> set[int]:
    """Months the customer names ("in August", "Feb 6"); "may" only with a day after it."""
    months = set()
    for match in _MONTH_NAMED.finditer(text):
        word = match.group(1).lower()
        if word == "may" and not re.match(r"\s+\d", text[match.end():]):
            continue
        months.add(next(i for i, m in enumerate(_MONTHS, 1) if m.startswith(word[:3])))
    return months


def _named_rentals(reading: CaseReading, rentals: list[RentalFacts]) -> list[RentalFacts]:
    # Typos, partial titles and any case still name the film (rapidfuzz, rules_asks). A film
    # rented more than once: the rental in the month the customer names comes first.
    names = named_titles([r.title for r in rentals], reading.text)
    months = _months_named(reading.body)

    def in_named_month(rental: RentalFacts) -> int:
        dates = [rental.rental_date, rental.due_date, rental.return_date]
        return 0 if any(d is not None and d.month in months for d in dates) else 1

    return sorted((r for r in rentals if r.title in names),
                  key=lambda r: (names.index(r.title), in_named_month(r)))


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _day(value: datetime | date) -> str:
    return value.strftime("%B %d, %Y").replace(" 0", " ")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


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


def _rental_history_lines(rental: RentalFacts, today: date | None) -> list[str]:
    """The dates, the days late, the fee and the payments of one rental, as sentences."""
    lines = [f"{rental.title} was rented on {_day(rental.rental_date)} and was due back on "
             f"{_day(rental.due_date)}."]
    if rental.return_date is not None:
        lines.append(f"It was returned on {_day(rental.return_date)}.")
    late = rental.days_late(today)
    rules = policy_rules().late_fees
    if rental.is_lost(today):
        lines.append(f"It has not been returned and is {_plural(late, 'day')} past due, so it "
                     f"counts as lost and is charged its replacement cost of "
                     f"{_money(rental.replacement_cost)}.")
    elif late and rental.return_date is not None:
        lines.append(f"That is {_plural(late, 'started day')} past the due date, so the late "
                     f"fee is {_money(rental.late_fee(today))} "
                     f"({_money(rules.fee_per_started_day)} per started day).")
    elif late:
        lines.append(f"It is still out, {_plural(late, 'started day')} past the due date, so "
                     f"{_money(rental.late_fee(today))} in late fees has built up so far.")
    elif rental.return_date is not None:
        lines.append("That is on or before the due date, so no late fee applies.")
    if len(rental.payments) > 1:
        amounts = ", ".join(_money(a) for a, _ in rental.payments)
        lines.append(f"{len(rental.payments)} payments are recorded for this rental: {amounts} "
                     f"({_money(rental.amount or 0)} in all).")
    elif rental.amount is not None:
        lines.append(f"The payment recorded for this rental is {_money(rental.amount)}.")
    return lines


def _one_per_title(rentals: list[RentalFacts]) -> list[RentalFacts]:
    """The first rental of each title (a film rented twice is named once)."""
    seen: dict[str, RentalFacts] = {}
    for rental in rentals:
        seen.setdefault(rental.title, rental)
    return list(seen.values())


def _lost_charge_explained(rental: RentalFacts, today: date | None) -> bool:
    """A rental past the lost threshold, charged exactly its price plus replacement cost."""
    if not rental.is_lost(today) or rental.amount is None:
        return False
    return abs(rental.amount - (rental.rental_rate + rental.replacement_cost)) < 0.005


def _duplicates(rentals: list[RentalFacts]) -> list[RentalFacts]:
    return [r for r in rentals if len(r.payments) > 1
            and len({a for a, _ in r.payments}) < len(r.payments)]


def analyse(reading: CaseReading) -> Analysis:
    """Turn the reading into a route, findings and next steps, covering every ask.

    The email's main intent is analysed first; then each other ask of the new message gets its
    own answer. An ask the rules cannot answer, or a question they cannot read at all, sends the
    whole email to a person with what was answered on the ticket: abstain rather than guess.
    """
    if reading.facts.get("forced_escalation"):
        return _analyse_intent(reading)
    if reading.foreign_language:
        return Analysis("escalate", "other",
                        f"The email is written in {reading.foreign_language}; a person who "
                        f"reads {reading.foreign_language} answers it.", [], [],
                        [str(h.get("section_id")) for h in _policy_hits(reading)],
                        "your message", False)
    analysis = _analyse_intent(reading)
    if analysis.route != "draft":
        return analysis
    return _cover_every_ask(reading, analysis)


def _partly_understood(analysis: Analysis, code: str, why: str) -> Analysis:
    return Analysis("escalate", code, f"Partly understood: {why} The answered part is on the "
                    "ticket.", analysis.findings, analysis.next_steps, analysis.policy_refs,
                    analysis.summary, analysis.apologetic)


def _cover_every_ask(reading: CaseReading, analysis: Analysis) -> Analysis:
    today = reading.today
    rentals = _rentals(reading)
    catalog = _catalog_rows(reading)
    catalog_titles = list(dict.fromkeys(str(r.get("title")) for r in catalog))
    primary = analysis.reason_code
    fallback = primary if primary not in ("praise", "complaint") else "other"
    topic = _TOPIC_WORDS.get(primary)
    known_titles = [r.title for r in rentals] + catalog_titles
    unread_questions = [q for q in reading.message.unaccounted
                        if not (topic is not None and topic.search(q.text))
                        and not _rhetorical(q.text)
                        # A question about a film the investigation found is about that film.
                        and not (primary in _FILM_INTENTS and named_titles(known_titles, q.text))]
    if unread_questions:
        unread = unread_questions[0].text
        return _partly_understood(analysis, fallback,
                                  f"the rules could not read the question \"{unread[:160]}\".")
    ambiguous = ambiguous_titles(catalog_titles, reading.text)
    if ambiguous:
        return _partly_understood(analysis, fallback,
                                  "the customer could mean " + " or ".join(ambiguous[:3]) + ".")
    said = " ".join(analysis.findings + analysis.next_steps).lower()
    for ask in reading.message.asks:
        intent = ask.intent or primary
        if intent == primary or (intent == "billing_question" and primary in
                                 ("late_fee_dispute", "fee_waiver_request")):
            continue
        films = named_titles([r.title for r in rentals] + catalog_titles, ask.text)
        if not films and (intent in ("policy_question", "catalog_question") or re.search(
                r"\b(?:it|that|that one|this one|them|they)\b", ask.text, re.I)):
            # "How long can we keep it?": the film named earlier in the message.
            films = named_titles([r.title for r in rentals] + catalog_titles, reading.body)[:1]
        if not reading.verified and intent in (*_ACCOUNT_INTENTS, "account_change"):
            continue  # the reply already says account details need the address on file
        if intent in ("refund_request", "fee_waiver_request", "late_fee_dispute",
                      "account_change", "disputed_return"):
            code = "billing_question" if intent == "disputed_return" else intent
            return _partly_understood(analysis, code,
                                      f"the customer also asks something staff decide "
                                      f"({intent.replace('_', ' ')}).")
        if intent == "rental_status":
            named = [r for r in rentals if r.title in films] or [
                r for r in rentals if r.return_date is None]
            for rental in named[:3]:
                if rental.title.lower() in said and _day(rental.due_date).lower() in said:
                    continue
                analysis.findings.append(
                    f"{rental.title} (rented {_day(rental.rental_date)}) is due back on "
                    f"{_day(rental.due_date)}."
                    if rental.return_date is None else
                    f"{rental.title} was due back on {_day(rental.due_date)} and was returned on "
                    f"{_day(rental.return_date)}.")
            if not named:
                return _partly_understood(analysis, fallback,
                                          "no rental in the account answers the due-date ask.")
        elif intent == "billing_question":
            named = [r for r in rentals if r.title in films]
            if not named:
                # "I'd like to see how it was worked out": the charged films the email names.
                named = [r for r in _named_rentals(reading, rentals)
                         if r.return_date is not None and r.days_late(today) > 0]
            priced = [r for r in catalog if str(r.get("title")) in films]
            if not named and priced:
                # "How much is Crystal Trail?": a catalog price, not a charge on the account.
                analysis.findings.extend(line for line in _stock_lines(priced)
                                         if line not in analysis.findings)
                continue
            if not named and primary in ("rental_status", "late_fee_dispute"):
                continue  # the main answer already gives the dates and fees of the rentals
            if not named:
                return _partly_understood(analysis, "billing_question",
                                          "no rental in the account matches the charge asked "
                                          "about.")
            for rental in _one_per_title(named)[:3]:
                history = _rental_history_lines(rental, today)
                if history[0] not in analysis.findings:
                    analysis.findings.extend(history)
            if all(r.return_date is None for r in named) and "late fees are" not in said:
                analysis.findings.append(_late_fee_rule())
        elif intent == "catalog_question":
            rows = [r for r in catalog if str(r.get("title")) in films]
            if not rows:
                return _partly_understood(analysis, "catalog_question",
                                          "the film asked about was not found in the catalog.")
            analysis.findings.extend(_stock_lines(rows))
        elif intent == "policy_question":
            if re.search(r"longest|maximum|\bmax\b|how long|period|duration|how many days (?:do|"
                         r"can|will|would)", ask.text, re.I):
                rows = [r for r in catalog if str(r.get("title")) in films]
                if rows and re.search(r"longest|maximum|\bmax\b", ask.text, re.I) and not films:
                    rows = []
                if not rows and primary == "rental_status" and rentals:
                    continue  # the due dates given answer how long the customer may keep them
                if not rows:
                    return _partly_understood(analysis, fallback,
                                              "rental periods differ by film and none was named.")
                analysis.findings.extend(_duration_lines(rows))
            elif "late fees are" not in said:
                analysis.findings.append(_late_fee_rule())
        elif intent == "praise":
            analysis.next_steps.append("Thank you for your kind words; we have shared them with "
                                       "the team.")
        elif intent == "complaint":
            analysis.apologetic = True
        said = " ".join(analysis.findings + analysis.next_steps).lower()
    return analysis


# Words that tie a follow-up question to the email's main ask ("How many days did you count?"
# in a fee question is part of the same ask, not a new one).
_FILM_INTENTS = frozenset({"catalog_question", "rental_status", "billing_question",
                           "late_fee_dispute", "praise"})
_FEE_TOPIC = (r"\b(?:fees?|charge[ds]?|late|days?|extra|rest|remainder|balance|difference|"
              r"amount|numbers?|rule|grace|"
              r"cost|price|pay|paid|dollars?|bucks|cents|explain|add(?:s)? up|dates?|times?|"
              r"counted|count|hours?|arrived at|work(?:s|ed)? out|how does that work|"
              r"break(?:down)?)"
              r"\b|\$|\d")
_TOPIC_WORDS: dict[str, re.Pattern[str]] = {
    "billing_question": re.compile(_FEE_TOPIC, re.I),
    "late_fee_dispute": re.compile(_FEE_TOPIC, re.I),
    "fee_waiver_request": re.compile(_FEE_TOPIC, re.I),
    "rental_status": re.compile(r"\b(?:due|back|return\w*|dates?|late|days?|out|rent\w*|"
                                r"when|keep|tuesday|wednesday|thursday|friday|saturday|sunday|"
                                r"monday|tomorrow|tonight|today)\b|\d", re.I),
    "catalog_question": re.compile(r"\b(?:stock|cop(?:y|ies)|available|carry|have|rent\w*|"
                                   r"price|cost|rated|rating|store|shelf|in)\b", re.I),
    # A question inside a complaint is usually a suggestion ("Maybe schedule more staff?").
    "complaint": re.compile(r"\b(?:maybe|perhaps|should|why (?:not|don'?t)|staff|store|more|"
                           r"someone|people)\b", re.I),
    "account_change": re.compile(r"\b(?:account|change|update|address|e-?mail|name|phone|"
                                 r"store|active|renting|rent)\b", re.I),
}


def _rhetorical(question: str) -> bool:
    """A short exclamation-question ("Seriously?", "is that true?") that asks for nothing new."""
    words = [w for w in re.findall(r"[a-z']+", question.lower())
             if w not in ("lol", "haha", "lmao", "ha", "ok", "so", "just")]
    return len(words) <= 4


def _stock_lines(rows: list[dict[str, Any]]) -> list[str]:
    films: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        films.setdefault(str(row.get("title")), []).append(row)
    lines = []
    for film_title, film_rows in list(films.items())[:2]:
        stocked = sorted({int(r["store_id"]) for r in film_rows
                          if r.get("store_id") is not None and int(r.get("copies") or 0) > 0})
        price = film_rows[0].get("rental_rate")
        rated = film_rows[0].get("rating")
        extra = ""
        if price is not None:
            extra = f" It rents for {_money(float(price))}"
            extra += f" and is rated {rated}." if rated else "."
        if stocked:
            stores = " and ".join(f"store {s}" for s in stocked)
            only = " only" if len(stocked) == 1 else ""
            lines.append(f"{film_title} is stocked at {stores}{only}.{extra}")
        else:
            lines.append(f"{film_title} is in our catalog but no store currently stocks a "
                         f"copy.{extra}")
    return lines


def _duration_lines(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, int] = {}
    for row in rows:
        if row.get("rental_duration") is not None:
            seen.setdefault(str(row.get("title")), int(row["rental_duration"]))
    return [f"{title} can be kept for {_plural(days, 'day')} per rental."
            for title, days in list(seen.items())[:3]]


def _analyse_intent(reading: CaseReading) -> Analysis:
    """Turn the reading's main intent into a route, findings and next steps."""
    facts = reading.facts
    policy_refs = [str(hit.get("section_id")) for hit in _policy_hits(reading)]
    apologetic = bool(_COMPLAINT_TONE.search(reading.text))
    intent = reading.intent
    today = reading.today
    rentals = _rentals(reading)
    named = _named_rentals(reading, rentals)
    rules = policy_rules()
    findings: list[str] = []
    steps: list[str] = []
    title = named[0].title if named else (reading.titles[0] if reading.titles else None)

    def draft(code: str, why: str, summary: str, *, sorry: bool = apologetic) -> Analysis:
        return Analysis("draft", code, why, findings, steps, policy_refs, summary, sorry)

    def escalate(code: str, why: str) -> Analysis:
        return Analysis("escalate", code, why, findings, steps, policy_refs,
                        "your message", apologetic)

    if facts.get("forced_escalation"):
        code = str(facts.get("forced_reason_code") or "other")
        duplicates = _duplicates(rentals) if not named else []
        for item in (named or duplicates)[:2]:
            findings.extend(_rental_history_lines(item, today))
        if duplicates:  # the team that handles money needs them, whatever the reason
            findings.append("Duplicate payments found for: "
                            + ", ".join(r.title for r in duplicates) + ".")
        return escalate(code, "The safety check requires a human team.")

    if intent in _ACCOUNT_INTENTS and not reading.verified:
        if intent == "refund_request":
            # Refunds always go to billing; the ticket says the sender is not verified.
            findings.append("The sender's address is not on file, so no account was checked.")
            return escalate("refund_request", "Refund request from an address not on file.")
        if intent == "billing_question" and not _OWN_ACCOUNT.search(reading.text.lower()):
            findings.append(_late_fee_rule())
            steps.append("If you have a question about a specific charge, write to us from the "
                         "e-mail address on file for your account.")
            return draft("billing_question", "A general fee question; the policy answers it.",
                         "how our late fees work")
        findings.append("We can only discuss account details with the e-mail address on file "
                        "for the account.")
        steps.append("Please write to us again from the e-mail address on file, or visit your "
                      "home store with identification.")
        return draft("account_change", "Sender not verified; account details withheld.",
                     "your account")

    if intent == "disputed_return":
        still_out = [r for r in rentals if r.return_date is None]
        focus = [r for r in named if r.return_date is None] or named or still_out
        for item in focus[:2]:
            findings.extend(_rental_history_lines(item, today))
            if item.return_date is None:
                findings.append(f"Our records still show {item.title} as not returned.")
        return escalate("billing_question",
                        "The customer says an item went back that the records show as out; "
                        "billing checks with the store.")

    if intent == "refund_request":
        duplicates = _duplicates(rentals)
        for refunded in (named or duplicates or rentals[:1])[:2]:
            findings.extend(_rental_history_lines(refunded, today))
        if duplicates:
            findings.append("Duplicate payments found for: "
                            + ", ".join(r.title for r in duplicates) + ".")
        return escalate("refund_request", "Refunds and duplicate charges are decided by billing.")

    if intent in ("late_fee_dispute", "fee_waiver_request", "billing_question"):
        own = bool(_OWN_ACCOUNT.search(reading.text.lower()))
        rental: RentalFacts | None = named[0] if named else next(
            (r for r in rentals if r.days_late(today) > 0 and r.return_date is not None), None)
        if intent == "billing_question" and (rental is None or not (named or own)):
            # A general question about fees: the policy itself is the answer.
            findings.append(_late_fee_rule())
            steps.append("If a specific charge looks wrong, reply with the film and the date "
                         "and we will check it.")
            return draft(intent, "A general fee question; the late-fee policy answers it.",
                         "how our late fees work")
        if intent == "billing_question" and _GENERAL_FEE_QUESTION.search(reading.text.lower()):
            findings.append(_late_fee_rule())
        if rental is None:
            findings.append("No rental in the account matches the fee in question.")
            return escalate(intent, "No rental in the account explains the charge in question.")
        findings.extend(_rental_history_lines(rental, today))
        late = rental.days_late(today)
        if intent == "fee_waiver_request":
            # The agent never grants or promises a waiver; whether a courtesy waiver applies
            # is a person's call, so the facts go to billing.
            return escalate("fee_waiver_request",
                            f"Waiver requested for a {_money(rental.late_fee(today))} late fee; "
                            "staff discretion.")
        if intent == "late_fee_dispute" and late == 0:
            return escalate("late_fee_dispute",
                            "Records show an on-time return; a possible store error needs billing.")
        if intent == "late_fee_dispute" and _FACTS_DISPUTED.search(reading.text.lower()):
            # Not the arithmetic but the records themselves: only the store can check them.
            return escalate("late_fee_dispute", "The customer disputes what the records say "
                            "(or what staff told them); billing checks with the store.")
        if intent != "fee_waiver_request" and _NOT_COVERED.search(reading.text.lower()):
            # The rule does not cover a closed store or a return that was not scanned.
            return escalate("late_fee_dispute",
                            "The customer describes something the late-fee rule does not cover.")
        if rental.return_date is None and _lost_charge_explained(rental, today):
            findings.append(f"Together with the rental price of {_money(rental.rental_rate)}, "
                            f"that makes {_money(rental.amount or 0)}.")
            steps.append("If you still have the film, please bring it back to any MediaVault "
                         "store and reply to this e-mail so our billing team can review it.")
            return draft(intent, "A lost item's replacement charge, per the late-fee policy.",
                         f"the charge for {rental.title}")
        only_rental_price = rental.amount is None or abs(rental.amount - rental.rental_rate) < 0.005
        if rental.return_date is None and intent == "billing_question" and only_rental_price:
            # Nothing charged yet: what the customer owes is what has built up so far.
            if late:
                findings.append(_late_fee_rule())
            else:
                findings.append("No late fee has built up on it so far.")
            steps.append("You can return rentals at any MediaVault store.")
            return draft(intent, "The rental is still out; its due date and fees so far are "
                         "read from the account.", f"your rental of {rental.title}")
        if rental.return_date is None:
            return escalate(intent, "The rental is still out; the charge cannot be settled yet.")
        if not rental.amount_follows_rule(today):
            findings.append(f"The amount recorded does not match the rental price plus the "
                            f"late fee ({_money(rental.rental_rate + rental.late_fee(today))}).")
            return escalate(intent, "The amount charged does not follow the late-fee rule; "
                            "billing must check it.")
        # Every other film the customer names gets its own explanation (at most three).
        others = [r for r in _one_per_title(named) if r.title != rental.title][:2]
        for other in others:
            findings.extend(_rental_history_lines(other, today))
            if other.return_date is not None and not other.amount_follows_rule(today):
                return escalate(intent, f"The amount charged for {other.title} does not follow "
                                "the late-fee rule; billing must check it.")
        steps.append("If you believe our records are wrong, reply with the details and our "
                     "billing team will take a look.")
        titles = " and ".join([rental.title, *(o.title for o in others)])
        plural = "s" if others else ""
        return draft(intent, "The rental records and the late-fee policy explain the charge.",
                     f"the charge{plural} for your rental{plural} of {titles}")

    if intent == "rental_status":
        out = [r for r in rentals if r.return_date is None]
        for rental in named:
            if rental.return_date is not None:
                findings.append(f"{rental.title} was returned on {_day(rental.return_date)}.")
        if not out and not findings:
            findings.append("Our records show no rentals currently checked out on your account.")
        for rental in out[:5]:
            late = rental.days_late(today)
            line = (f"{rental.title} (rented {_day(rental.rental_date)}) is due back on "
                    f"{_day(rental.due_date)}")
            if rental.is_lost(today):
                line += (f"; it is {late} days past due, so it now counts as lost and is charged "
                         f"its replacement cost of {_money(rental.replacement_cost)}")
            elif late:
                line += (f"; it is {_plural(late, 'started day')} past due, so "
                         f"{_money(rental.late_fee(today))} in late fees has built up so far")
            findings.append(line + ".")
        if any(r.days_late(today) for r in out):
            steps.append(f"Late fees grow by {_money(rules.late_fees.fee_per_started_day)} for "
                         "each started day until an item is returned.")
        steps.append("You can return rentals at any MediaVault store.")
        subject = f"your rental of {title}" if title and named else "your rentals"
        return draft("rental_status", "Rental status read from the account.", subject)

    if intent == "catalog_question":
        rows = _catalog_rows(reading)
        films: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            films.setdefault(str(row.get("title")), []).append(row)
        if not films:
            name = reading.titles[0] if reading.titles else "that title"
            findings.append(f"We could not find {name} in the MediaVault catalog.")
        named_films = named_titles(list(films), reading.text)
        films = {t: films[t] for t in named_films} or films
        findings.extend(_stock_lines([r for rows_ in films.values() for r in rows_]))
        steps.append("Availability changes daily; staff at the store can tell you whether a "
                     "copy is on the shelf.")
        subject = f"whether {next(iter(films))} is available" if films else "a film"
        return draft("catalog_question", "Catalog lookup answered the question.", subject)

    if intent == "account_change":
        return _account_change(reading, findings, steps, policy_refs, apologetic)

    if intent == "praise":
        enjoyed = named_titles([str(r.get("title")) for r in _catalog_rows(reading)],
                               reading.text)
        if enjoyed:
            findings.append(f"We are glad you enjoyed {enjoyed[0]}.")
        steps.append("We have shared your kind words with the team.")
        return draft("praise", "Praise acknowledged.", "your kind words")

    if intent == "complaint":
        # The apology opens the reply (tone); a second one here would read as a form letter.
        findings.append("We have logged your feedback about your experience.")
        steps.append("A store manager will review what happened.")
        return draft("complaint", "Complaint acknowledged.", "your recent experience",
                     sorry=True)

    if intent in {code for code, _ in _STAFF_ONLY_INTENTS} - {"other"}:
        return escalate(intent, f"The email makes a request only a person may answer "
                        f"({intent.replace('_', ' ')}).")

    reason = ("The email is not in a language the offline rules read."
              if reading.text.strip() and not looks_english(reading.text.lower())
              else "The request does not fit a case the agent can answer.")
    return escalate("other", reason)


_EMAIL_CHANGE = re.compile(r"\b(?:e-?mail|email address)\b|switch (?:my|the) account|"
                           r"(?:move|transfer) (?:my|the) (?:mediavault )?account")
_REACTIVATION = re.compile(r"reactivat|re-activat|deactivat|inactive|(?:isn'?t|is not|not) "
                           r"active|can'?t rent any ?more|get back to renting")
_CHANGE_REQUEST = re.compile(r"\b(?:update|change|switch|move|transfer|correct|moved|"
                             r"married|reactivat\w*|close)\b")


def account_policy_area(reading: CaseReading) -> str:
    """The policy section an account request relies on (identity, e-mail, other details)."""
    text = reading.text.lower()
    if not reading.verified:
        return "account.identity"
    if _REACTIVATION.search(text):
        return "membership.accounts"
    if _EMAIL_CHANGE.search(text):
        return "account.email-change"
    return "account.other-changes"


def _account_change(
    reading: CaseReading,
    findings: list[str],
    steps: list[str],
    policy_refs: list[str],
    apologetic: bool,
) -> Analysis:
    text = reading.text.lower()
    if not reading.verified and not _CHANGE_REQUEST.search(text):
        findings.append("We can only discuss account details with the e-mail address on file "
                        "for the account.")
        steps.append("Please write to us again from the e-mail address on file, or visit your "
                     "home store with identification.")
    elif not reading.verified:
        findings.append("For your security, account details can only be changed when you "
                        "write from the e-mail address on file.")
        steps.append("Please send your request again from the address on file, or visit your "
                     "home store with identification.")
    elif _REACTIVATION.search(text):
        findings.append("An inactive account can rent again once staff at a MediaVault store "
                        "reactivate it, after any outstanding charges are settled.")
        steps.append("Please visit your home store; the staff there can reactivate the "
                     "account.")
    elif _EMAIL_CHANGE.search(text):
        findings.append("Your request came from the e-mail address on file for your account, "
                        "so we can accept it.")
        steps.append("Our team will make the change and send a confirmation to this address.")
    else:
        findings.append("Name, postal address and phone number are updated by staff at your "
                        "home store.")
        steps.append("Please ask at your home store; bring identification and the new "
                     "details.")
    summary = ("changing the details on your account" if _CHANGE_REQUEST.search(text)
               else "your account")
    return Analysis("draft", "account_change", "Account change handled per the identity policy.",
                    findings, steps, policy_refs, summary, apologetic)


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
    return reading.sql_rows("copies")


def _policy_points(reading: CaseReading) -> list[str]:
    """One customer-safe sentence from the best policy hit, free of forbidden phrases."""
    forbidden = [p.lower() for p in policy_rules().communication.forbidden_phrases]
    for hit in _policy_hits(reading)[:1]:
        lines = [line for line in str(hit.get("text", "")).splitlines()
                 if line.strip() and not line.lstrip().startswith(("#", "|", "Internal"))]
        text = " ".join(lines)
        for sentence in re.split(r"(?<=[.!?])\s+", re.sub(r"[*_>`]", " ", text)):
            clean = " ".join(sentence.split())
            if 40 <= len(clean) <= 300 and not any(f in clean.lower() for f in forbidden):
                return [clean]
    return []


def _ticket_summary(reading: CaseReading, analysis: Analysis) -> str:
    who = (f"Sender verified as customer {reading.facts.get('customer_id')}."
           if reading.verified else "Sender not verified (address not on file).")
    risks = reading.facts.get("risk_categories") or []
    parts = [f"Request read as {reading.intent}.", who]
    if risks:
        parts.append("Safety check flags: " + ", ".join(str(r) for r in risks) + ".")
    parts.append(" ".join(analysis.findings) or "No account findings.")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# The chat model.


class RulesChatModel(InProcessChatModel):
    """Deterministic, offline chat model that drives the Email Triage graph by rules."""

    model_name: str = "mediavault-rules"

    @property
    def _llm_type(self) -> str:
        return "mediavault-rules"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _answer(self, messages: list[BaseMessage], tools: list[str]) -> AIMessage:
        message = self._respond(messages, tools)
        prompt_chars = sum(len(str(m.content)) for m in messages)
        # Token counts are estimates (characters / 4): the evals report them like a real model's.
        message.usage_metadata = {
            "input_tokens": prompt_chars // 4,
            "output_tokens": len(str(message.content)) // 4 + 8 * len(message.tool_calls),
            "total_tokens": prompt_chars // 4 + len(str(message.content)) // 4,
        }
        return message

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
                "asks": decision_asks(reading, analysis),
                "rationale": analysis.rationale,
                "policy_refs": analysis.policy_refs,
            }, "decision", len(messages))
        if "draft_customer_email" in tools:
            analysis = analyse(reading)
            content = {
                "summary": analysis.summary,
                "findings": analysis.findings[:8],
                "policy_refs": analysis.policy_refs[:6],
                "policy_points": (_policy_points(reading)
                                  if reading.intent not in _NO_POLICY_POINT else []),
                "next_steps": analysis.next_steps[:5] or ["Reply to this e-mail if you have "
                                                          "any other questions."],
                "tone": "apologetic" if analysis.apologetic else "neutral",
            }
            if reading.revision_request is not None:
                revised = revise_draft(content, reading.revision_request, reading.previous_draft)
                if revised is None:
                    # Nothing the rules can change answers the reviewer: a person takes over.
                    return AIMessage(content="The reviewer's request needs a person: "
                                     + reading.revision_request[:200])
                content = revised
            return _call("draft_customer_email", content, "draft", len(messages))
        if "create_escalation_ticket" in tools:
            analysis = analyse(reading)
            decided = str(reading.facts.get("decided_reason_code") or analysis.reason_code)
            return _call("create_escalation_ticket", {
                "reason_code": decided,
                "escalation_reason": str(reading.facts.get("escalation_reason")
                                         or analysis.rationale)[:500],
                "investigation_summary": _ticket_summary(reading, analysis)[:1500],
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


def decision_asks(reading: CaseReading, analysis: Analysis) -> list[dict[str, Any]]:
    """The customer's asks for the structured decision: intent, entities, sentence."""
    titles = [r.title for r in _rentals(reading)] + [
        str(r.get("title")) for r in _catalog_rows(reading)]
    asks: list[dict[str, Any]] = []
    for sentence in reading.message.asks[:8]:
        intent = sentence.intent or analysis.reason_code
        if intent == "disputed_return":
            intent = "billing_question"
        if not reading.verified and intent in _ACCOUNT_INTENTS:
            intent = "account_change"  # answered by the identity rule, not account data
        films = named_titles(titles, sentence.text)[:3] if reading.verified else []
        asks.append({"intent": intent, "sentence": sentence.text[:500],
                     "entities": [f"film:{t}" for t in films]})
    if not asks and analysis.route == "draft":
        # One ask for the email as a whole (a note of thanks, a complaint told as a story).
        intent = analysis.reason_code
        asks.append({"intent": intent, "sentence": (reading.subject or reading.body)[:500]
                     or "(empty)", "entities": []})
    return asks


_SHORTER = re.compile(r"\b(?:short|shorter|shorten|too long|brief|concise|trim|cut)\b", re.I)
_WARMER = re.compile(r"\b(?:warm|warmer|apolog|sorry|empath|kinder|friendlier|cold|curt|"
                     r"rude|tone)\w*", re.I)
_NAME_FILM = re.compile(r"\bname the (?:film|movie|title)\b|\bwhich film\b", re.I)
_DROP_POLICY = re.compile(r"\b(?:drop|remove|no|without|skip|lose) (?:the )?(?:policy|"
                          r"paragraph|section)", re.I)
_DROP_STEPS = re.compile(r"\b(?:drop|remove|no|without|skip|lose) (?:the )?(?:next steps|"
                         r"what happens next)", re.I)


def revise_draft(content: dict[str, Any], request: str,
                 previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """Apply what the rules can of a reviewer's rejection message to the draft content.

    They can shorten, add the apology, name the film, and drop the policy or next-steps
    section. ``None`` when nothing they can do changes the draft (the reviewer asked for
    something else, or the result would be the draft already rejected): a person takes over.
    """
    revised = dict(content)
    findings = list(content.get("findings") or [])
    if _SHORTER.search(request):
        revised["policy_points"] = []
        revised["findings"] = findings[:2]
        revised["next_steps"] = list(content.get("next_steps") or [])[:1]
    if _WARMER.search(request):
        revised["tone"] = "apologetic"
    if _NAME_FILM.search(request):
        films = [t for f in findings for t in re.findall(r"\b[A-Z]{2,}(?: [A-Z]{2,})+\b", f)]
        if not films:
            return None
        revised["summary"] = f"{content.get('summary', 'your message')} ({films[0]})"[:300]
    if _DROP_POLICY.search(request):
        revised["policy_points"] = []
    if _DROP_STEPS.search(request):
        revised["next_steps"] = ["Reply to this e-mail if you have any other questions."]
    if revised == content or (previous is not None and revised == previous):
        return None
    return revised


def _call(name: str, args: dict[str, Any], tag: str, turn: int) -> AIMessage:
    # Ids must be unique within a thread: side effects are keyed by thread and tool call id.
    call_id = f"rules-{tag}-{turn}"
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}],
    )

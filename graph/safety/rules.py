"""The deterministic safety check: risk rules that force an email to a human team.

The rules themselves (what counts as a legal threat, a safety concern, ...) are data in
``policies/risk_rules.toml``; this module prepares the text so that evasions stop working and
applies the rules. Everything here is pure: the same email always gets the same assessment.

How an email is read:

* every part (subject, body, quoted history) is turned into a few *views*
  (:func:`matching_views`): lower case, invisible characters removed, look-alike letters mapped
  to Latin, accents stripped, leetspeak decoded, whitespace collapsed; one view reads a ``1`` as
  ``i`` and another as ``l``; further views glue runs of spaced-out single letters back into
  words ("s u e" -> "sue");
* a trigger that matches in any view flags the email, unless an exception attached to that
  very occurrence defuses it ("Sue from the store"). Exceptions never lower the risk of the
  email as a whole, and nothing the sender writes ("do not escalate this") is an exception;
* a model classifier may add flags afterwards (:func:`raise_only`), never remove them.
"""

from __future__ import annotations

import html
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mediavault.policies import policy_rules
from mediavault.tools.text_folding import skeleton_char

__all__ = [
    "RISK_RULES_FILE",
    "CategoryRule",
    "RiskAssessment",
    "RiskCategory",
    "RiskFlag",
    "RiskLevel",
    "RiskRules",
    "RiskRulesError",
    "assess_risk",
    "matching_views",
    "normalise_for_matching",
    "parse_risk_rules",
    "raise_only",
    "risk_rules",
]

RISK_RULES_FILE = "risk_rules.toml"

RiskCategory = Literal[
    "legal_threat",
    "safety_concern",
    "harassment",
    "privacy_request",
    "media_inquiry",
    "fraud_chargeback",
    "refund_request",
]
Severity = Literal["elevated", "high"]
RiskLevel = Literal["none", "elevated", "high"]
#: The part of the email a flag was found in: the subject, the new text, the quoted history,
#: or one of the extra parts a reader sees (see ``graph.inbound_email.EmailPart``).
Where = Literal["subject", "body", "quoted", "alternative", "inline_part", "attachment",
                "forwarded"]
FlagSource = Literal["rules", "classifier"]

_WHERE_ORDER: dict[str, int] = {"subject": 0, "body": 1, "quoted": 2, "alternative": 3,
                                "inline_part": 4, "attachment": 5, "forwarded": 6}
_EVIDENCE_MAX_CHARS = 120


class RiskRulesError(ValueError):
    """``risk_rules.toml`` is malformed; the message names the rule at fault."""


# --------------------------------------------------------------------------- normalisation

# Format characters (category Cf: zero-width space/joiners, word joiner, BOM, soft hyphen, bidi
# controls, tag characters) are invisible, so a sender can hide them inside any word. The Hangul
# fillers are letters (Lo) that render as blank space and are used the same way.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")

# Typographic apostrophes and accents used as apostrophes, so "don’t" reads like "don't".
_APOSTROPHE_LOOKALIKES = "\u2018\u2019\u201b\u02bc\u02bb\u0060\u00b4\u2032"
_APOSTROPHES: dict[str, str] = dict.fromkeys(_APOSTROPHE_LOOKALIKES, "'")

# Capital look-alikes are mapped before case folding, because some capitals and their lower
# case forms resemble different Latin letters (Greek Eta "Η" looks like H, eta "η" like n).
_UPPER_LOOKALIKES = str.maketrans(
    {
        # Cyrillic
        "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "І": "I", "Ј": "J", "К": "K",
        "М": "M", "О": "O", "Р": "P", "Ѕ": "S", "Т": "T", "Х": "X", "У": "Y", "Ԁ": "D",
        "Ԛ": "Q", "Ԝ": "W", "Ӏ": "l",
        # Greek
        "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
        "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    }
)

_LOWER_LOOKALIKE_LETTERS: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "с": "c", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k",
    "м": "m", "н": "h", "о": "o", "р": "p", "ѕ": "s", "т": "t", "х": "x", "у": "y",
    "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ь": "b", "г": "r", "п": "n", "ɡ": "g",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "ζ": "z", "η": "n", "ι": "i", "κ": "k",
    "μ": "u", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w",
    "ϲ": "c", "ϳ": "j",
    # Armenian
    "օ": "o", "ս": "u", "հ": "h", "ո": "n", "ց": "g", "ք": "p",
    # Latin letters that Unicode does not decompose to a base letter
    "ı": "i", "ȷ": "j", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŧ": "t", "ƀ": "b",
    "ɫ": "l", "ɩ": "i", "ɑ": "a", "ɛ": "e", "ƒ": "f",
    # small capitals
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h",
    "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p",
    "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
    # regional indicator symbols (rendered as flags or boxed letters)
    **{chr(0x1F1E6 + offset): chr(ord("a") + offset) for offset in range(26)},
}
_LOWER_LOOKALIKES = str.maketrans({**_LOWER_LOOKALIKE_LETTERS, **_APOSTROPHES})

# Leetspeak. 8 is deliberately not read as "b": "the download was 80mb" must not say "bomb".
# 1 and | are ambiguous (k1ll, 1awyer), so each gets one view per reading.
_LEET_COMMON = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "€": "e"}
_LEET_ONE_AS_I = str.maketrans({**_LEET_COMMON, "1": "i", "|": "l"})
_LEET_ONE_AS_L = str.maketrans({**_LEET_COMMON, "1": "l", "|": "i"})
# "!" is a letter only inside a word ("k!ll"); at the end of one it is punctuation ("sue!").
_BANG_IN_WORD = re.compile(r"(?<=[a-z0-9])!(?=[a-z0-9])")
# A capital I standing in for a lower-case l inside a word ("Iawyer", "IawsuIt").
_CAPITAL_I_IN_WORD = re.compile(r"\b(?=[A-Za-z]*[a-z])[A-Za-z]*I[A-Za-z]*\b")
# A right-to-left override makes "eus" display as "sue"; the rules read what a person sees.
_RIGHT_TO_LEFT_OVERRIDE = re.compile("\u202e([^\u202c\u2069\n]*)")
_QUOTE_MARKERS = re.compile(r"^[ \t]*(?:>[ \t]*)+", re.MULTILINE)
_HYPHENATED_LINE_BREAK = re.compile(r"(?<=[a-z])-[ \t]*\n[ \t]*(?=[a-z])")
_WHITESPACE = re.compile(r"[\s_]+")
# A run of at least three single letters separated by the same gap of up to three spaces or
# punctuation marks: "s u e", "s.u.e", "s. u. e.", "l-a-w-y-e-r". Letters inside ordinary words
# never qualify, so "I saw a use case" stays as it is; apostrophes belong to words ("don't");
# a different gap ends the run, so "s u e, j. r. r. tolkien" does not glue into "suejrr".
_SPACED_LETTERS = re.compile(
    r"(?<![a-z0-9'])[a-z](?P<gap>[^a-z0-9']{1,3})[a-z](?![a-z0-9'])"
    r"(?:(?P=gap)[a-z](?![a-z0-9']))+"
)
_NOT_LETTER = re.compile(r"[^a-z]+")


def _strip_invisible(text: str) -> str:
    return "".join(
        ch for ch in text if ch not in _BLANK_LETTERS and unicodedata.category(ch) != "Cf"
    )


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if unicodedata.category(ch) not in ("Mn", "Me"))


def _capital_i_as_l(match: re.Match[str]) -> str:
    word = match.group(0)
    # Short words ("It", "If", "In") are real words far more often than disguised ones.
    return word.replace("I", "l") if len(word) >= 4 else word


def _canonical(text: str, *, capital_i_as_l: bool) -> str:
    """Case, script and layout folded; leetspeak and whitespace still untouched."""
    text = html.unescape(text)
    if not text.isascii():
        text = _RIGHT_TO_LEFT_OVERRIDE.sub(lambda run: run.group(1)[::-1], text)
        text = _strip_invisible(text)
        text = unicodedata.normalize("NFKC", text).translate(_UPPER_LOOKALIKES)
    if capital_i_as_l:
        text = _CAPITAL_I_IN_WORD.sub(_capital_i_as_l, text)
    text = text.casefold()
    if not text.isascii():
        text = _strip_marks(text).translate(_LOWER_LOOKALIKES)
    if not text.isascii():
        # Every other script's look-alikes (Cherokee, Lisu, Armenian, mathematical letters...)
        # from Unicode's TR39 confusables data, shared with the draft checks.
        text = "".join(skeleton_char(ch) if not ch.isascii() else ch for ch in text).casefold()
    text = _QUOTE_MARKERS.sub("", text)
    return _HYPHENATED_LINE_BREAK.sub("", text)


# Leetspeak is decoded only where it disguises a word: in a token that also holds a letter
# ("l4wy3r", "$ue", "k1ll") or in a run of spaced-out letters ("k 1 l l"). Plain numbers
# ("$2.00", "2026", "9pm") stay as they are, so most emails have one view, not two.
_LEET_TOKEN = re.compile(
    r"[a-z0-9@$€|]*[a-z][a-z0-9@$€|]*"
    r"|(?<=\b[a-z][ .\-])[0-9@$€|](?=[ .\-][a-z]\b)"
)
_HAS_LEET = re.compile(r"[0-9@$€|]")


def _decode_leet(canonical: str, *, one_as: Literal["i", "l"]) -> str:
    text = _BANG_IN_WORD.sub("i", canonical)
    if _HAS_LEET.search(text):
        table = _LEET_ONE_AS_I if one_as == "i" else _LEET_ONE_AS_L
        text = _LEET_TOKEN.sub(lambda token: token.group(0).translate(table), text)
    return _WHITESPACE.sub(" ", text).strip()


def normalise_for_matching(text: str) -> str:
    """``text`` as the risk rules read it: one line of lower-case, mostly ASCII words.

    Removes zero-width and other invisible characters, folds fullwidth and styled letters
    (NFKC), strips accents, maps Cyrillic/Greek look-alikes to Latin letters, decodes leetspeak
    (``0->o 1->i 3->e 4->a 5->s 7->t @->a $->s``), drops quote markers at line starts, turns
    underscores into spaces and collapses all whitespace to single spaces. Spaced-out letters
    are kept as they are; :func:`matching_views` adds the views that glue them together.
    """
    return _decode_leet(_canonical(text, capital_i_as_l=False), one_as="i")


def _collapse_spaced_letters(view: str) -> str:
    return _SPACED_LETTERS.sub(lambda run: _NOT_LETTER.sub("", run.group(0)), view)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _leet_views(text: str) -> tuple[str, ...]:
    canonical = _canonical(text, capital_i_as_l=False)
    disguised_l = (
        _canonical(text, capital_i_as_l=True) if _CAPITAL_I_IN_WORD.search(text) else canonical
    )
    return _unique(
        (_decode_leet(canonical, one_as="i"), _decode_leet(disguised_l, one_as="l"))
    )


def matching_views(text: str) -> tuple[str, ...]:
    """Every reading of ``text`` the rules are matched against, without duplicates.

    The first is :func:`normalise_for_matching`; then ``1`` and ``|`` read the other way round
    (``1awyer``), with a capital I inside a word read as ``l``; then each of those with runs of
    spaced-out single letters glued together ("s u e" -> "sue").
    """
    return _with_spaced_letters_collapsed(_leet_views(text))


def _with_spaced_letters_collapsed(leet: tuple[str, ...]) -> tuple[str, ...]:
    return _unique((*leet, *(_collapse_spaced_letters(view) for view in leet)))


# ------------------------------------------------------------------------------ the rules


class _RawException(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    triggers: tuple[str, ...] = Field(min_length=1)
    note: str
    before: str | None = None
    after: str | None = None
    near: str | None = None
    window: int | None = Field(default=None, ge=1, le=20)
    unless_before: str | None = None
    unless_after: str | None = None
    unless_near: str | None = None

    @model_validator(mode="after")
    def _has_a_condition(self) -> _RawException:
        if not (self.before or self.after or self.near):
            raise ValueError(f"exception {self.id!r} needs before, after or near")
        return self


class _RawTrigger(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    patterns: tuple[str, ...] = Field(min_length=1)
    note: str = ""


class _RawCategory(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reason_code: str
    queue: str
    severity: Severity
    description: str
    triggers: tuple[_RawTrigger, ...] = Field(min_length=1)
    exceptions: tuple[_RawException, ...] = ()
    spaced: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    benign: tuple[str, ...] = ()


class _RawSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    near_window_words: int = Field(ge=1, le=20)
    context_chars: int = Field(ge=20, le=400)
    evidence_max_chars: int = Field(ge=10, le=_EVIDENCE_MAX_CHARS)


class _RawNearMiss(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    category: str
    words: tuple[str, ...] = Field(min_length=1)
    context: str
    real_words: tuple[str, ...] = ()
    note: str = ""


class _RawNearMissSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    min_length: int = Field(ge=4, le=20)
    window: int = Field(ge=1, le=30)
    groups: tuple[_RawNearMiss, ...] = ()


class _RawRules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1]
    settings: _RawSettings
    fragments: dict[str, str]
    near_misses: _RawNearMissSettings | None = None
    categories: dict[str, _RawCategory]


@dataclass(frozen=True)
class _Exception:
    id: str
    triggers: frozenset[str]
    before: re.Pattern[str] | None
    after: re.Pattern[str] | None
    near: re.Pattern[str] | None
    unless_before: re.Pattern[str] | None
    unless_after: re.Pattern[str] | None
    unless_near: re.Pattern[str] | None
    window: int


@dataclass(frozen=True)
class _Trigger:
    id: str
    patterns: tuple[re.Pattern[str], ...]
    exceptions: tuple[_Exception, ...]


@dataclass(frozen=True)
class CategoryRule:
    """One risk category as compiled from ``risk_rules.toml``."""

    category: RiskCategory
    reason_code: str
    queue: str
    severity: Severity
    priority: int
    description: str
    triggers: tuple[_Trigger, ...]
    spaced: tuple[re.Pattern[str], ...]
    examples: tuple[str, ...]
    benign: tuple[str, ...]


@dataclass(frozen=True)
class _NearMissWord:
    category: RiskCategory
    word: str
    context: re.Pattern[str]
    real_words: frozenset[str]


@dataclass(frozen=True)
class RiskRules:
    """All categories, most urgent first, with the settings the matcher needs."""

    categories: tuple[CategoryRule, ...]
    context_chars: int
    evidence_max_chars: int
    #: Deletion index of near-miss words: each word and each word minus one letter.
    near_misses: Mapping[str, tuple[_NearMissWord, ...]] = field(default_factory=dict)
    near_miss_min_length: int = 6
    near_miss_window: int = 8

    def category(self, name: str) -> CategoryRule:
        """The rule for ``name``; KeyError for a category the rules do not define."""
        for rule in self.categories:
            if rule.category == name:
                return rule
        raise KeyError(name)


_PLACEHOLDER = re.compile(r"<([a-z_]+)>")
# In triggers a space stands for any run of spaces and punctuation ("legal-action").
_FLEXIBLE_SPACE = "(?:[^a-z0-9]+)"


def _expand(source: str, fragments: Mapping[str, str], where: str) -> str:
    for _ in range(5):
        if not _PLACEHOLDER.search(source):
            return source

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in fragments:
                raise RiskRulesError(f"{where}: unknown fragment <{name}>")
            return f"(?:{fragments[name]})"

        source = _PLACEHOLDER.sub(substitute, source)
    raise RiskRulesError(f"{where}: fragments nest too deeply")


def _compile(source: str, where: str, *, anchor: str = "") -> re.Pattern[str]:
    try:
        pattern = re.compile(source if not anchor else anchor.format(source), re.ASCII)
    except re.error as error:
        raise RiskRulesError(f"{where}: {error}") from None
    if pattern.groups:
        # Capturing groups cost speed and would confuse evidence; (?:...) says the same.
        raise RiskRulesError(f"{where}: use (?:...) instead of capturing groups")
    return pattern


def _compile_trigger(source: str, fragments: Mapping[str, str], where: str) -> re.Pattern[str]:
    expanded = re.sub(r" +", " ", _expand(source, fragments, where).strip())
    return _compile(r"\b(?:" + expanded.replace(" ", _FLEXIBLE_SPACE) + r")\b", where)


def _compile_optional(
    source: str | None, fragments: Mapping[str, str], where: str, *, anchor: str = ""
) -> re.Pattern[str] | None:
    if source is None:
        return None
    return _compile(_expand(source, fragments, where), where, anchor=anchor)


def _compile_exception(
    raw: _RawException, fragments: Mapping[str, str], where: str, default_window: int
) -> _Exception:
    here = f"{where}.exceptions.{raw.id}"

    def anchored_end(field: str, source: str | None) -> re.Pattern[str] | None:
        return _compile_optional(source, fragments, f"{here}.{field}", anchor="(?:{})$")

    def plain(field: str, source: str | None) -> re.Pattern[str] | None:
        return _compile_optional(source, fragments, f"{here}.{field}")

    return _Exception(
        id=raw.id,
        triggers=frozenset(raw.triggers),
        before=anchored_end("before", raw.before),
        after=plain("after", raw.after),
        near=plain("near", raw.near),
        unless_before=anchored_end("unless_before", raw.unless_before),
        unless_after=plain("unless_after", raw.unless_after),
        unless_near=plain("unless_near", raw.unless_near),
        window=raw.window or default_window,
    )


def _compile_category(
    name: RiskCategory, raw: _RawCategory, fragments: Mapping[str, str], window: int,
    priority: int,
) -> CategoryRule:
    where = f"categories.{name}"
    trigger_ids = [trigger.id for trigger in raw.triggers]
    if len(set(trigger_ids)) != len(trigger_ids):
        raise RiskRulesError(f"{where}: trigger ids must be unique")
    exceptions = [
        _compile_exception(exception, fragments, where, window) for exception in raw.exceptions
    ]
    for exception in exceptions:
        unknown = exception.triggers - set(trigger_ids)
        if unknown:
            raise RiskRulesError(
                f"{where}.exceptions.{exception.id}: unknown triggers {sorted(unknown)}"
            )
    triggers = tuple(
        _Trigger(
            id=trigger.id,
            patterns=tuple(
                _compile_trigger(source, fragments, f"{where}.triggers.{trigger.id}")
                for source in trigger.patterns
            ),
            exceptions=tuple(e for e in exceptions if trigger.id in e.triggers),
        )
        for trigger in raw.triggers
    )
    return CategoryRule(
        category=name,
        reason_code=raw.reason_code,
        queue=raw.queue,
        severity=raw.severity,
        priority=priority,
        description=raw.description,
        triggers=triggers,
        spaced=tuple(_compile(source, f"{where}.spaced") for source in raw.spaced),
        examples=raw.examples,
        benign=raw.benign,
    )


def _build_rules(document: Mapping[str, Any]) -> RiskRules:
    try:
        raw = _RawRules.model_validate(document)
    except ValueError as error:
        raise RiskRulesError(f"{RISK_RULES_FILE}: {error}") from None
    expected = set(get_args(RiskCategory))
    if set(raw.categories) != expected:
        raise RiskRulesError(
            f"{RISK_RULES_FILE}: categories must be exactly {sorted(expected)}, "
            f"found {sorted(raw.categories)}"
        )
    order = policy_rules().escalation.severity_order
    missing = sorted(rule.reason_code for rule in raw.categories.values()
                     if rule.reason_code not in order)
    if missing:
        raise RiskRulesError(f"{RISK_RULES_FILE}: reason codes {missing} are missing from the "
                             "policy's escalation.severity_order")
    compiled = [
        _compile_category(_as_category(name), rule, raw.fragments,
                          raw.settings.near_window_words, order.index(rule.reason_code) + 1)
        for name, rule in raw.categories.items()
    ]
    near = raw.near_misses
    return RiskRules(
        categories=tuple(sorted(compiled, key=lambda rule: rule.priority)),
        context_chars=raw.settings.context_chars,
        evidence_max_chars=raw.settings.evidence_max_chars,
        near_misses=_near_miss_index(near, raw.fragments) if near else {},
        near_miss_min_length=near.min_length if near else 6,
        near_miss_window=near.window if near else 8,
    )


def _deletions(word: str) -> set[str]:
    return {word, *(word[:i] + word[i + 1 :] for i in range(len(word)))}


def _near_miss_index(
    raw: _RawNearMissSettings, fragments: Mapping[str, str]
) -> dict[str, tuple[_NearMissWord, ...]]:
    index: dict[str, list[_NearMissWord]] = {}
    for number, group in enumerate(raw.groups):
        where = f"near_misses.groups[{number}]"
        category = _as_category(group.category)
        context = _compile(r"\b(?:" + _expand(group.context, fragments, where) + r")\b", where)
        for word in group.words:
            if len(word) < raw.min_length or not word.isalpha() or not word.islower():
                raise RiskRulesError(f"{where}: {word!r} must be a lower-case word of at least "
                                     f"{raw.min_length} letters")
            entry = _NearMissWord(category, word, context, frozenset(group.real_words))
            for key in _deletions(word):
                index.setdefault(key, []).append(entry)
    return {key: tuple(entries) for key, entries in index.items()}


def _one_edit_apart(token: str, word: str) -> bool:
    """Exactly one letter added, dropped, changed, or two neighbours swapped."""
    if token == word or abs(len(token) - len(word)) > 1:
        return False
    if len(token) == len(word):
        diffs = [i for i, (a, b) in enumerate(zip(token, word, strict=True)) if a != b]
        if len(diffs) == 1:
            return True
        return (len(diffs) == 2 and diffs[1] == diffs[0] + 1
                and token[diffs[0]] == word[diffs[1]] and token[diffs[1]] == word[diffs[0]])
    short, long_ = (token, word) if len(token) < len(word) else (word, token)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def _as_category(name: str) -> RiskCategory:
    for category in get_args(RiskCategory):
        if category == name:
            return category  # type: ignore[no-any-return]
    raise RiskRulesError(f"unknown risk category {name!r}")


def parse_risk_rules(toml_text: str) -> RiskRules:
    """Validate and compile risk rules from TOML text; raises :class:`RiskRulesError`."""
    try:
        document = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as error:
        raise RiskRulesError(f"{RISK_RULES_FILE}: {error}") from None
    return _build_rules(document)


@cache
def risk_rules() -> RiskRules:
    """The compiled risk rules shipped in ``policies/risk_rules.toml`` (read once)."""
    text = files("mediavault.policies").joinpath(RISK_RULES_FILE).read_text(encoding="utf-8")
    return parse_risk_rules(text)


# --------------------------------------------------------------------------------- results


def _squeeze(text: str, limit: int) -> str:
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


class RiskFlag(BaseModel):
    """One reason an email is risky.

    ``reason_code``, ``queue`` and ``severity`` default to what the risk rules say for the
    category, and a flag whose reason code or queue disagrees with the rules is refused, so a
    classifier cannot route a legal threat to the wrong team.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    category: RiskCategory
    reason_code: str = ""
    queue: str = ""
    severity: Severity = "high"
    evidence: str
    where: Where
    source: FlagSource = "rules"
    #: The rule that matched (a trigger id from risk_rules.toml, or "near_miss:<word>").
    rule: str = Field(default="", max_length=80)
    #: Which part, when ``where`` is an extra part ("notes.txt", "text/html alternative").
    part: str = Field(default="", max_length=200)

    @model_validator(mode="before")
    @classmethod
    def _fill_from_rules(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("category") not in get_args(RiskCategory):
            return data
        rule = risk_rules().category(str(data["category"]))
        filled = dict(data)
        filled["reason_code"] = filled.get("reason_code") or rule.reason_code
        filled["queue"] = filled.get("queue") or rule.queue
        filled.setdefault("severity", rule.severity)
        return filled

    @field_validator("evidence", mode="before")
    @classmethod
    def _short_evidence(cls, value: object) -> str:
        return _squeeze(str(value), _EVIDENCE_MAX_CHARS)

    @model_validator(mode="after")
    def _matches_rules(self) -> RiskFlag:
        rule = risk_rules().category(self.category)
        if (self.reason_code, self.queue) != (rule.reason_code, rule.queue):
            raise ValueError(
                f"{self.category} flags carry reason code {rule.reason_code!r} and queue "
                f"{rule.queue!r}, not {self.reason_code!r} / {self.queue!r}"
            )
        return self

    @property
    def priority(self) -> int:
        """Lower is more urgent (the policy's severity order); from the risk rules."""
        return risk_rules().category(self.category).priority

    def describe(self) -> str:
        """One line for reviewers: category, rule, where, and the words that matched."""
        where = f"{self.where} ({self.part})" if self.part else self.where
        rule = f" rule {self.rule}," if self.rule else ""
        return f"{self.category}:{rule} in {where}: \"{self.evidence}\""


class RiskAssessment(BaseModel):
    """What the safety check found in one email; empty ``flags`` means nothing risky."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    flags: tuple[RiskFlag, ...] = ()

    @property
    def top_flag(self) -> RiskFlag | None:
        """The most urgent flag: highest severity first, then category priority."""
        if not self.flags:
            return None
        return min(self.flags, key=lambda flag: (flag.severity != "high", flag.priority))

    @property
    def level(self) -> RiskLevel:
        """``high`` if any flag is high, ``elevated`` if there are only milder flags."""
        if any(flag.severity == "high" for flag in self.flags):
            return "high"
        return "elevated" if self.flags else "none"

    @property
    def forced_escalation(self) -> bool:
        """True when a human team must handle the email, whatever a model decides."""
        return self.level == "high"

    @property
    def reason_code(self) -> str | None:
        """The reason code of the most urgent flag (the policy's severity order)."""
        top = self.top_flag
        return top.reason_code if top else None

    @property
    def queue(self) -> str | None:
        """The escalation queue of the most urgent flag."""
        top = self.top_flag
        return top.queue if top else None

    @property
    def categories(self) -> tuple[RiskCategory, ...]:
        """The flagged categories, most urgent first, without repeats."""
        ordered = sorted(self.flags, key=lambda flag: flag.priority)
        return tuple(dict.fromkeys(flag.category for flag in ordered))


# -------------------------------------------------------------------------------- matching


def _words_before(text: str, position: int, words: int) -> str:
    # Words are short; a generous slice keeps this cheap even in a very long email.
    return " ".join(text[max(0, position - 40 * words) : position].split(" ")[-words - 1 :])


def _words_after(text: str, position: int, words: int) -> str:
    return " ".join(text[position : position + 40 * words].split(" ")[: words + 1])


@dataclass(frozen=True)
class _Occurrence:
    view: str
    start: int
    end: int
    context_chars: int

    @property
    def before(self) -> str:
        return self.view[max(0, self.start - self.context_chars) : self.start]

    @property
    def after(self) -> str:
        return self.view[self.end : self.end + self.context_chars]

    def near(self, words: int) -> tuple[str, str]:
        return _words_before(self.view, self.start, words), _words_after(self.view, self.end, words)


def _applies(exception: _Exception, occurrence: _Occurrence) -> bool:
    """Whether ``exception`` defuses this one occurrence: all conditions hold, no veto does."""
    if exception.before and not exception.before.search(occurrence.before):
        return False
    if exception.after and not exception.after.match(occurrence.after):
        return False
    if exception.unless_before and exception.unless_before.search(occurrence.before):
        return False
    if exception.unless_after and exception.unless_after.match(occurrence.after):
        return False
    if not (exception.near or exception.unless_near):
        return True
    sides = occurrence.near(exception.window)
    if exception.near and not any(exception.near.search(side) for side in sides):
        return False
    return not (exception.unless_near and any(exception.unless_near.search(s) for s in sides))


def _first_live_match(trigger: _Trigger, view: str, context_chars: int) -> re.Match[str] | None:
    for pattern in trigger.patterns:
        for match in pattern.finditer(view):
            occurrence = _Occurrence(view, match.start(), match.end(), context_chars)
            if not any(_applies(exception, occurrence) for exception in trigger.exceptions):
                return match
    return None


def _spaced_runs(views: Iterable[str]) -> tuple[str, ...]:
    return _unique(
        _NOT_LETTER.sub("", run.group(0))
        for view in views
        for run in _SPACED_LETTERS.finditer(view)
    )


def _spaced_evidence(rule: CategoryRule, runs: Iterable[str]) -> str | None:
    # A run that spells exactly one word is already matched, with its exceptions, in the
    # collapsed view; only words glued to their neighbours ("iwillsueyou") are judged here.
    for run in runs:
        for pattern in rule.spaced:
            match = pattern.search(run)
            if match and (match.start(), match.end()) != (0, len(run)):
                return run
    return None


def _scan(text: str, where: Where, rules: RiskRules, part: str = "") -> Iterator[RiskFlag]:
    leet = _leet_views(text)
    views = _with_spaced_letters_collapsed(leet)
    runs = _spaced_runs(leet)
    near: dict[str, tuple[str, str]] | None = None
    for rule in rules.categories:
        found = _category_evidence(rule, views, rules.context_chars)
        if found is None and runs:
            spaced = _spaced_evidence(rule, runs)
            found = (spaced, "spaced_letters") if spaced is not None else None
        if found is None and rules.near_misses:
            if near is None:
                near = _near_miss_hits(views[0], rules)
            found = near.get(rule.category)
        if found is not None:
            evidence, trigger_id = found
            yield RiskFlag(
                category=rule.category,
                reason_code=rule.reason_code,
                queue=rule.queue,
                severity=rule.severity,
                evidence=_squeeze(evidence, rules.evidence_max_chars),
                where=where,
                rule=trigger_id,
                part=part[:200],
            )


_WORD = re.compile(r"[a-z]+")


def _near_miss_hits(view: str, rules: RiskRules) -> dict[str, tuple[str, str]]:
    """Per category, the first word one edit away from a near-miss word, with context near it.

    Only words of ``near_miss_min_length`` letters or more count, never a word that starts with
    the listed word (inflections are the triggers' business) nor a listed real word; a word of
    the category's context must stand within ``near_miss_window`` words.
    """
    hits: dict[str, tuple[str, str]] = {}
    words = [match for match in _WORD.finditer(view)
             if len(match.group(0)) >= rules.near_miss_min_length - 1]
    for match in words:
        token = match.group(0)
        candidates: dict[tuple[str, str], _NearMissWord] = {}
        for key in _deletions(token):
            for entry in rules.near_misses.get(key, ()):
                candidates.setdefault((entry.category, entry.word), entry)
        for entry in candidates.values():
            if entry.category in hits or token.startswith(entry.word):
                continue
            if token in entry.real_words or not _one_edit_apart(token, entry.word):
                continue
            if len(entry.word) < rules.near_miss_min_length:
                continue
            before = _words_before(view, match.start(), rules.near_miss_window)
            after = _words_after(view, match.end(), rules.near_miss_window)
            if entry.context.search(before) or entry.context.search(after):
                evidence = " ".join((before[-40:], token, after[:40])).strip()
                hits[entry.category] = (evidence, f"near_miss:{entry.word}")
    return hits


def _category_evidence(
    rule: CategoryRule, views: Iterable[str], context_chars: int
) -> tuple[str, str] | None:
    for view in views:
        for trigger in rule.triggers:
            match = _first_live_match(trigger, view, context_chars)
            if match:
                return match.group(0), trigger.id
    return None


def _ordered(flags: Iterable[RiskFlag]) -> tuple[RiskFlag, ...]:
    return tuple(sorted(flags, key=lambda flag: (flag.priority, _WHERE_ORDER[flag.where])))


def assess_risk(
    subject: str,
    body: str,
    *,
    quoted: str = "",
    parts: Iterable[tuple[Where, str, str]] = (),
) -> RiskAssessment:
    """Apply the risk rules to everything a reader sees of an email.

    ``subject``, ``body`` (the new text) and ``quoted`` (the quoted history: a customer quoting
    an earlier threat still escalates), then each extra part as ``(where, label, text)``: an
    alternative that says more than the body, an inline part, a text attachment, a forwarded
    message. At most one flag per category and part; ``evidence`` is the matched text as
    normalised, ``rule`` the rule that matched.
    """
    rules = risk_rules()
    fixed: tuple[tuple[Where, str, str], ...] = (
        ("subject", "", subject),
        ("body", "", body),
        ("quoted", "", quoted),
    )
    flags = (
        flag
        for where, label, text in (*fixed, *parts)
        if text.strip()
        for flag in _scan(text, where, rules, label)
    )
    return RiskAssessment(flags=_ordered(flags))


def raise_only(
    rule_assessment: RiskAssessment, classifier_flags: Iterable[RiskFlag]
) -> RiskAssessment:
    """Merge a model classifier's flags into the rule assessment; flags are only ever added.

    Every flag of ``rule_assessment`` survives unchanged, so the level, the forced escalation
    and the reason code can rise but never fall. Duplicates of existing flags are dropped.
    """
    merged = dict.fromkeys(rule_assessment.flags)
    for flag in classifier_flags:
        checked = flag if isinstance(flag, RiskFlag) else RiskFlag.model_validate(flag)
        merged.setdefault(checked)
    return RiskAssessment(flags=_ordered(merged))

"""Customer replies: the template that writes them and the validator every reply must pass.

The model never writes the e-mail itself. It supplies structured content (:class:`DraftRequest`)
and :func:`compose_reply` lays it out in the house template, addressed to the sender and signed
as the policy says. :func:`validate_reply` then checks the text the way a careful reviewer
would, and the same function checks a reviewer's edited text before it is sent:

* the policy's forbidden phrases, in any disguise (case, spacing, zero-width characters,
  Cyrillic or Greek look-alike letters, accents, digits standing in for letters);
* the sign-off, the length bounds and left-over template placeholders;
* staff-only policy text (the policy document's ``Internal:`` lines);
* data loss: e-mail addresses, phone numbers and street addresses other than the sender's own,
  and links, images or HTML of any kind.

Everything is plain text; the checks assume the text may have been written by an attacker who
got instructions into the customer's e-mail.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable
from email.utils import getaddresses
from functools import cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from mediavault.policies import policy_rules
from mediavault.tools.email_fields import MAX_SUBJECT_CHARS, split_sender

# --------------------------------------------------------------------------------------------
# What the model supplies, and what the template produces.

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
    # Checked against the decision's asks and the communication guidelines (drafting/asks.py).
    "ask_unanswered",
    "duplicate_apology",
    "bare_imperative",
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


class DraftOutcome(BaseModel):
    """A composed reply and the validator's verdict on it."""

    model_config = ConfigDict(frozen=True)

    reply: CustomerReply
    report: ValidationReport


# --------------------------------------------------------------------------------------------
# Normalisation: every check reads text the way a human reader would see it.

# Letters from other scripts that render like Latin ones; NFKC keeps them distinct.
_HOMOGLYPHS = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i",
        "ј": "j", "ԁ": "d", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ь": "b", "г": "r",
        "п": "n", "А": "A", "В": "B", "Е": "E", "Ё": "E", "К": "K", "М": "M", "Н": "H",
        "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I",
        "Ї": "I", "Ј": "J", "Ԁ": "D", "Һ": "H", "Ӏ": "I", "Ԛ": "Q", "Ԝ": "W",
        # Greek
        "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v",
        "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "Α": "A", "Β": "B",
        "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
        "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
        # Latin oddities and full stops that NFKC leaves alone
        "ı": "i", "ȷ": "j", "ɡ": "g", "ɑ": "a", "ʟ": "L", "。": ".", "｡": ".", "︒": ".",
    }
)
# Invisible characters that are not format characters (category Cf is removed wholesale).
_INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\uffa0")


def fold_text(text: str) -> str:
    """The text as a reader perceives it: compatibility forms, invisibles and accents removed,
    look-alike letters mapped to Latin. Letter case is kept."""
    if text.isascii():  # nothing to fold, and most replies are plain ASCII
        return text
    text = unicodedata.normalize("NFKC", text)
    text = "".join(
        ch
        for ch in unicodedata.normalize("NFKD", text)
        if unicodedata.category(ch) not in ("Cf", "Mn", "Me") and ch not in _INVISIBLE
    )
    return unicodedata.normalize("NFC", text).translate(_HOMOGLYPHS)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", fold_text(text).casefold())


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------
# The template.

_HONORIFICS = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam"})
_NAME_TOKEN = re.compile(r"^[^\W\d_]+(?:['’-][^\W\d_]+)*$")
_REPLY_PREFIX = re.compile(r"^(?:\s*(?:re|aw|sv)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_SUMMARY_LEAD = re.compile(
    r"^(?:thank you for writing to us about|your (?:message|e-?mail|note|letter) "
    r"(?:about|regarding|concerning|on))\s+",
    re.IGNORECASE,
)
_LOWER_FIRST = frozenset(
    {"your", "the", "a", "an", "some", "this", "that", "these", "those", "how", "why", "what",
     "whether", "when", "where", "which", "late", "our"}
)
_BULLET_LEAD = re.compile(r"^(?:[-*•·]\s+|\d+[.)]\s+)")
APOLOGY = "We are sorry for the trouble and frustration this has caused you."
FALLBACK_SUBJECT = "Your message to MediaVault"


def greeting_name(customer_name: str | None) -> str | None:
    """The first name to greet, or None when the name is missing or does not look like one.

    Names from the database are often upper case ("MARY SMITH"), so case is tidied; anything
    that is not plainly a name (brackets, digits, markup) is dropped in favour of "Hello,".
    """
    if not customer_name:
        return None
    tokens = unicodedata.normalize("NFKC", customer_name).split()
    while tokens and tokens[0].rstrip(".").lower() in _HONORIFICS:
        tokens.pop(0)
    if not tokens or len(tokens[0]) > 40 or not _NAME_TOKEN.match(tokens[0]):
        return None
    first = tokens[0]
    if first.isupper() or first.islower():
        first = first.title()
    return first


def reply_subject(subject: str) -> str:
    """``Re: <subject>`` on one line, never ``Re: Re:``."""
    text = _one_line(re.sub(r"[\x00-\x1f\x7f\x85\u2028\u2029]", " ", subject))
    text = _REPLY_PREFIX.sub("", text).strip() or FALLBACK_SUBJECT
    return f"Re: {text}"[:MAX_SUBJECT_CHARS]


def _summary_clause(summary: str) -> str:
    clause = _SUMMARY_LEAD.sub("", _one_line(summary)).rstrip(" .!?;:,")
    first, _, rest = clause.partition(" ")
    # "Your late fee" reads "about your late fee"; "ACADEMY DINOSAUR" and names stay as written.
    capitalised = first[:1].isupper() and (len(first) == 1 or first[1:].islower())
    if first.lower() in _LOWER_FIRST and capitalised:
        clause = f"{first.lower()} {rest}".rstrip()
    return clause or "your message"


def _bullets(items: Iterable[str]) -> list[str]:
    lines = []
    for item in items:
        text = _BULLET_LEAD.sub("", _one_line(item))
        if text:
            lines.append(f"- {text}")
    return lines


def compose_reply(
    request: DraftRequest, *, customer_name: str | None, sender_address: str, subject: str
) -> CustomerReply:
    """Lay the model's content out in the house template, addressed to the sender.

    The recipient is always ``sender_address``, whatever ``request.to`` says; the caller checks
    ``request.to`` through :func:`validate_reply` (see :func:`prepare_draft`).
    """
    _, recipient = split_sender(sender_address)
    name = greeting_name(customer_name)
    paragraphs: list[list[str]] = [[f"Hello {name}," if name else "Hello,"]]
    opening = f"Thank you for writing to us about {_summary_clause(request.summary)}."
    # The policy asks for the apology before anything is explained.
    paragraphs.append([f"{APOLOGY} {opening}" if request.tone == "apologetic" else opening])
    for heading, items in (
        ("Here is what we found:", request.findings),
        ("What our policy says:", request.policy_points),
        ("What happens next:", request.next_steps),
    ):
        bullets = _bullets(items)
        if bullets:
            paragraphs.append([heading, *bullets])
    paragraphs.append(["Kind regards,", policy_rules().communication.sign_off])
    body = "\n\n".join("\n".join(lines) for lines in paragraphs) + "\n"
    return CustomerReply(
        to=recipient,
        subject=reply_subject(subject),
        body=body,
        policy_refs=list(dict.fromkeys(request.policy_refs)),
    )


# --------------------------------------------------------------------------------------------
# Forbidden phrases and staff-only text.

# Characters commonly typed in place of a letter to slip past a filter ("gu4rant33").
_STAND_INS = {
    "a": "a4@", "b": "b8", "e": "e3", "g": "g9", "i": "i1!|", "l": "l1|", "o": "o0",
    "s": "s5$", "t": "t7+", "z": "z2",
}


_PHRASE_GAP = r"(?:(?![!|+$@])[\W_])"  # a separator that is not itself a stand-in letter


def _phrase_pattern(phrase: str) -> re.Pattern[str] | None:
    words = _words(phrase)
    if not words:
        return None
    letter_gap = _PHRASE_GAP + "{0,2}"  # "g u a r a n t e e", "gu-arantee", "g.u.a.r.a.n.t.e.e"
    word_gap = _PHRASE_GAP + "{0,4}"
    parts = [
        letter_gap.join(f"[{re.escape(_STAND_INS.get(ch, ch))}]+" for ch in word) for word in words
    ]
    # Long last words also match their inflections ("guaranteed", "promises"); a short one
    # must end there, or "as an ai" would match "as an aide". A match starts only where a word
    # does, which also keeps the search linear on long runs of look-alike characters.
    end = "" if len(words[-1]) >= 4 else r"(?![a-z0-9])"
    return re.compile(r"(?<![a-z0-9!|+$@])" + word_gap.join(parts) + end)


@cache
def _forbidden_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    patterns = []
    for phrase in policy_rules().communication.forbidden_phrases:
        pattern = _phrase_pattern(phrase)
        if pattern is not None:
            patterns.append((phrase, pattern))
    return tuple(patterns)


# Staff-only lines are long sentences; a run of this many of their words in a reply is a leak,
# while shorter runs ("a refund before") are ordinary language.
_INTERNAL_WINDOW = 8


def _internal_windows(phrases: Iterable[str]) -> set[tuple[str, ...]]:
    windows: set[tuple[str, ...]] = set()
    for phrase in phrases:
        words = _words(phrase)
        size = min(len(words), _INTERNAL_WINDOW)
        windows.update(tuple(words[i : i + size]) for i in range(len(words) - size + 1) if size)
    return windows


def _repeats_internal_text(text: str, windows: set[tuple[str, ...]]) -> bool:
    words = _words(text)
    for size in {len(window) for window in windows}:
        if any(tuple(words[i : i + size]) in windows for i in range(len(words) - size + 1)):
            return True
    return False


def _default_internal_phrases() -> tuple[str, ...]:
    try:
        from mediavault.tools.policy_retrieval import internal_policy_phrases
    except ImportError:
        # Retrieval not installed: only the explicit phrases a caller passes are checked.
        return ()
    return tuple(internal_policy_phrases())


def _resolve_internal(internal_phrases: Iterable[str] | None) -> tuple[str, ...]:
    if internal_phrases is None:
        return _default_internal_phrases()
    return tuple(internal_phrases)


_SENTENCE_BREAK = re.compile(r"(?<=[.!?;])\s+|\n+")


def strip_internal_policy_text(text: str, internal_phrases: Iterable[str] | None = None) -> str:
    """``text`` without the sentences that repeat a staff-only policy line.

    ``internal_phrases`` defaults to the shipped policy's ``Internal:`` lines.
    """
    windows = _internal_windows(_resolve_internal(internal_phrases))
    if not windows:
        return text.strip()
    kept = [
        sentence.strip()
        for sentence in _SENTENCE_BREAK.split(text)
        if sentence.strip() and not _repeats_internal_text(sentence, windows)
    ]
    return " ".join(kept)


# --------------------------------------------------------------------------------------------
# Data-loss prevention: contact details and links.

_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]++\s?@\s?[\w-]+(?:\.[\w-]+)*\.[a-z]{2,24}(?![\w-])", re.IGNORECASE
)
# Tolerates what NFKC does not undo: "jane [at] example [dot] com", "jane(at)example(.)com".
_DEFANG_AT = re.compile(r"\s*[\[({]\s*(?:@|at)\s*[\])}]\s*")
_DEFANG_DOT = re.compile(r"\s*[\[({]\s*(?:\.|dot)\s*[\])}]\s*")
# Top-level domains that are not ordinary English words, so "evil.com" is a link but
# "to.do" is not; any word.word followed by a path ("x.tk/a") is a link whatever its ending.
_TLDS = (
    "com|net|org|edu|gov|mil|int|info|biz|io|co|uk|ca|de|fr|es|nl|ch|au|nz|ru|cn|jp|kr|br|"
    "mx|ar|eu|pl|se|dk|fi|cz|pt|ua|tr|za|xyz|top|online|site|app|dev|tv|ly|gg|ai|sh|link|"
    "click|zip|mov|store|shop|club|tech|cloud|pro|mobi|icu|vip|bid|loan|email|space|website|"
    "ws|cc|su|tk|ml|ga|cf|gq|pw|la|im|ms|nu|onion|local|example|test|invalid|localhost|lol|"
    "wtf|rocks|news|media|video|stream|download|support|services|company|network|digital|"
    "systems|ninja|guru|buzz|cam|monster|quest|fyi|bit|ovh|host|press|vc"
)
_DOMAIN = re.compile(
    r"(?<![\w@.-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,24}))(?![a-z0-9-])"
    r"(\s*[/?#:]\S*)?"
)
_TLD_SET = frozenset(_TLDS.split("|"))
_URL_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![a-z])(?:h[tx]{2}ps?|ftps?|sftp|file|wss?)\s*[\[(]?:[\])]?\s*/\s*/"),
    "a web link"),
    (re.compile(r"(?<![a-z])hxxps?(?![a-z])"), "a disguised web link"),
    (re.compile(r"(?<![\w.])www\d{0,3}\s*\.\s*[a-z0-9-]"), "a web address"),
    (re.compile(r"(?<![a-z])(?:javascript|vbscript|livescript)\s*:"), "a script link"),
    (re.compile(r"(?<![a-z])data\s*:\s*[a-z]+/[a-z0-9.+-]+"), "a data link"),
    (re.compile(r"(?<![a-z])mailto\s*:"), "a mail link"),
    (re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.]?\d)"), "an IP address"),
    (re.compile(r"(?<![a-z0-9-])[a-z0-9-]++\s+dot\s+(?:" + _TLDS + r")(?![a-z])"),
    "a spelled-out web address"),
)
# Any "![...](" or "![...][" is an image, however spaced; a link needs "](" as markdown does.
_MARKDOWN_IMAGE = re.compile(r"!\s*\[[^\]\n]{0,500}\]\s*[(\[]")
_MARKDOWN_LINK = re.compile(r"\[[^\]\n]{0,500}\]\(|^\s*\[[^\]\n]+\]:\s*\S", re.MULTILINE)
_SPELLED_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]++\s+at\s+[\w-]+(?:\s+dot\s+[\w-]+)*\s+dot\s+(?:" + _TLDS + r")(?![a-z])"
)

# Dates, date ranges, times and money are masked before looking for phone numbers.
_NOT_PHONE = re.compile(
    r"\b\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?\b"
    r"|\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b"
    r"|\b(?:19|20)\d{2}\s?[-–]\s?(?:19|20)\d{2}\b"
    r"|[$€£¥]\s?\d[\d,]*(?:\.\d+)?"
    r"|\b\d[\d,]*\.\d{2}\s?(?:usd|eur|gbp|dollars?)\b",
    re.IGNORECASE,
)
_PHONE = re.compile(
    r"(?<![\w.+])(?:\+\s?)?\(?\d+\)?(?:(?:[ .\-]{1,2}|(?<=\)))\(?\d+\)?)*"
)
_MIN_PHONE_DIGITS = 7
_MAX_PHONE_DIGITS = 15
# Digits written as words ("five two eight, five five five ...") are a number all the same;
# seven or more in a row never happen in ordinary prose.
_DIGIT_WORDS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
_SPELLED_NUMBER = re.compile(
    r"(?<![a-z])(?:(?:" + "|".join(_DIGIT_WORDS) + r")(?![a-z])[\s,.\-/()]*){7,}"
)
# A number split over two list lines ("528-555" / "- 0988") reads as one number.
_LIST_LINE_BREAK = re.compile(r"[ \t]*\n[ \t]*(?:[-*•·][ \t]+)?")

_STREET_SUFFIXES = (
    "Alley|Avenue|Branch|Bridge|Brooks?|Burgs?|Bypass|Camp|Canyon|Cape|Causeway|Centers?|"
    "Circles?|Cliffs?|Club|Common|Corners?|Course|Courts?|Coves?|Creek|Crescent|Crest|"
    "Crossing|Crossroad|Curve|Dale|Dam|Divide|Drives?|Estates?|Expressway|Extensions?|Falls?|"
    "Ferry|Fields?|Flats?|Fords?|Forest|Forges?|Forks?|Fort|Freeway|Gardens?|Gateway|Glens?|"
    "Greens?|Groves?|Harbors?|Haven|Heights|Highway|Hills?|Hollow|Inlet|Islands?|Isle|"
    "Junctions?|Keys?|Knolls?|Lakes?|Land|Landing|Lane|Lights?|Loaf|Locks?|Lodge|Loop|Mall|"
    "Manors?|Meadows?|Mews|Mills?|Mission|Motorway|Mount|Mountains?|Neck|Orchard|Oval|"
    "Overpass|Parks?|Parkways?|Pass|Passage|Path|Pike|Pines?|Place|Plains?|Plaza|Points?|"
    "Ports?|Prairie|Radial|Ramp|Ranch|Rapids?|Rest|Ridges?|River|Roads?|Route|Row|Rue|Run|"
    "Shoals?|Shores?|Skyway|Springs?|Spurs?|Squares?|Station|Stravenue|Stream|Streets?|"
    "Summit|Terrace|Throughway|Trace|Track|Trafficway|Trail|Tunnel|Turnpike|Underpass|"
    "Unions?|Valleys?|Via|Viaduct|Views?|Villages?|Ville|Vista|Walks?|Wall|Ways?|Wells?|"
    "St|Ave|Rd|Blvd|Ln|Dr|Ct|Pl|Pkwy|Hwy|Sq|Ter|Cir|Trl|Expy|Fwy"
)
# Lower-case street names are read only before an unmistakable suffix, so "3 days by the way"
# stays ordinary text.
_PLAIN_SUFFIXES = (
    "street|avenue|road|boulevard|lane|drive|parkway|manor|terrace|highway|blvd|court|place|"
    "circle|crescent|plaza|square"
)
_NAME_CONNECTORS = "de|del|la|le|los|las|of|the|van|von|da|di|du|el|san|st"
_STREET_ADDRESS = re.compile(
    r"(?<![\w$.,])\d{1,6}[A-Za-z]?,?[ \t]+"
    r"(?:(?:\(?[A-Z0-9][\w'’.-]*\)?|(?:" + _NAME_CONNECTORS + r"))[ \t]+){1,5}?"
    r"(?i:" + _STREET_SUFFIXES + r")\b\.?"
    r"|(?<![\w$.,])\d{1,6}[ \t]+[a-z][a-z'-]+[ \t]+(?i:" + _PLAIN_SUFFIXES + r")\b"
    # Street type first, as in French, Italian and Spanish addresses: "88 rue de la Paix".
    r"|(?<![\w$.,])\d{1,6},?[ \t]+(?i:rue|via|calle|avenida|chemin|strada|rua)[ \t]+"
    r"(?:(?i:" + _NAME_CONNECTORS + r"|des|du|d')[ \t']*)*[A-Z][\w'-]+"
)
_PO_BOX = re.compile(r"\bp\.?[ \t]?o\.?[ \t]?box[ \t]+\d+", re.IGNORECASE)
# Film titles are upper case ("SECRET HIGHWAY", "FROZEN JUNCTION") and often end in a word that
# is also a street type. An all-capitals match counts as an address only with a street type
# no title generator would pick...
_CAPITALS_SUFFIXES = frozenset(
    {"street", "st", "avenue", "ave", "road", "rd", "boulevard", "blvd", "lane", "ln", "drive",
     "dr", "parkway", "pkwy", "court", "ct", "place", "pl", "terrace", "manor", "loop"}
)
# ...and a number labelled as an id ("rental 1234 SECRET HIGHWAY") is not a house number.
_ID_LABEL = re.compile(
    r"(?:\b(?:rentals?|payments?|inventory|id|number|order|ticket|invoice|ref|reference)"
    r"|\bno\.?|#)[ \t]*$",
    re.IGNORECASE,
)


def _looks_like_street_address(match: re.Match[str]) -> bool:
    text = match.group()
    if _ID_LABEL.search(match.string[max(0, match.start() - 20) : match.start()]):
        return False
    letters = re.sub(r"[^A-Za-z]", "", text)
    if letters.isupper():
        suffix = re.findall(r"[A-Za-z]+", text)[-1].lower()
        return suffix in _CAPITALS_SUFFIXES
    return True


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _address_key(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", fold_text(text).casefold()))


class _Contacts:
    """The sender's own details, normalised once: the only contact data a reply may carry."""

    def __init__(self, sender_address: str, allowed: Collection[str]) -> None:
        self.emails: set[str] = set()
        self.phones: set[str] = set()
        self.addresses: set[str] = set()
        for entry in (sender_address, *allowed):
            if not entry or not entry.strip():
                continue
            folded = fold_text(entry).strip()
            if "@" in folded:
                self.emails.add(folded.casefold())
            elif re.search(r"[^\W\d_]", folded):
                key = _address_key(folded)
                if key:
                    self.addresses.add(key)
            elif len(_digits(folded)) >= _MIN_PHONE_DIGITS:
                self.phones.add(_digits(folded))

    def has_email(self, value: str) -> bool:
        return re.sub(r"\s", "", value).casefold() in self.emails

    def has_phone(self, digits: str) -> bool:
        # "+1 403 555 0100" and "403-555-0100" are one number: a country code may be added.
        for own in self.phones:
            short, long = sorted((own, digits), key=len)
            if long.endswith(short) and len(long) - len(short) <= 3:
                return True
        return False

    def has_address(self, value: str) -> bool:
        key = f" {_address_key(value)} "
        return any(key in f" {own} " for own in self.addresses)


def _masked(value: str) -> str:
    value = _one_line(value)
    return value[:3] + "…" if len(value) > 3 else "…"


def _find_contact_leaks(folded: str, contacts: _Contacts) -> list[ValidationProblem]:
    problems: list[ValidationProblem] = []
    lowered = _DEFANG_DOT.sub(".", _DEFANG_AT.sub("@", folded.casefold()))
    for match in _EMAIL.finditer(lowered):
        if not contacts.has_email(match.group()):
            problems.append(
                ValidationProblem(
                    code="dlp_email",
                    detail=f"an e-mail address that is not the sender's ({_masked(match.group())})",
                )
            )
    for match in _SPELLED_EMAIL.finditer(lowered):
        problems.append(
            ValidationProblem(
                code="dlp_email",
                detail=f"a spelled-out e-mail address ({_masked(match.group())})",
            )
        )
    joined = _LIST_LINE_BREAK.sub(" ", folded)
    without_dates = _NOT_PHONE.sub(lambda m: "~" * len(m.group()), joined)
    without_emails = _EMAIL.sub(lambda m: "~" * len(m.group()), without_dates)
    for match in _SPELLED_NUMBER.finditer(lowered):
        digits = "".join(_DIGIT_WORDS[word] for word in re.findall(r"[a-z]+", match.group()))
        if _MIN_PHONE_DIGITS <= len(digits) <= _MAX_PHONE_DIGITS and not contacts.has_phone(
            digits
        ):
            problems.append(
                ValidationProblem(
                    code="dlp_phone",
                    detail=f"a phone number written in words ({_masked(match.group())})",
                )
            )
    for match in _PHONE.finditer(without_emails):
        digits = _digits(match.group())
        # Spaced-out digits ("5 5 5 0 1 0 0") count too: prose rarely strings numbers that way.
        if not _MIN_PHONE_DIGITS <= len(digits) <= _MAX_PHONE_DIGITS:
            continue
        if not contacts.has_phone(digits):
            problems.append(
                ValidationProblem(
                    code="dlp_phone",
                    detail=f"a phone number that is not the sender's ({_masked(match.group())})",
                )
            )
    addresses = [m for m in _STREET_ADDRESS.finditer(folded) if _looks_like_street_address(m)]
    for match in [*addresses, *_PO_BOX.finditer(folded)]:
        if not contacts.has_address(match.group()):
            problems.append(
                ValidationProblem(
                    code="dlp_street_address",
                    detail=f"a street address that is not the sender's ({_masked(match.group())})",
                )
            )
    return problems


def _find_links(folded: str) -> list[ValidationProblem]:
    problems: list[ValidationProblem] = []
    if _MARKDOWN_IMAGE.search(folded):
        problems.append(
            ValidationProblem(code="dlp_markdown_image", detail="a markdown image")
        )
    if _MARKDOWN_LINK.search(folded):
        problems.append(ValidationProblem(code="dlp_url", detail="a markdown link"))
    lowered = _DEFANG_DOT.sub(".", folded.casefold())
    for pattern, what in _URL_RULES:
        found = pattern.search(lowered)
        if found:
            detail = f"{what} ({_masked(found.group())})"
            problems.append(ValidationProblem(code="dlp_url", detail=detail))
    without_emails = _EMAIL.sub(" ", _DEFANG_AT.sub("@", lowered))
    for match in _DOMAIN.finditer(without_emails):
        if match.group(2) in _TLD_SET or match.group(3):
            problems.append(
                ValidationProblem(
                    code="dlp_url", detail=f"a web address ({_masked(match.group(1))})"
                )
            )
    return problems


# --------------------------------------------------------------------------------------------
# Markup and placeholders.

_HTML_TAG_NAMES = """
    a abbr address animate area article aside audio b base basefont bdi bdo bgsound big
    blink blockquote body br button canvas caption center cite code col colgroup details dialog
    div dl dt dd em embed fieldset figure font footer form frame frameset h1 h2 h3 h4 h5 h6 head
    header hr html i iframe image img input ins kbd keygen label legend li link main map mark
    marquee math menu meta meter nav noscript object ol optgroup option output p param picture
    portal pre progress q s samp script section select set slot small source span strike strong
    style sub summary sup svg table tbody td template textarea tfoot th thead time title tr
    track tt u ul use var video wbr xml xmp"""
_HTML_TAGS = frozenset(_HTML_TAG_NAMES.split())
# Tags that do harm even without a closing bracket ("<img src=x onerror=...").
_DANGEROUS_TAGS = frozenset(
    {"a", "base", "embed", "form", "iframe", "img", "image", "link", "math", "meta", "object",
     "script", "style", "svg"}
)
_ANGLE = re.compile(r"<\s*([/!?])?\s*([a-z][a-z0-9:_-]*)?([^<>\n]{0,300}?)(>|$|(?=<))",
                    re.MULTILINE)
_ENTITY = re.compile(r"&(?:#\d{1,7}|#x[0-9a-f]{1,6}|lt|gt|amp|quot|apos|nbsp);")
_PLACEHOLDER_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\{[^{}\n]{0,100}\}|\{\{|\}\}|\$\{"), "a template field in braces"),
    (re.compile(r"(?<![a-z])(?:todo|fixme|tbd|xxx+)(?![a-z])", re.IGNORECASE), "a to-do marker"),
    (re.compile(r"%[A-Za-z_]{2,40}%"), "a template variable"),
    (re.compile(r"lorem\s+ipsum", re.IGNORECASE), "filler text"),
)
_BRACKETED = re.compile(r"\[([^\[\]\n]{1,60})\](?!\s*\()")
_PLACEHOLDER_WORDS = frozenset(
    {"name", "first", "last", "customer", "insert", "placeholder", "date", "amount", "title",
     "film", "address", "email", "e-mail", "phone", "number", "company", "agent", "here", "x"}
)


def _find_markup_and_placeholders(folded: str) -> list[ValidationProblem]:
    problems: list[ValidationProblem] = []
    for match in _ANGLE.finditer(folded.casefold()):
        marker, name, rest = match.group(1) or "", match.group(2) or "", match.group(3)
        closed = match.group(4) == ">"
        if "@" in rest and "=" not in rest:
            continue  # "<jane@example.com>": an address, judged by the contact checks
        if marker in ("!", "?") or (marker == "/" and name and closed):
            problems.append(
                ValidationProblem(code="dlp_html", detail=f"HTML markup (<{marker}{name}…)")
            )
        elif (
            name in _DANGEROUS_TAGS
            or (name in _HTML_TAGS and (closed or "=" in rest))
            or (name and "=" in rest and closed)
        ):
            problems.append(ValidationProblem(code="dlp_html", detail=f"an HTML tag (<{name}>)"))
        elif name and closed:
            problems.append(
                ValidationProblem(code="placeholder", detail=f"a template tag (<{name}…>)")
            )
    if _ENTITY.search(folded.casefold()):
        problems.append(ValidationProblem(code="dlp_html", detail="an HTML character entity"))
    for pattern, what in _PLACEHOLDER_RULES:
        found = pattern.search(folded)
        if found:
            detail = f"{what} ({found.group()})"
            problems.append(ValidationProblem(code="placeholder", detail=detail))
    for match in _BRACKETED.finditer(folded):
        content = match.group(1).strip()
        words = set(re.findall(r"[a-z-]+", content.casefold()))
        shouting = bool(re.search(r"[A-Z]", content)) and not re.search(r"[a-z]", content)
        if shouting or words & _PLACEHOLDER_WORDS:
            detail = f"a bracketed placeholder ([{content}])"
            problems.append(ValidationProblem(code="placeholder", detail=detail))
    return problems


# --------------------------------------------------------------------------------------------
# The validator.


def _recipient_problem(recipient: str | None, sender: str) -> ValidationProblem | None:
    if recipient is None:
        return None
    problem = ValidationProblem(
        code="wrong_recipient", detail="a reply may only be addressed to the sender of the e-mail"
    )
    if not recipient.strip():
        return None
    if re.search(r"[\r\n]", recipient):
        return problem
    addresses = [address for _, address in getaddresses([recipient]) if address]
    if len(addresses) != 1 or addresses[0].strip().casefold() != sender:
        return problem
    return None


def _mask_titles(folded: str, film_titles: Iterable[str]) -> str:
    for title in sorted({_one_line(t) for t in film_titles if t.strip()}, key=len, reverse=True):
        words = [re.escape(word) for word in fold_text(title).split()]
        folded = re.sub(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", " ", folded, flags=re.I)
    return folded


# A reply longer than this is invalid anyway (too_long); reading only this much keeps a huge
# pasted edit from tying up the validator, and never makes an invalid reply look valid.
_MAX_SCANNED_CHARS = 20_000


def validate_reply(
    text: str,
    *,
    sender_address: str,
    allowed_contacts: Collection[str] = (),
    recipient: str | None = None,
    internal_phrases: Iterable[str] | None = None,
    film_titles: Iterable[str] = (),
) -> ValidationReport:
    """Check a reply text (composed or edited by a reviewer) before anyone may send it.

    ``allowed_contacts`` are the sender's own details that a reply may repeat (their phone
    number, postal address, other addresses on file); the sender's address always is.
    ``recipient`` is the address the reply would go to, when someone chose one.
    ``internal_phrases`` default to the shipped policy's staff-only lines. ``film_titles`` are
    catalog titles mentioned in the reply: a title such as "CONFIDENTIAL HARBOR" is a name, not
    a forbidden phrase, so exact titles are not read for phrases or addresses.
    """
    sender = split_sender(sender_address)[1]
    communication = policy_rules().communication
    problems: list[ValidationProblem] = []

    recipient_problem = _recipient_problem(recipient, sender)
    if recipient_problem is not None:
        problems.append(recipient_problem)

    length = len(text.strip())
    if length < communication.draft_min_chars:
        problems.append(
            ValidationProblem(
                code="too_short",
                detail=f"{length} characters; a reply has at least {communication.draft_min_chars}",
            )
        )
    if length > communication.draft_max_chars:
        problems.append(
            ValidationProblem(
                code="too_long",
                detail=f"{length} characters; a reply has at most {communication.draft_max_chars}",
            )
        )

    # Every character of a reply short enough to be valid is read.
    scanned = text.strip()[: max(_MAX_SCANNED_CHARS, communication.draft_max_chars)]
    folded = fold_text(scanned)
    lines = [line for line in fold_text(text).splitlines() if line.strip()]
    last_line = lines[-1].strip(" \t-–—_*.,!:;\"'").casefold() if lines else ""
    if _one_line(last_line) != _one_line(fold_text(communication.sign_off).casefold()):
        problems.append(
            ValidationProblem(
                code="missing_sign_off",
                detail=f'the reply must end with "{communication.sign_off}" on its own line',
            )
        )

    readable = _mask_titles(folded, film_titles)
    lowered = " ".join(readable.casefold().split())
    for phrase, pattern in _forbidden_patterns():
        if pattern.search(lowered):
            problems.append(
                ValidationProblem(code="forbidden_phrase", detail=f'contains "{phrase}"')
            )

    windows = _internal_windows(_resolve_internal(internal_phrases))
    if windows and _repeats_internal_text(scanned, windows):
        # The detail never repeats the staff-only text itself.
        problems.append(
            ValidationProblem(
                code="internal_policy_text", detail="repeats a staff-only policy instruction"
            )
        )

    problems.extend(_find_markup_and_placeholders(folded))
    problems.extend(_find_links(folded))
    problems.extend(_find_contact_leaks(readable, _Contacts(sender, allowed_contacts)))
    return ValidationReport.from_problems(problems)


def prepare_draft(
    request: DraftRequest,
    *,
    customer_name: str | None,
    sender_address: str,
    subject: str,
    allowed_contacts: Collection[str],
    internal_phrases: Iterable[str] | None = None,
    film_titles: Iterable[str] = (),
) -> DraftOutcome:
    """Compose the reply for ``request`` and validate it.

    Staff-only sentences are dropped from the policy points before composing; the recipient the
    model asked for (``request.to``) is checked, while the reply itself always goes to the sender.
    """
    phrases = _resolve_internal(internal_phrases)
    points = [
        kept
        for point in request.policy_points
        if (kept := strip_internal_policy_text(point, phrases))
    ]
    reply = compose_reply(
        request.model_copy(update={"policy_points": points}),
        customer_name=customer_name,
        sender_address=sender_address,
        subject=subject,
    )
    report = validate_reply(
        reply.body,
        sender_address=sender_address,
        allowed_contacts=allowed_contacts,
        recipient=request.to,
        internal_phrases=phrases,
        film_titles=film_titles,
    )
    return DraftOutcome(reply=reply, report=report)


__all__ = [
    "APOLOGY",
    "CustomerReply",
    "DraftOutcome",
    "DraftRequest",
    "ValidationProblem",
    "ValidationReport",
    "compose_reply",
    "fold_text",
    "greeting_name",
    "prepare_draft",
    "reply_subject",
    "strip_internal_policy_text",
    "validate_reply",
]

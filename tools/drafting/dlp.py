"""Data-loss prevention: contact details, links and markup that a reply must not carry."""

from __future__ import annotations

import re
from collections.abc import Collection

from mediavault.tools.drafting.problems import ValidationProblem
from mediavault.tools.drafting.reading import fold_text
from mediavault.tools.drafting.reading import one_line as _one_line

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


class Contacts:
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


def find_contact_leaks(folded: str, contacts: Contacts) -> list[ValidationProblem]:
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


def find_links(folded: str) -> list[ValidationProblem]:
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


def find_markup_and_placeholders(folded: str) -> list[ValidationProblem]:
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


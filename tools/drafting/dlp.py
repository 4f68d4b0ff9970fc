"""Data-loss prevention: contact details, links and markup that a reply must not carry."""

from __future__ import annotations

import html
import re
from collections.abc import Collection
from functools import cache
from urllib.parse import unquote

import tldextract
from text_to_num import alpha2digit

from mediavault.tools.drafting.problems import ValidationProblem
from mediavault.tools.drafting.reading import fold_text
from mediavault.tools.drafting.reading import one_line as _one_line
from mediavault.tools.text_folding import fold_lookalikes, strip_accents

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
                # "Dana Whitfield <dana@example.com>" and a bare address alike
                self.emails.update(e.casefold() for e in re.findall(r"[^\s<>@]+@[^\s<>@]+", folded))
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
# A reply is plain text: markdown (emphasis, code, tables, headings, quotes, rules) and
# BBCode are refused whatever they wrap. "#" before a digit is a number ("rental #15829").
_MARKUP_CHARACTERS = re.compile(
    r"[*`|~^\\]|#(?!\d)|__|(?<![\w])_[^\s_][^_\n]*_(?![\w])|(?<![\w@.])>"
    r"|(?m:^[ \t]*(?:-{3,}|_{3,}|={3,})[ \t]*$)"
    r"|\[/?[a-z]+(?:=[^\]\n]*)?\]"
)
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
    markup = _MARKUP_CHARACTERS.search(folded)
    if markup:
        problems.append(ValidationProblem(
            code="dlp_markup", detail=f"formatting markup ({markup.group().strip()[:10]})"))
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
# Deny by default. The patterns above read contact data written the usual ways; the checks
# below read it the way an attacker writes it: spelled out in any of the languages customers
# write in, split over a sentence, reversed, percent- or entity-encoded, in look-alike
# characters. Anything contact-shaped that is not the sender's own is refused.

# "@" and "." written as words (English, German, French, Spanish, Italian, Dutch, Polish,
# Russian, Japanese) or in brackets.
_AT_WORDS = (
    r"at|ät|arobase|arroba|chiocciola|apenstaartje|apestaart|malpa|małpa|klammeraffe|"
    r"собака|アットマーク|アット"
)
_FOREIGN_AT = re.compile(
    r"(?<![^\W\d_])(?:ät|arobase|arroba|chiocciola|apenstaartje|apestaart|małpa|klammeraffe|"
    r"собака)(?![^\W\d_])|アットマーク|at[\s-]?(?:sign|symbol)|the usual symbol"
    # "jo_doe at gmail": a mailbox at a well-known provider, even without its domain ending
    r"|(?<![^\W\d_])at\s+(?:gmail|googlemail|yahoo|hotmail|outlook|live|icloud|aol|"
    r"protonmail|proton|gmx|yandex|zoho|fastmail|mailbox|posteo|web\.de|orange|free)"
    r"(?![^\W\d_])",
    re.IGNORECASE,
)
_DOT_WORDS = r"dot|punkt|point|punto|punt|kropka|точка|ドット|full[\s-]?stop|period"
_SLASH_WORDS = r"slash|schrägstrich|barra|barre oblique|ukośnik"
_SPELLED_SEPARATORS = (
    (re.compile(r"\s*[\[({]\s*(?:@|" + _AT_WORDS + r")\s*[\])}]\s*", re.IGNORECASE), "@"),
    (re.compile(r"\s*[\[({]\s*(?:\.|" + _DOT_WORDS + r")\s*[\])}]\s*", re.IGNORECASE), "."),
    (re.compile(r"(?<=[\w])\s+(?:" + _AT_WORDS.removeprefix("at|") + r")\s+(?=[\w])",
                re.IGNORECASE), "@"),
    (re.compile(r"(?<=[\w])\s*,?\s+(?:then\s+|and\s+)?(?:a\s+|the\s+)?(?:" + _DOT_WORDS
                + r")\s+(?:and\s+|then\s+)?(?=[\w])", re.IGNORECASE), "."),
    # English "at" only before something shaped like a host: "ana at hotmail, com".
    (re.compile(r"(?<=[\w])\s+(?:" + _SLASH_WORDS + r")\s+(?=[\w])", re.IGNORECASE), "/"),
    (re.compile(r"(?<=\w) \. (?=\w)|(?<=\w) \.(?=\w)|(?<=\w)\. (?=[a-z]{2,6}\b)"), "."),
    (re.compile(r"(?<=\w) / (?=\w)"), "/"),
)
_ANY_EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+", re.IGNORECASE)
_HOST = re.compile(
    r"(?<![\w@-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63})(?![\w-])"
)


def _contact_view(text: str) -> str:
    """``text`` with encodings undone and spelled-out separators made symbols again."""
    view = fold_lookalikes(text, cjk_digits=True)
    view = html.unescape(view)
    view = re.sub(r"%(?:40|2e|2f)", lambda m: unquote(m.group()), view, flags=re.IGNORECASE)
    for pattern, symbol in _SPELLED_SEPARATORS:
        view = pattern.sub(symbol, view)
    return _SPELLED_ENGLISH_EMAIL.sub(_english_email, view)


_SPELLED_ENGLISH_EMAIL = re.compile(
    r"(?<![\w.+-])([\w.+-]++)\s+at\s+([\w-]++(?:\s*+[.,]\s*+[\w-]++)++)", re.IGNORECASE
)


def _english_email(match: re.Match[str]) -> str:
    host = re.sub(r"\s*[.,]\s*", ".", match.group(2))
    if _is_host(host.casefold()):
        return f"{match.group(1)}@{host}"
    return match.group()


@cache
def _suffix_extractor() -> tldextract.TLDExtract:
    # The snapshot of the Public Suffix List shipped inside tldextract: never fetched at run time.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def _is_host(name: str) -> bool:
    """A name with a registered public suffix ("mediavault.help", "bit.ly", "t.ly")."""
    parts = _suffix_extractor()(name)
    return bool(parts.suffix and parts.domain and re.search(r"[a-z]", parts.domain))


def _without_own_addresses(view: str, contacts: Contacts) -> str:
    for own in sorted(contacts.emails, key=len, reverse=True):
        view = re.sub(re.escape(own), " ", view, flags=re.IGNORECASE)
    return view


_LOCAL_OR_BARE_HOST = re.compile(
    r"(?<![a-z])(?:localhost|www)(?![a-z])|\[[0-9a-f:]{3,}\]|(?<![:\w])//\s*[a-z0-9]")


def _find_spelled_contacts(text: str, contacts: Contacts) -> list[ValidationProblem]:
    problems: list[ValidationProblem] = []
    view = _without_own_addresses(_contact_view(text), contacts)
    lowered = strip_accents(view.casefold())
    if "@" in lowered:
        at = lowered.index("@")
        excerpt = _masked(lowered[max(0, at - 6) : at + 6])
        problems.append(ValidationProblem(
            code="dlp_email", detail=f"an e-mail address that is not the sender's ({excerpt})"))
    if _FOREIGN_AT.search(view) or _FOREIGN_AT.search(text):
        problems.append(ValidationProblem(
            code="dlp_email", detail="an e-mail address written out in words"))
    for match in _HOST.finditer(lowered):
        host = match.group(1)
        if not _is_host(host):
            continue
        problems.append(
            ValidationProblem(code="dlp_url", detail=f"a web address ({_masked(host)})"))
        break
    if _LOCAL_OR_BARE_HOST.search(lowered):
        problems.append(ValidationProblem(code="dlp_url", detail="a web address"))
    return problems


# Digits written as words, in the languages customers write in; "oh" only next to another.
_DIGIT_NAMES: dict[str, str] = {}
for _digit, _names in enumerate((
    "zero nought null nul zéro cero zero nulla zero",
    "one eins un une uno um één jeden",
    "two zwei deux dos dois twee dwa",
    "three drei trois tres tre três drie trzy",
    "four vier quatre cuatro quattro quatro cztery",
    "five fünf funf cinq cinco cinque vijf pięć piec",
    "six sechs seis sei zes sześć szesc",
    "seven sieben sept siete sette sete zeven siedem",
    "eight acht huit ocho otto oito osiem",
    "nine neun neuf nueve nove negen dziewięć dziewiec",
)):
    for _name in _names.split():
        _DIGIT_NAMES[_name] = str(_digit)
_DIGIT_NAME_RUN = re.compile(
    r"(?<![^\W\d_])(?<![^\W\d_]-)(?:(?:" + "|".join(sorted(_DIGIT_NAMES, key=len, reverse=True))
    + r"|oh|\d+)(?![^\W\d_])[\s,.\-/()]*){3,}",
    re.IGNORECASE,
)


def _spelled_digits(text: str) -> str:
    """Runs of three or more digit words ("five five five, oh one") written as digits."""

    def _run(match: re.Match[str]) -> str:
        tokens = re.findall(r"[^\W\d_]+|\d+", match.group())
        if all(token.isdigit() for token in tokens):
            return match.group()  # digits already: the phone check reads them as written
        return " ".join(_DIGIT_NAMES.get(t.casefold(), "0" if t.casefold() == "oh"
                                         else t) for t in tokens) + " "

    text = _DIGIT_NAME_RUN.sub(_run, text)
    try:  # "five hundred fifty-five", "twelve hundred", "Fifty-Five West Third Street"
        text = str(alpha2digit(text, "en"))
    except Exception:  # the converter refuses odd input; the digit-word pass above stands
        return text
    # "five fifty-five oh one eighty-seven" only reads as digits once the tens are numbers.
    return _DIGIT_NAME_RUN.sub(_run, text)


_MONTHS = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
# Numbers that are not phone numbers: dates, times, amounts, labelled ids and quantities.
_NOT_A_PHONE_NUMBER = re.compile(
    r"\b\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?\b"
    r"|(?<![\d/.-])\b\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})\b(?![/.-]\d)"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?\b"
    r"|\b\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:" + _MONTHS + r")\b\.?(?:,?\s+\d{4})?"
    r"|\b(?:" + _MONTHS + r")\.?\s+\d{1,2}(?:st|nd|rd|th)?(?:,?\s+\d{4})?"
    r"|\b(?:" + _MONTHS + r")\.?\s+\d{4}\b|\b(?:19|20)\d{2}\b(?!\s*[-./]\s*\d)"
    r"|[$€£¥]\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s?(?:usd|eur|gbp|dollars?|cents?|%)"
    r"|(?:#|\bno\.?\s?|\b(?:rental|payment|inventory|film|store|id|number)s?\s+#?)\d{1,6}\b"
    r"|\b\d+(?:\.\d+)?\s*-?\s*(?:started\s+)?(?:days?|hours?|minutes?|weeks?|months?|years?|"
    r"copies|copy|rentals?|films?|items?|payments?|times|x|per)\b"
    r"|\b\d+(?:\.\d+)?\s*(?:[x×*+=<>]|or\s+\$)",
    re.IGNORECASE,
)
_PHONE_CLUSTER_GAP = 24  # characters between two digit groups of one number
_VANITY_NUMBER = re.compile(r"\b(?:1\s*-?\s*)?\d{3}\s*[-.\s]\s*[A-Z]{4,}\b")


def _phone_clusters(text: str) -> list[tuple[str, str]]:
    """Digit groups close enough to read as one number: (digits, the text they span)."""
    clusters: list[tuple[str, str]] = []
    groups = list(re.finditer(r"\d+", text))
    start = 0
    while start < len(groups):
        end = start
        while end + 1 < len(groups) and groups[end + 1].start() - groups[end].end() <= (
                _PHONE_CLUSTER_GAP) and "\n" not in text[groups[end].end():groups[end + 1].start()]:
            end += 1
        digits = "".join(g.group() for g in groups[start : end + 1])
        clusters.append((digits, text[groups[start].start() : groups[end].end()]))
        start = end + 1
    return clusters


def _find_phone_numbers(text: str, contacts: Contacts) -> list[ValidationProblem]:
    view = _spelled_digits(_contact_view(text))
    view = _NOT_A_PHONE_NUMBER.sub(lambda m: "~" * len(m.group()), view)
    problems: list[ValidationProblem] = []
    for digits, span in _phone_clusters(view):
        if _MIN_PHONE_DIGITS <= len(digits) <= _MAX_PHONE_DIGITS and not contacts.has_phone(
                digits):
            problems.append(ValidationProblem(
                code="dlp_phone",
                detail=f"a phone number that is not the sender's ({_masked(span)})"))
            break
    if not problems and _VANITY_NUMBER.search(view):
        problems.append(ValidationProblem(code="dlp_phone", detail="a phone number in letters"))
    return problems


_STREET_TYPES = (
    "Street|Str|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|"
    "Parkway|Pkwy|Highway|Hwy|Terrace|Ter|Way|Plaza|Square|Sq|Circle|Cir|Crescent|Cres|Close|"
    "Row|Mews|Trail|Trl|Expressway|Expy|Freeway|Fwy|Pike|Turnpike|Alley|Gardens|Grove|Quay|"
    "Wharf|Embankment|Esplanade|Promenade|Apartments|Tower|Towers|Estate|Heights|Hill|Park|"
    "Marg|Nagar|Chowk"
)
# A capitalised name before a street type ("Harbor Avenue", "MG Road", "5th Ave"), or a
# street type before a name ("Rue Sherbrooke", "Calle Mayor"): a street, with or without a
# house number, which may come before, after, or sentences later.
_NAMED_STREET = re.compile(
    r"(?:\b\d{1,6}[A-Za-z]?(?:-[A-Za-z0-9]+)?,?\s+)?"
    r"(?:(?:[A-Z][\w'’.-]*|\d+(?:st|nd|rd|th))\s+){1,4}"
    r"(?:" + _STREET_TYPES + r")\b\.?"
    r"|\b(?:Rue|Calle|Via|Viale|Avenida|Av\.|Chemin|Strada|Rua|Piazza|Carrer|Paseo|Corso|Largo|"
    r"Boulevard|Avenue|Place|Route|Plaza|Ulica|ul\.|Ul\.|Aleja|al\.|Praça|Travessa|Carrera|"
    r"Straße|Strasse|Gasse|Platz)\s+(?:(?:de|del|la|le|des|du|d'|di)\s+)*[A-Z][\w'’-]+"
)
_ADDRESS_PARTS = re.compile(
    # units and boxes: "Suite 300", "Apt 2", "Flat 3", "Ste. 12", "#4B", "PO Box 4471"
    r"\b(?i:suite|ste|apt|apartment|flat|unit|bldg|building)\.?\s*(?:no\.?\s*)?#?\d+"
    r"|\b(?:Level|Floor|Room|Door)\s+\d+|\bdoor\s+\d+"
    r"|\b(?i:p\.?\s?o\.?\s?box|postfach|box|apartado|boîte postale|bp)\s+\d+"
    r"|\b(?:RR|HC|Rte)\s*\d+"
    r"|(?<=\d)\s*#\s*\d*[A-Za-z]\b|\b\d+[A-Za-z]?\s*#\s*\d+"
    r"|\b(?i:attn|c/o)\b[:.]?"
    # compound street names: "Hauptstraße 112", "Keizersgracht 123"
    r"|\b[A-ZÄÖÜ][\wäöüß]+(?:straße|strasse|str\.|gracht|straat|weg|laan|gasse|allee|platz|"
    r"plein|damm|kade|singel|vej|gade|gatan|vägen)\s+\d+"
    # postal codes with a place: "10115 Berlin", "1015 CJ Amsterdam", "Portland OR 97208",
    # "VIC 3000", "LS6 2AB", "H3G 1L5", "Bengaluru 560001", "〒150-0002"
    r"|\b\d{4,5}[ \t]+(?:[A-Z]{2}[ \t]+)?[A-Z][a-zà-ÿ]+"
    r"|\b[A-Z]{2,3}[ \t]+\d{4,5}(?:-\d{4})?\b(?![ \t]*(?:days?|copies|rentals?))"
    r"|\b[A-Z]{1,2}\d[A-Z\d]?\s+\d[A-Z]{2}\b|\b[A-Z]\d[A-Z]\s?\d[A-Z]\d\b"
    r"|\b[A-Z][a-z]+\s+\d{6}\b|〒|丁目|番地|号室"
)
_STREET_TYPE_WORDS = {
    "st": "street", "str": "street", "ave": "avenue", "av": "avenue", "rd": "road",
    "blvd": "boulevard", "ln": "lane", "dr": "drive", "ct": "court", "pl": "place",
    "pkwy": "parkway", "hwy": "highway", "ter": "terrace", "sq": "square", "cir": "circle",
    "cres": "crescent", "trl": "trail", "expy": "expressway", "fwy": "freeway",
}


def _street_key(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", fold_text(text).casefold())
    return " ".join(_STREET_TYPE_WORDS.get(word, word) for word in words)


def _is_own_street(text: str, contacts: Contacts) -> bool:
    key = _street_key(text)
    return bool(key) and any(f" {key} " in f" {_street_key(own)} " for own in contacts.addresses)


def _find_street_addresses(text: str, contacts: Contacts) -> list[ValidationProblem]:
    view = _spelled_digits(fold_lookalikes(text, cjk_digits=True))
    for match in _NAMED_STREET.finditer(view):
        span = match.group().strip()
        letters = re.sub(r"[^A-Za-z]", "", span)
        if letters.isupper() and len(letters) > 4:
            continue  # an upper-case film title such as "SECRET HIGHWAY"
        if _ID_LABEL.search(view[max(0, match.start() - 20) : match.start()]):
            span = re.sub(r"^\d+[A-Za-z]?,?\s+", "", span)
        if not _is_own_street(span, contacts):
            return [ValidationProblem(
                code="dlp_street_address",
                detail=f"a street address that is not the sender's ({_masked(span)})")]
    for found in _ADDRESS_PARTS.finditer(view):
        if _ID_LABEL.search(view[max(0, found.start() - 20) : found.start()]):
            continue  # "rental 1207 Frozen Junction": an id before a title
        if not _is_own_street(found.group(), contacts):
            return [ValidationProblem(
                code="dlp_street_address",
                detail=f"part of a postal address that is not the sender's "
                f"({_masked(found.group())})")]
    return []


def find_contact_data(text: str, contacts: Contacts) -> list[ValidationProblem]:
    """Every kind of contact data in ``text`` that is not the sender's own, however written."""
    return [
        *_find_spelled_contacts(text, contacts),
        *_find_phone_numbers(text, contacts),
        *_find_street_addresses(text, contacts),
    ]

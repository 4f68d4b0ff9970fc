"""What a reader sees of an email: every text a mail client would show, as plain text.

The safety check must read what a person reads, not only the part a parser picks. This module
turns an email into its *readable parts*:

* HTML rendered as a reader sees it (:func:`html_to_text`): text, image alt text, the page
  title, tooltips, form field values and placeholders, and CSS-generated ``::before`` /
  ``::after`` content; ``<blockquote>`` becomes ``>`` quoted lines;
* every inline ``text/plain`` and ``text/html`` part of ``multipart/alternative`` and
  ``multipart/mixed`` messages (:func:`read_mime_parts`), text attachments (``.txt``,
  ``.html``, forwarded ``message/rfc822``), and the names of attachments nobody can read
  here (images, PDFs) so a reviewer knows they exist;
* whether the alternative parts of one email say materially different things: a part whose
  words the other lacks is kept as its own readable part, so the rules check the union.

HTML parsing uses selectolax (the Lexbor HTML5 engine: fast, maintained, real CSS selectors,
which the ``::before``/``::after`` rules need) and tinycss2 (the WeasyPrint project's CSS
tokenizer) to read style sheets. Both are pure functions of their input.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from typing import Literal

__all__ = [
    "MAX_PARTS",
    "MAX_PART_CHARS",
    "MimeReading",
    "PartKind",
    "ReadablePart",
    "html_to_text",
    "looks_like_html",
    "read_mime_parts",
    "split_quoted_history",
]

_HTML_HINT = re.compile(r"<\s*(html|body|p|div|br|table|span|a\s|img|style|title|form|input)[^>]*>",
                        re.I)
_QUOTE_HEADER = re.compile(
    r"^\s*(On .{3,200} wrote:|-{2,}\s*Original Message\s*-{2,}|From: .+@.+|_{5,})\s*$",
    re.I | re.M,
)

#: At most this many extra parts are read per email; the rest are listed as unread.
MAX_PARTS = 12
#: Each extra part is cut to this many characters (the body has its own cap).
MAX_PART_CHARS = 20_000
#: HTML longer than this is cut before rendering (rendering megabytes is slow).
MAX_HTML_INPUT_CHARS = 200_000

PartKind = Literal["alternative", "inline_part", "attachment", "forwarded"]

#: Words a part must carry that the other alternative lacks before the difference counts.
_MIN_DIFFERENT_WORDS = 2

# ------------------------------------------------------------------------------ HTML


_BLOCK_TAGS = (
    "p", "div", "br", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "section", "article", "header", "footer", "pre", "hr", "title", "form",
    "address", "dd", "dt", "dl", "figcaption", "caption", "fieldset", "legend", "option",
    "textarea", "main", "aside", "nav", "center",
)
_CELL_TAGS = ("td", "th")
# A paragraph separator marks our own line breaks while the source's whitespace is collapsed.
_BREAK = "\u2029"
_PSEUDO = re.compile(r"::?(?:before|after)\b", re.I)
_INVISIBLE_INPUTS = frozenset({"hidden", "password", "file", "image"})


def looks_like_html(text: str) -> bool:
    """Whether ``text`` is HTML markup rather than plain text."""
    return bool(_HTML_HINT.search(text))


@dataclass(frozen=True)
class _GeneratedContent:
    selector: str
    position: Literal["before", "after"]
    text: str


def _css_generated_content(css: str) -> list[_GeneratedContent]:
    """``content: "..."`` of every ``::before``/``::after`` rule in a style sheet."""
    import tinycss2

    found: list[_GeneratedContent] = []
    for rule in tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True):
        if rule.type == "at-rule" and rule.content is not None:  # @media { ... }
            found += _css_generated_content(tinycss2.serialize(rule.content))
            continue
        if rule.type != "qualified-rule":
            continue
        prelude = tinycss2.serialize(rule.prelude)
        if not _PSEUDO.search(prelude):
            continue
        text = _content_strings(rule.content)
        if not text:
            continue
        for selector in prelude.split(","):
            match = _PSEUDO.search(selector)
            if match is None:
                continue
            position: Literal["before", "after"] = (
                "before" if "before" in match.group(0).lower() else "after")
            base = _PSEUDO.sub("", selector).strip() or "*"
            found.append(_GeneratedContent(base, position, text))
    return found


def _content_strings(tokens: list[object]) -> str:
    import tinycss2

    for declaration in tinycss2.parse_blocks_contents(tokens, skip_comments=True,
                                                      skip_whitespace=True):
        if getattr(declaration, "type", "") != "declaration":
            continue
        if str(getattr(declaration, "lower_name", "")) != "content":
            continue
        values = [getattr(token, "value", "") for token in getattr(declaration, "value", [])
                  if getattr(token, "type", "") == "string"]
        return "".join(str(value) for value in values)
    return ""


def html_to_text(html: str) -> str:
    """Plain text of an HTML email as a reader sees it.

    Text, image alt text, titles and tooltips, form field values and placeholders, and CSS
    ``::before``/``::after`` content are all kept; scripts are dropped; block elements become
    line breaks; ``<blockquote>`` becomes ``>`` quoted lines. Inline markup never splits a word
    ("<b>s</b>ue" reads "sue").
    """
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html[:MAX_HTML_INPUT_CHARS])
    generated: list[_GeneratedContent] = []
    for style in tree.css("style"):
        generated += _css_generated_content(style.text(deep=True))
    tree.strip_tags(["script", "style", "noscript", "template", "head > meta", "head > link"])
    for rule in generated:
        _insert_generated(tree, rule)
    for node in tree.css("img, area, input[type=image]"):
        alt = " ".join(v for v in (node.attributes.get("alt"), node.attributes.get("title")) if v)
        node.replace_with(f" {alt} " if alt else " ")
    for node in tree.css("input"):
        kind = (node.attributes.get("type") or "text").lower()
        shown = [] if kind in _INVISIBLE_INPUTS else [
            node.attributes.get("value"), node.attributes.get("placeholder")]
        node.replace_with(" " + " ".join(v for v in shown if v) + " ")
    for node in tree.css("textarea[placeholder]"):
        node.insert_child(" " + (node.attributes.get("placeholder") or "") + " ")
    for node in tree.css("[title]"):
        if node.tag not in ("img", "area"):
            node.insert_child(f" {node.attributes.get('title') or ''} ")
    for tag in _BLOCK_TAGS:
        for node in tree.css(tag):
            node.insert_before(_BREAK)
            node.insert_after(_BREAK)
    for tag in _CELL_TAGS:
        for node in tree.css(tag):
            node.insert_after(" ")
    for quote in reversed(tree.css("blockquote")):  # innermost first: nesting adds "> "
        inner = _layout(quote.text(deep=True, separator="", strip=False))
        quoted = _BREAK.join("> " + line if line else ">" for line in inner.split("\n"))
        quote.replace_with(f"{_BREAK}{quoted}{_BREAK}")
    root = tree.root
    return _layout(root.text(deep=True, separator="", strip=False) if root else "")


def _insert_generated(tree: object, rule: _GeneratedContent) -> None:
    try:
        nodes = tree.css(rule.selector)  # type: ignore[attr-defined]
    except Exception:  # a selector Lexbor cannot read: show the text once, at the end
        nodes = []
        body = tree.body  # type: ignore[attr-defined]
        if body is not None:
            body.insert_child(f" {rule.text} ")
    for node in nodes:
        if rule.position == "after" or node.child is None:
            node.insert_child(f" {rule.text} ")
        else:
            node.child.insert_before(f" {rule.text} ")


def _layout(text: str) -> str:
    """Collapse the source's whitespace; our own breaks become line breaks."""
    text = re.sub(r"[ \t\r\n\f\u00a0]+", " ", text)
    lines = [line.strip() for line in text.split(_BREAK)]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def split_quoted_history(body: str) -> tuple[str, str]:
    """(new text, quoted history): '>' lines and everything after a reply header are history."""
    header = _QUOTE_HEADER.search(body)
    head, tail = (body[: header.start()], body[header.start() :]) if header else (body, "")
    fresh: list[str] = []
    quoted: list[str] = []
    for line in head.split("\n"):
        (quoted if line.lstrip().startswith(">") else fresh).append(line)
    history = "\n".join(q.lstrip().lstrip(">").strip() for q in quoted)
    if tail:
        history = (history + "\n" + tail).strip()
    return "\n".join(fresh).strip(), history.strip()


# ------------------------------------------------------------------------------ MIME


@dataclass(frozen=True)
class ReadablePart:
    """One part of an email beyond its main body, as text a reader sees."""

    kind: PartKind
    label: str
    text: str


@dataclass
class MimeReading:
    """The readable parts of a message besides its main body, and what could not be read."""

    parts: list[ReadablePart] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)
    alternatives_differ: bool = False


_TEXT_SUFFIXES = (".txt", ".text", ".log", ".md", ".csv")
_HTML_SUFFIXES = (".html", ".htm", ".xhtml")
_MESSAGE_SUFFIXES = (".eml",)


def _decode(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = (part.get_content_charset() or "").strip().lower()
    for candidate in ([charset] if charset not in ("", "us-ascii", "ascii") else []) + ["utf-8"]:
        try:
            return payload.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
    return payload.decode("utf-8", errors="replace")


def _part_text(part: Message, *, html: bool) -> str:
    text = _decode(part).replace("\r\n", "\n").replace("\r", "\n")
    return html_to_text(text) if html else text


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def _flat(text: str) -> str:
    return " ".join(text.casefold().split())


def _not_in(text: str, body_flat: str) -> str:
    """The sentences of an alternative part that the main body does not say word for word.

    The rules then read the union of the two parts without reading the shared text twice.
    """
    kept = [sentence for sentence in _SENTENCE_END.split(text)
            if sentence.strip() and _flat(sentence) not in body_flat]
    return "\n".join(kept)


def _words(text: str) -> set[str]:
    return {word for word in re.findall(r"\w+", text.casefold()) if len(word) > 1}


def _leaves(message: Message) -> Iterator[Message]:
    """Leaf parts in order; a forwarded message/rfc822 is one leaf (read on its own)."""
    if message.get_content_type() == "message/rfc822":
        yield message
        return
    if message.is_multipart():
        payload = message.get_payload()
        for sub in payload if isinstance(payload, list) else []:
            if isinstance(sub, Message):
                yield from _leaves(sub)
        return
    yield message


def _forwarded_text(part: Message) -> str:
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(inner, Message):
        return _decode(part)
    lines = [f"{name}: {inner.get(name)}" for name in ("from", "subject") if inner.get(name)]
    body = _main_body(inner)
    if body is not None:
        lines.append(_part_text(body, html=body.get_content_subtype() == "html"))
    nested = read_mime_parts(inner, body)
    lines += [p.text for p in nested.parts]
    return "\n".join(lines)


def _main_body(message: Message) -> Message | None:
    if isinstance(message, EmailMessage):
        return message.get_body(preferencelist=("plain", "html"))
    for leaf in _leaves(message):
        if leaf.get_content_maintype() == "text":
            return leaf
    return None


def _name_of(part: Message) -> str:
    name = part.get_filename() or ""
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in name).split())
    return cleaned[:80]


def read_mime_parts(message: Message, body: Message | None) -> MimeReading:
    """Every part of ``message`` a reader could see, other than ``body`` (the main body).

    Inline text and HTML parts are read; so are text, HTML and forwarded-message attachments.
    Other attachments are listed in ``unread``. When ``body`` has a sibling alternative that
    carries words the body lacks, that alternative is a part of its own and
    ``alternatives_differ`` is set.
    """
    reading = MimeReading()
    body_text = _part_text(body, html=body.get_content_subtype() == "html") if body else ""
    body_words = _words(body_text)
    body_flat = _flat(body_text)
    for leaf in _leaves(message):
        if leaf is body:
            continue
        ctype = leaf.get_content_type()
        name = _name_of(leaf)
        lower = name.lower()
        disposition = leaf.get_content_disposition()
        label = name or ctype
        if len(reading.parts) >= MAX_PARTS:
            reading.unread.append(f"{label} (too many parts)")
            continue
        if ctype == "message/rfc822" or lower.endswith(_MESSAGE_SUFFIXES):
            text = _forwarded_text(leaf) if ctype == "message/rfc822" else _part_text(
                leaf, html=False)
            reading.parts.append(ReadablePart("forwarded", label, text[:MAX_PART_CHARS]))
            continue
        is_html = ctype == "text/html" or lower.endswith(_HTML_SUFFIXES)
        is_text = ctype.startswith("text/") or lower.endswith(_TEXT_SUFFIXES + _HTML_SUFFIXES)
        if not is_text:
            reading.unread.append(f"{label} ({ctype})")
            continue
        text = _part_text(leaf, html=is_html)[:MAX_PART_CHARS]
        if not text.strip():
            continue
        if disposition == "attachment" or (name and disposition != "inline"):
            reading.parts.append(ReadablePart("attachment", label, text))
            continue
        extra = _words(text) - body_words
        if _is_alternative_of(leaf, body, message):
            if len(extra) >= _MIN_DIFFERENT_WORDS:
                reading.alternatives_differ = True
                reading.parts.append(ReadablePart(
                    "alternative", f"{ctype} alternative", _not_in(text, body_flat)))
            continue
        reading.parts.append(ReadablePart("inline_part", f"inline {ctype}", text))
    return reading


def _is_alternative_of(leaf: Message, body: Message | None, message: Message) -> bool:
    if body is None:
        return False
    for container in message.walk():
        if container.get_content_type() != "multipart/alternative":
            continue
        payload = container.get_payload()
        members = payload if isinstance(payload, list) else []
        if any(m is body for m in members) and any(m is leaf for m in members):
            return True
    return False

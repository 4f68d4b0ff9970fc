"""Email normalisation for ingest: plain text from HTML, quoted history kept apart."""

from __future__ import annotations

import re

_HTML_HINT = re.compile(r"<\s*(html|body|p|div|br|table|span|a\s)[^>]*>", re.I)
_QUOTE_HEADER = re.compile(
    r"^\s*(On .{3,200} wrote:|-{2,}\s*Original Message\s*-{2,}|From: .+@.+|_{5,})\s*$",
    re.I | re.M,
)


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML body; links become text, images disappear."""
    import html2text

    converter = html2text.HTML2Text()
    converter.ignore_images = True
    converter.ignore_links = True
    # No "**" or "_" markers: "<b>s</b>ue" must read "sue", not "**s** ue", for every check.
    converter.ignore_emphasis = True
    converter.body_width = 0
    return converter.handle(html).strip()


def looks_like_html(text: str) -> bool:
    return bool(_HTML_HINT.search(text))


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

"""The inbound email model: what every inbox adapter produces and the graph consumes."""

from __future__ import annotations

import re
from contextlib import suppress
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from mediavault.tools.email_fields import MAX_SUBJECT_CHARS, EmailId, split_sender

#: Bodies longer than this are cut, with a visible marker, before anything reads them.
MAX_BODY_CHARS = 20_000
TRUNCATION_MARKER = "\n[... message truncated by MediaVault: {dropped} characters omitted ...]"
#: The same marker on one line, for fields that must never contain a line break.
ONE_LINE_TRUNCATION_MARKER = " " + TRUNCATION_MARKER.lstrip("\n")
_MARKERS = {
    marker: re.compile(re.escape(marker).replace(re.escape("{dropped}"), r"[0-9]+") + r"\Z")
    for marker in (TRUNCATION_MARKER, ONE_LINE_TRUNCATION_MARKER)
}

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_TEXT_FIELDS = frozenset({"sender_name", "subject", "body"})


def cap_text(text: str, limit: int, marker: str = TRUNCATION_MARKER) -> str:
    """Cut ``text`` to ``limit`` characters with a visible marker saying how much was dropped.

    A text this function already cut is returned as it is: an email is validated again
    whenever it is read back (a checkpoint, the worker queue, the graph's input), and cutting
    it again would drop the marker and count the old marker as the omitted characters.
    """
    if len(text) <= limit or _MARKERS[marker].match(text, limit):
        return text
    return text[:limit] + marker.format(dropped=len(text) - limit)


class InboundEmail(BaseModel):
    """A support email as received, validated and size-capped.

    ``sender`` is the bare address (lower case); ``sender_name`` the display name, if any.
    ``sender_verified`` says whether the transport vouched for the address (a CSV export from
    the help desk is trusted; raw mail needs DMARC). An unverified sender gets catalog data only.
    """

    model_config = ConfigDict(populate_by_name=True, frozen=True, str_strip_whitespace=False)

    email_id: EmailId
    received_at: datetime
    sender: str = Field(alias="from")
    sender_name: str = ""
    subject: str = ""
    body: str = ""
    in_reply_to: str | None = None
    message_id: str | None = None
    sender_verified: bool = True
    #: Problems found while reading the email (non-UTF-8 bytes replaced, body truncated...).
    input_flags: tuple[str, ...] = ()

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: object, info: ValidationInfo) -> object:
        # Lone surrogates are undecoded bytes (Python's surrogateescape): no store, log or
        # terminal can write them, so such an email would fail while its failure is recorded.
        if isinstance(value, str) and _LONE_SURROGATE.search(value):
            raise ValueError("contains bytes that are not valid text (undecoded non-UTF-8)")
        # NUL cannot be stored in a Postgres text column: refused in an identifier, shown as
        # a replacement character in text a reader sees.
        if isinstance(value, str) and "\x00" in value:
            if info.field_name in _TEXT_FIELDS:
                return value.replace("\x00", "\ufffd")
            raise ValueError("contains a NUL character")
        return value

    @field_validator("sender", mode="before")
    @classmethod
    def _normalise_sender(cls, value: object) -> str:
        if not isinstance(value, str):
            raise ValueError("sender must be a string")
        return split_sender(value)[1]

    @field_validator("subject", mode="before")
    @classmethod
    def _one_line_subject(cls, value: object) -> str:
        text = "" if value is None else str(value)
        # A CR/LF in a subject must never split a header, a log line or a table row.
        text = re.sub(r"[\r\n\t]+", " ", text).strip()
        return cap_text(text, MAX_SUBJECT_CHARS, ONE_LINE_TRUNCATION_MARKER)

    @field_validator("body", mode="before")
    @classmethod
    def _capped_body(cls, value: object) -> str:
        text = "" if value is None else str(value)
        return cap_text(text.replace("\r\n", "\n").replace("\r", "\n"), MAX_BODY_CHARS)

    @field_validator("in_reply_to", "message_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> str | None:
        if value is None:
            return None
        text = str(value).strip()
        return text or None

    @classmethod
    def from_fields(cls, **fields: object) -> InboundEmail:
        """Build from loosely typed fields (CSV rows, JSON): ``from`` may carry a display name."""
        raw_from = fields.get("from", fields.get("sender"))
        if isinstance(raw_from, str) and "sender_name" not in fields:
            # The model validator reports a bad address with its field name.
            with suppress(ValueError):
                fields["sender_name"] = split_sender(raw_from)[0]
        fields.pop("sender", None)
        fields["from"] = raw_from
        return cls.model_validate(fields)

"""E-mail fields every layer agrees on: the email id, the sender address, the subject cap."""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Annotated

from pydantic import StringConstraints

MAX_SUBJECT_CHARS = 300

_ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")

EmailId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]


def split_sender(value: str) -> tuple[str, str]:
    """Split ``Name <addr>`` or a bare address into (display name, lower-cased address).

    Raises ValueError when no single plausible address is present.
    """
    name, address = parseaddr(value.strip())
    address = address.strip().lower()
    if not _ADDRESS.match(address):
        raise ValueError(f"sender {value!r} is not an e-mail address")
    return name.strip(), address

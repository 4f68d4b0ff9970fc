"""The sample inbox that ships with the package (``examples/inbox.csv`` in a checkout).

``mediavault demo`` triages it from any folder. Its emails arrived on one day in March 2026,
so the demo database is built for the morning after: replies, tickets and the console's
waiting times then agree with the emails' own dates whatever the calendar says.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path

from mediavault.graph.inbound_email import InboundEmail

SAMPLE_INBOX = Path(__file__).with_name("sample_inbox.csv")


def inbox_business_date(emails: Iterable[InboundEmail]) -> date | None:
    """The business date an inbox is worked on: the day after its latest email arrived."""
    latest = max((email.received_at for email in emails), default=None)
    return None if latest is None else latest.date() + timedelta(days=1)


def sample_inbox_business_date(path: Path = SAMPLE_INBOX) -> date | None:
    """:func:`inbox_business_date` of a CSV inbox (the sample inbox by default)."""
    from mediavault.agent.mail.csv_inbox import read_inbox_csv

    return inbox_business_date(read_inbox_csv(path).emails)


__all__ = ["SAMPLE_INBOX", "inbox_business_date", "sample_inbox_business_date"]

"""Threads: a customer's answer to one of our replies joins the case it answers.

Our replies carry a Message-ID derived from the case (``outbox.reply_message_id``) and the mail
ledger records it. When a new message's In-Reply-To names one of them, the message is linked to
the original case (``in_reply_to`` becomes that case's email id, which the case view and the
re-open metric read), and the earlier exchange is added below the new text as quoted history,
the way a mail client quotes it, so the agent reads it as context and the question stays in the
new text. A message that already quotes something is left as the customer sent it.
"""

from __future__ import annotations

from mediavault.agent.mail.mail_ledger import MailLedger
from mediavault.graph.context import Context
from mediavault.graph.inbound_email import InboundEmail


def original_case(email: InboundEmail, ledger: MailLedger) -> str | None:
    """The email id of the case whose reply ``email`` answers, if it answers one of ours."""
    reply_to = (email.in_reply_to or "").strip()
    if not reply_to:
        return None
    candidates = {reply_to, f"<{reply_to.strip('<>')}>"}
    for message_id in candidates:
        record = ledger.send(message_id)
        if record is not None:
            return record.email_id
    return None


def join_thread(
    email: InboundEmail, ledger: MailLedger, context: Context | None = None
) -> InboundEmail:
    """``email`` linked to the case it answers (and quoting it), or unchanged."""
    case_id = original_case(email, ledger)
    if case_id is None or case_id == email.email_id:
        return email
    body = email.body
    if context is not None and not any(line.startswith(">") for line in body.splitlines()):
        earlier = _earlier_exchange(case_id, context)
        if earlier:
            body = f"{body.rstrip()}\n\n{earlier}"
    return email.model_copy(update={"in_reply_to": case_id, "body": body})


def _earlier_exchange(case_id: str, context: Context) -> str:
    from mediavault.agent.stores.case_store_postgres import open_case_store

    store = open_case_store(context)
    case = store.get_case(case_id)
    if case is None or case.email is None:
        return ""
    parts: list[str] = []
    if case.latest_draft is not None and case.outbox is not None:
        parts.append("MediaVault Support wrote:")
        parts.extend(f"> {line}" for line in case.latest_draft.text.splitlines())
    parts.append(f"On {case.email.received_at:%B %-d, %Y}, you wrote:")
    parts.extend(f">> {line}" for line in case.email.body.splitlines())
    return "\n".join(parts)

"""Triage of whole inboxes: read them, check the services once, tally what happened.

The library side of `mediavault triage` and `mediavault demo` (agent/cli/triage.py prints; this
module decides). Emails are run by :func:`~mediavault.agent.ops.batch.run_triage_batch`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mediavault.graph.context import Context

if TYPE_CHECKING:
    from mediavault.agent.api import TriageResult
    from mediavault.agent.mail.mailboxes import InboxItem, InboxProblem, ReadOptions
    from mediavault.graph.inbound_email import InboundEmail

#: Input flags worth a note: text was lost or replaced while reading.
NOTED_FLAGS = ("non_utf8", "truncated")

#: ``on_note(label, text)``: ``skipped`` (an unreadable email), ``note`` (lossy reading).
NoteCallback = Callable[[str, str], None]


def ensure_demo_database(context: Context, *, as_of: date | None = None) -> bool:
    """Build the demo database when the configured one is the (missing) demo file.

    It is built for ``context.today`` when set, else for ``as_of`` (else the calendar date).
    """
    if context.db is not None or context.db_path.exists():
        return False
    from mediavault.agent.stores.state_files import prepare_home
    from mediavault.tools.business_db.demo_database import build_demo_database

    prepare_home(context)
    build_demo_database(context.db_path, as_of=context.today or as_of)
    return True


def missing_paths(paths: list[Path]) -> list[str]:
    """The inbox paths that do not exist (a run is refused before anything is read)."""
    return [str(path) for path in paths if not path.exists()]


def check_services(context: Context) -> None:
    """Build the chat model and open the business database once, before any email is touched.

    Raises :class:`~mediavault.graph.context.ConfigurationError` or ``BusinessDatabaseError``.
    """
    from mediavault.agent.stores.state_files import check_state_paths
    from mediavault.agent.wiring import services_for

    services = services_for(context)
    check_state_paths(context)  # a FIFO or device would hang or flood the run
    services.chat_model  # noqa: B018 - building it is the check
    services.business_db  # noqa: B018


@dataclass
class InboxTally:
    """What a triage of inboxes saw: emails read, unreadable ones, outcomes, routes."""

    items: dict[str, InboxItem] = field(default_factory=dict)
    problems: list[InboxProblem] = field(default_factory=list)
    results: list[TriageResult] = field(default_factory=list)
    routes: Counter[str] = field(default_factory=Counter)

    def add(self, result: TriageResult) -> None:
        """Count one outcome as it arrives."""
        self.results.append(result)
        if result.already_recorded:
            self.routes["recorded earlier"] += 1
        elif result.status == "failed":
            self.routes["failed"] += 1
        else:
            self.routes[result.route or "no route"] += 1

    def progress_text(self) -> str:
        """Routes so far, e.g. ``draft 3 · escalate 1``."""
        return " · ".join(f"{name} {n}" for name, n in sorted(self.routes.items())) or "starting"

    def failure_counts(self) -> Counter[str]:
        """Unreadable emails by kind, plus ``triage_failed`` for runs that failed."""
        counts: Counter[str] = Counter(problem.kind for problem in self.problems)
        failed = sum(1 for r in self.results if r.status == "failed" and not r.already_recorded)
        if failed:
            counts["triage_failed"] += failed
        return counts

    def status_counts(self) -> Counter[str]:
        """Outcomes of this run by status (emails recorded earlier left out)."""
        return Counter(r.status for r in self.results if not r.already_recorded)

    def exit_status(self) -> int:
        """0 when every email was read and triaged, else 1."""
        failed = self.failure_counts()
        return 1 if failed or any(r.status == "failed" for r in self.results) else 0

    def read(self, paths: list[Path], options: ReadOptions,
             on_note: NoteCallback | None = None) -> list[InboundEmail]:
        """Read the inboxes, keeping every email and problem; returns the emails to triage.

        Raises ``InboxPathError`` for a path that is not an inbox.
        """
        from mediavault.agent.mail.mailboxes import InboxItem, read_inboxes

        def note(label: str, text: str) -> None:
            if on_note is not None:
                on_note(label, text)

        emails = []
        for item in read_inboxes(paths, options):
            if isinstance(item, InboxItem):
                self.items[item.email.email_id] = item
                emails.append(item.email)
                noted = [flag for flag in item.email.input_flags if flag in NOTED_FLAGS]
                if noted:
                    note("note", f"{item.source}: {', '.join(noted)}")
            else:
                self.problems.append(item)
                note("skipped", item.line())
        return emails

    def as_dict(self, elapsed: float, not_reached: int) -> dict[str, Any]:
        """Every outcome, every unreadable email and the summary, as ``--json`` prints them."""
        emails = []
        for result in self.results:
            item = self.items.get(result.email_id)
            emails.append({
                "email_id": result.email_id,
                "source": item.source if item else None,
                "subject": item.email.subject if item else None,
                "sender_verified": item.email.sender_verified if item else None,
                "input_flags": list(item.email.input_flags) if item else [],
                "status": result.status,
                "route": result.route,
                "reason_code": result.reason_code,
                "queue": result.queue,
                "gate_denials": result.gate_denials,
                "already_recorded": result.already_recorded,
                "error": result.error,
            })
        return {
            "emails": emails,
            "failures": [{"source": p.source, "kind": p.kind, "message": p.message}
                         for p in self.problems],
            "summary": {
                "read": len(self.items),
                "triaged": sum(1 for r in self.results if not r.already_recorded),
                "already_recorded": sum(1 for r in self.results if r.already_recorded),
                "not_reached": not_reached,
                "statuses": dict(sorted(self.status_counts().items())),
                "failures": dict(sorted(self.failure_counts().items())),
                "elapsed_seconds": round(elapsed, 3),
            },
        }

"""Batch triage: many emails at once, with model calls overlapping under asyncio.

The graph's nodes are synchronous. Under ``ainvoke`` LangGraph runs each of them on the event
loop's default executor, so while one email waits for its model another email's node runs. The
shared services stay consistent across those threads: the SQLite case store keeps a connection
per thread and takes the write lock up front (the Postgres one serialises its connection under
a lock), the audit log appends under a thread lock and a file lock, the business database opens
a read-only connection per session, and the one checkpoint connection is serialised by the
saver itself. Every email still ends in exactly one
outcome; an email whose run breaks is recorded as failed and the batch goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from langchain_core.language_models import BaseChatModel

from agent.api import (
    TriageResult,
    async_compiled_graph,
    atriage_on,
    coerce_email,
    recorded_result,
    resolve_context,
)
from agent.context import Context
from agent.emails import InboundEmail
from graph.services import services_for

#: The most emails one batch runs at once; beyond this SQLite writers only queue up.
MAX_CONCURRENCY = 64
#: Worker threads beyond the concurrency, for LangGraph's own bookkeeping in the executor.
SPARE_THREADS = 4

ResultCallback = Callable[[TriageResult], None]


async def triage_batch(
    emails: Iterable[InboundEmail | Mapping[str, Any]],
    *,
    context: Context | None = None,
    model: str | BaseChatModel | None = None,
    concurrency: int = 4,
    limit: int | None = None,
    on_result: ResultCallback | None = None,
) -> list[TriageResult]:
    """Triage ``emails`` with up to ``concurrency`` runs in flight; results in input order.

    Emails that already have an outcome (or wait for a review) are not run again: their result
    comes back with ``already_recorded`` set and does not count against ``limit``, the most new
    runs to start; reading stops at the first email beyond it. An email id seen twice in the
    batch runs once. ``on_result`` is called on the event loop as each result is known.

    Sync nodes run on the running loop's default executor, which bounds the overlap; the
    standard one has ``min(32, cpus + 4)`` threads. :func:`run_triage_batch` sizes it for you.
    """
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY}, not {concurrency}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, not {limit}")
    context = resolve_context(context, model)
    _open_shared_services(context)
    report = on_result or (lambda result: None)
    entries: list[TriageResult | asyncio.Task[TriageResult]] = []
    async with async_compiled_graph(context) as graph:
        slots = asyncio.Semaphore(concurrency)
        running: dict[str, asyncio.Task[TriageResult]] = {}
        new_runs = 0

        async def run(inbound: InboundEmail) -> TriageResult:
            try:
                result = await atriage_on(graph, inbound, context)
            finally:
                slots.release()
            report(result)
            return result

        async def same_as(first: asyncio.Task[TriageResult]) -> TriageResult:
            result = (await first).model_copy(update={"already_recorded": True})
            report(result)
            return result

        try:
            async with asyncio.TaskGroup() as group:
                for item in emails:
                    inbound = coerce_email(item)
                    first = running.get(inbound.email_id)
                    if first is not None:
                        entries.append(group.create_task(same_as(first)))
                        continue
                    recorded = await recorded_result(graph, inbound)
                    if recorded is not None:
                        report(recorded)
                        entries.append(recorded)
                        continue
                    if limit is not None and new_runs >= limit:
                        break
                    await slots.acquire()
                    new_runs += 1
                    task = group.create_task(run(inbound))
                    running[inbound.email_id] = task
                    entries.append(task)
        except BaseExceptionGroup as failure:
            # One run's unexpected error (a broken audit log, a bad setting) stops the batch;
            # callers see that error itself rather than a group of one.
            raise failure.exceptions[0] from None
    return [entry if isinstance(entry, TriageResult) else entry.result() for entry in entries]


def _open_shared_services(context: Context) -> None:
    # Created here, once, before any worker thread exists: functools.cached_property stopped
    # locking in Python 3.12, so two threads could otherwise each build their own instance.
    services = services_for(context)
    services.case_store  # noqa: B018 - touching the property creates it
    services.audit  # noqa: B018


def run_triage_batch(
    emails: Iterable[InboundEmail | Mapping[str, Any]],
    *,
    context: Context | None = None,
    model: str | BaseChatModel | None = None,
    concurrency: int = 4,
    limit: int | None = None,
    on_result: ResultCallback | None = None,
) -> list[TriageResult]:
    """:func:`triage_batch` from synchronous code, on a new event loop whose executor has a
    thread for every run in flight."""
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY}, not {concurrency}")

    async def main() -> list[TriageResult]:
        executor = ThreadPoolExecutor(max_workers=concurrency + SPARE_THREADS,
                                      thread_name_prefix="mediavault-triage")
        asyncio.get_running_loop().set_default_executor(executor)
        return await triage_batch(emails, context=context, model=model,
                                  concurrency=concurrency, limit=limit, on_result=on_result)

    return asyncio.run(main())

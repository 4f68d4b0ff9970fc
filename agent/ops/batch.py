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
import hashlib
import multiprocessing
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from langchain_core.language_models import BaseChatModel

from mediavault.agent.api import (
    TriageResult,
    async_compiled_graph,
    atriage_on,
    coerce_email,
    recorded_outcome,
    recorded_result,
    resolve_context,
)
from mediavault.agent.mail.outbox import remove_abandoned_partial_replies
from mediavault.agent.stores.run_locks import EmailInProgressElsewhere, aemail_run
from mediavault.agent.wiring import services_for
from mediavault.graph.context import ConfigurationError, Context
from mediavault.graph.inbound_email import InboundEmail
from mediavault.graph.nodes import thread_id_for

#: The most emails one batch runs at once; beyond this SQLite writers only queue up.
MAX_CONCURRENCY = 64
#: Worker threads beyond the concurrency, for LangGraph's own bookkeeping in the executor.
SPARE_THREADS = 4
#: The most worker processes one batch starts.
MAX_PROCESSES = 16

ResultCallback = Callable[[TriageResult], None]
#: Told the id of an email another process is triaging; its result comes when that run ends.
InProgressCallback = Callable[[str], None]


async def triage_batch(
    emails: Iterable[InboundEmail | Mapping[str, Any]],
    *,
    context: Context | None = None,
    model: str | BaseChatModel | None = None,
    concurrency: int = 4,
    limit: int | None = None,
    on_result: ResultCallback | None = None,
    on_in_progress: InProgressCallback | None = None,
) -> list[TriageResult]:
    """Triage ``emails`` with up to ``concurrency`` runs in flight; results in input order.

    Emails that already have an outcome (or wait for a review) are not run again: their result
    comes back with ``already_recorded`` set and does not count against ``limit``, the most new
    runs to start; reading stops at the first email beyond it. An email id seen twice in the
    batch runs once. ``on_result`` is called on the event loop as each result is known.

    An email another process is triaging right now (two commands on one home) is not run
    twice: ``on_in_progress`` is told its id, the batch goes on, and the email's result is
    the outcome that process records (or, if it dies, this batch finishes the run).

    Sync nodes run on the running loop's default executor, which bounds the overlap; the
    standard one has ``min(32, cpus + 4)`` threads. :func:`run_triage_batch` sizes it for you.
    """
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY}, not {concurrency}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, not {limit}")
    context = resolve_context(context, model)
    _start_of_run(context)
    report = on_result or (lambda result: None)
    announce = on_in_progress or (lambda email_id: None)
    entries: list[TriageResult | asyncio.Task[TriageResult]] = []
    async with async_compiled_graph(context) as graph:
        slots = asyncio.Semaphore(concurrency)
        running: dict[str, asyncio.Task[TriageResult]] = {}
        new_runs = 0

        async def run(inbound: InboundEmail) -> TriageResult:
            try:
                try:
                    result = await atriage_on(graph, inbound, context)
                finally:
                    slots.release()
            except EmailInProgressElsewhere:
                announce(inbound.email_id)
                # Wait without a slot until the other run lets go, then take its outcome
                # (or, if it died midway, continue its thread from the last checkpoint).
                async with aemail_run(context, thread_id_for(inbound.email_id), wait=True):
                    pass
                async with slots:
                    result = await atriage_on(graph, inbound, context, wait=True)
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


def _start_of_run(context: Context) -> None:
    # What a killed or starved earlier run left behind must not stop this one.
    services_for(context).audit.recover_torn_tail()  # a write a full disk tore
    remove_abandoned_partial_replies(context.outbox_path)


def run_triage_batch(
    emails: Iterable[InboundEmail | Mapping[str, Any]],
    *,
    context: Context | None = None,
    model: str | BaseChatModel | None = None,
    concurrency: int = 4,
    limit: int | None = None,
    on_result: ResultCallback | None = None,
    processes: int = 1,
    on_in_progress: InProgressCallback | None = None,
) -> list[TriageResult]:
    """:func:`triage_batch` from synchronous code, on a new event loop whose executor has a
    thread for every run in flight.

    ``processes`` above 1 spreads the runs over that many worker processes (each with its
    share of ``concurrency``): the graph's own work is CPU-bound under the interpreter lock,
    so one process cannot keep more than one core busy. See :func:`_run_in_processes`.
    """
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY}, not {concurrency}")
    if not 1 <= processes <= MAX_PROCESSES:
        raise ValueError(f"processes must be between 1 and {MAX_PROCESSES}, not {processes}")
    if min(processes, concurrency) > 1:  # each process runs at least one email at a time
        return _run_in_processes(list(emails), resolve_context(context, model),
                                 concurrency=concurrency, processes=min(processes, concurrency),
                                 limit=limit, on_result=on_result)

    async def main() -> list[TriageResult]:
        executor = ThreadPoolExecutor(max_workers=concurrency + SPARE_THREADS,
                                      thread_name_prefix="mediavault-triage")
        asyncio.get_running_loop().set_default_executor(executor)
        return await triage_batch(emails, context=context, model=model,
                                  concurrency=concurrency, limit=limit, on_result=on_result,
                                  on_in_progress=on_in_progress)

    return asyncio.run(main())


# ----------------------------------------------------------------------- several processes


def _run_in_processes(
    emails: list[InboundEmail | Mapping[str, Any]],
    context: Context,
    *,
    concurrency: int,
    processes: int,
    limit: int | None,
    on_result: ResultCallback | None,
    worker: Callable[[list[InboundEmail], Context, int], list[TriageResult]] | None = None,
) -> list[TriageResult]:
    """The batch spread over worker processes, with the same results as in one process.

    This process decides what runs, exactly as :func:`triage_batch` does (recorded emails come
    back as they are, ``limit`` counts new runs, a repeated id runs once), then hands the new
    runs to the workers, split by email id. The workers share the files in the context's home
    (SQLite and the audit log take turns between processes). Results reach ``on_result`` here
    as each one is known. If a worker dies, its unfinished emails are triaged again in this
    process: triage is idempotent, so whatever the worker finished is returned as recorded.
    """
    if context.chat_model is not None:
        raise ConfigurationError(
            "a chat model object cannot be shared with worker processes; pass its name "
            "(e.g. openai:<model>) or use processes=1")
    report = on_result or (lambda result: None)
    planned: list[TriageResult | str] = []  # a recorded result, or the id of a new run
    new_runs: dict[str, InboundEmail] = {}
    for item in emails:
        inbound = coerce_email(item)
        if inbound.email_id in new_runs:
            planned.append(inbound.email_id)
            continue
        recorded = recorded_outcome(inbound, context)
        if recorded is not None:
            report(recorded)
            planned.append(recorded)
            continue
        if limit is not None and len(new_runs) >= limit:
            break
        new_runs[inbound.email_id] = inbound
        planned.append(inbound.email_id)
    results = _results_from_workers(list(new_runs.values()), context, concurrency=concurrency,
                                    processes=processes, report=report,
                                    worker=worker or _worker_batch)
    ordered: list[TriageResult] = []
    seen: set[str] = set()
    for entry in planned:
        if isinstance(entry, TriageResult):
            ordered.append(entry)
        elif entry in seen:  # a repeated id: the first run's result, marked as recorded
            repeat = results[entry].model_copy(update={"already_recorded": True})
            report(repeat)
            ordered.append(repeat)
        else:
            seen.add(entry)
            ordered.append(results[entry])
    return ordered


def _results_from_workers(
    emails: list[InboundEmail], context: Context, *, concurrency: int, processes: int,
    report: ResultCallback,
    worker: Callable[[list[InboundEmail], Context, int], list[TriageResult]],
) -> dict[str, TriageResult]:
    if not emails:
        return {}
    shares: list[list[InboundEmail]] = [[] for _ in range(min(processes, len(emails)))]
    for email in emails:  # by id, so that an email always goes to the same worker
        digest = hashlib.sha256(email.email_id.encode()).digest()
        shares[int.from_bytes(digest[:4], "big") % len(shares)].append(email)
    per_process = max(1, concurrency // len(shares))
    spawn = multiprocessing.get_context("spawn")  # no fork: SQLite must not cross a fork
    progress = spawn.Queue()
    results: dict[str, TriageResult] = {}
    unfinished: list[list[InboundEmail]] = []
    relay = threading.Thread(target=_relay, args=(progress, report), daemon=True)
    relay.start()
    try:
        with ProcessPoolExecutor(max_workers=len(shares), mp_context=spawn,
                                 initializer=_start_worker, initargs=(progress,)) as pool:
            futures = {pool.submit(worker, share, context, per_process): share
                       for share in shares if share}
            for future, share in futures.items():
                try:
                    results.update((r.email_id, r) for r in future.result())
                except BrokenProcessPool:
                    unfinished.append(share)
    finally:
        progress.put(None)
        relay.join()
    for share in unfinished:  # a worker died: finish its emails here (idempotent)
        for result in run_triage_batch(share, context=context, concurrency=per_process,
                                       on_result=report):
            results[result.email_id] = result
    return results


_WORKER_PROGRESS: Any = None


def _start_worker(progress: Any) -> None:
    global _WORKER_PROGRESS
    _WORKER_PROGRESS = progress


def _worker_batch(
    emails: list[InboundEmail], context: Context, concurrency: int
) -> list[TriageResult]:
    """One worker process's share of the batch."""
    return run_triage_batch(emails, context=context, concurrency=concurrency,
                            on_result=_WORKER_PROGRESS.put)


def _relay(progress: Any, report: ResultCallback) -> None:
    # Results the workers announce, handed to the caller's callback in this process.
    while (result := progress.get()) is not None:
        report(result)

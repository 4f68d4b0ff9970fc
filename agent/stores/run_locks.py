"""One run per email at a time, across the processes sharing a ``MEDIAVAULT_HOME``.

Two ``mediavault triage`` commands on the same inbox would otherwise both start (or continue)
the same email's thread; the second then reads a thread the first is halfway through. A run
holds a byte-range lock on ``<home>/runs.lock`` (one byte per email, at an offset derived from
its thread id) for as long as it works on the thread. Another process finds the byte locked
and knows the email is in progress elsewhere. The kernel drops the lock when its process dies,
so a killed run never blocks anyone.

POSIX record locks belong to the process and closing *any* descriptor of the file drops all of
them, so each process keeps one descriptor open for good and threads of one process take turns
on an email through an ordinary lock.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from mediavault.agent.stores.state_files import prepare_home, private_file
from mediavault.graph.context import Context

LOCK_FILE_NAME = "runs.lock"
#: Offsets are drawn from this many bytes: two emails sharing one is vanishingly unlikely
#: (and would only make one wait for the other).
_SLOT_SPACE = 1 << 40
#: How often a waiting run looks again (polling never trips the kernel's deadlock detector,
#: which counts whole processes and would see cycles between unrelated threads).
_POLL_SECONDS = (0.05, 0.1, 0.2, 0.5)


class EmailInProgressElsewhere(RuntimeError):
    """Another process is triaging this email right now."""

    def __init__(self, email_id: str) -> None:
        super().__init__(f"{email_id} is being triaged by another process")
        self.email_id = email_id


class _ProcessRunLocks:
    """This process's descriptor of one lock file and the slots its threads hold."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(private_file(path), os.O_RDWR)
        self.guard = threading.Lock()
        self.slots: dict[int, threading.Lock] = {}

    def try_hold(self, slot: int) -> bool:
        with self.guard:
            local = self.slots.setdefault(slot, threading.Lock())
        if not local.acquire(blocking=False):
            return False
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
        except OSError:  # EAGAIN or EACCES: another process holds it
            local.release()
            return False
        return True

    def release(self, slot: int) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, slot)
        self.slots[slot].release()


_LOCKS: dict[tuple[str, int], _ProcessRunLocks] = {}
_LOCKS_GUARD = threading.Lock()


def _locks_for(context: Context) -> _ProcessRunLocks:
    path = prepare_home(context) / LOCK_FILE_NAME
    key = (str(path.resolve()), os.getpid())  # a forked child opens its own descriptor
    with _LOCKS_GUARD:
        locks = _LOCKS.get(key)
        if locks is None:
            locks = _LOCKS[key] = _ProcessRunLocks(path)
        return locks


def _slot(thread_id: str) -> int:
    return int(hashlib.sha256(thread_id.encode()).hexdigest()[:12], 16) % _SLOT_SPACE


def try_hold_email_run(context: Context, thread_id: str) -> Callable[[], None] | None:
    """Take the run of ``thread_id`` if nobody holds it: returns the release, or None."""
    locks = _locks_for(context)
    slot = _slot(thread_id)
    return (lambda: locks.release(slot)) if locks.try_hold(slot) else None


@contextmanager
def email_run(context: Context, thread_id: str, *, wait: bool) -> Iterator[bool]:
    """Hold the run of ``thread_id`` for the block; yields whether it is held.

    With ``wait`` the block starts only once every other holder is done (it then yields True);
    without, it yields False at once when another process or thread holds the email.
    """
    release = try_hold_email_run(context, thread_id)
    pause = iter(_POLL_SECONDS)
    while release is None and wait:
        time.sleep(next(pause, _POLL_SECONDS[-1]))
        release = try_hold_email_run(context, thread_id)
    try:
        yield release is not None
    finally:
        if release is not None:
            release()


@asynccontextmanager
async def aemail_run(context: Context, thread_id: str, *, wait: bool) -> AsyncIterator[bool]:
    """The asyncio twin of :func:`email_run` (waiting never blocks the event loop)."""
    release = try_hold_email_run(context, thread_id)
    pause = iter(_POLL_SECONDS)
    while release is None and wait:
        await asyncio.sleep(next(pause, _POLL_SECONDS[-1]))
        release = try_hold_email_run(context, thread_id)
    try:
        yield release is not None
    finally:
        if release is not None:
            release()

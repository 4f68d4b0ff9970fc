"""One lock for a reviewer's decision on an email, whoever applies it.

The Python API's :func:`~agent.api.resume`, the review desk and the web console all take this
lock around "is the review still waiting? then apply the decision", so two reviewers answering
the same request at once never both apply theirs (a rejected draft sent anyway): the second
waits, then finds the request answered.

It is one byte-range lock per thread in ``<home>/decisions.lock`` (processes sharing the home
take turns) behind a re-entrant lock per thread in this process (threads take turns, and a
holder may take it again: the console checks its review token and the desk checks the draft
version under the same lock that ``resume`` takes).
"""

from __future__ import annotations

import fcntl
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mediavault.agent.stores.state_files import prepare_home, private_file
from mediavault.graph.context import Context

LOCK_FILE_NAME = "decisions.lock"


class _HeldLock:
    def __init__(self) -> None:
        self.local = threading.RLock()
        self.depth = 0  # only changed while holding ``local``


_LOCKS: dict[tuple[Path, str], _HeldLock] = {}
_LOCKS_GUARD = threading.Lock()


@contextmanager
def one_decision_at_a_time(context: Context, thread_id: str) -> Iterator[None]:
    """Hold the decision lock of ``thread_id`` (re-entrant) for the ``with`` block."""
    home = context.home.resolve()
    with _LOCKS_GUARD:
        held = _LOCKS.setdefault((home, thread_id), _HeldLock())
    with held.local:
        if held.depth:
            held.depth += 1
            try:
                yield
            finally:
                held.depth -= 1
            return
        prepare_home(context)  # owner-only, and no FIFO where a state file belongs
        # A slot per thread: decisions on different emails never wait for each other.
        slot = int(hashlib.sha256(thread_id.encode()).hexdigest()[:7], 16)
        with open(private_file(home / LOCK_FILE_NAME), "a+b") as handle:
            fcntl.lockf(handle.fileno(), fcntl.LOCK_EX, 1, slot)
            held.depth = 1
            try:
                yield
            finally:
                held.depth = 0
                fcntl.lockf(handle.fileno(), fcntl.LOCK_UN, 1, slot)

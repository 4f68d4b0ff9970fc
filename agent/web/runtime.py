"""The console's shared objects, kept on the FastAPI app and reached from any request."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from fastapi import Request
from fastapi.templating import Jinja2Templates

from mediavault.agent.web.accounts import ReviewerAccounts
from mediavault.agent.web.sessions import SessionRegistry
from mediavault.agent.web.settings import ConsoleSettings
from mediavault.agent.wiring import services_for

#: Keys (names, addresses) tracked at once. The table is never wiped to make room: expired
#: entries go first, and when it is still full a new key is not tracked on its own (its
#: failures still count overall, which a flood of names therefore trips long before).
MAX_TRACKED_KEYS = 10_000


class SignInThrottle:
    """Refuses password sign-in after too many recent failures (password guessing).

    Three limits hold at once, each over the same window: per reviewer name (one account
    guessed at), per client address (one password sprayed across many names) and overall
    (a spray from many addresses). Once reached, sign-in with a password is refused until
    enough failures have aged out of the window; signed-in sessions are not affected.
    """

    def __init__(self, max_failures: int, window: timedelta, *, max_per_client: int = 20,
                 max_overall: int = 100) -> None:
        self._limits = {"name": max_failures, "client": max_per_client}
        self._max_overall = max_overall
        self._window = window
        self._failures: dict[tuple[str, str], deque[datetime]] = {}
        self._overall: deque[datetime] = deque()
        self._lock = threading.Lock()

    def _drop_old(self, failures: deque[datetime], now: datetime) -> deque[datetime]:
        while failures and now - failures[0] > self._window:
            failures.popleft()
        return failures

    def _count(self, key: tuple[str, str], now: datetime) -> int:
        failures = self._failures.get(key)
        return 0 if failures is None else len(self._drop_old(failures, now))

    @staticmethod
    def _keys(name: str, client: str | None) -> list[tuple[str, str]]:
        keys = [("name", name.casefold())]
        if client:
            keys.append(("client", client))
        return keys

    def refusal(self, name: str, client: str | None, now: datetime) -> str | None:
        """Why sign-in is refused right now (``name``, ``client`` or ``overall``), or None."""
        with self._lock:
            for key in self._keys(name, client):
                if self._count(key, now) >= self._limits[key[0]]:
                    return key[0]
            if len(self._drop_old(self._overall, now)) >= self._max_overall:
                return "overall"
            return None

    def locked(self, name: str, now: datetime, client: str | None = None) -> bool:
        """Whether sign-in for ``name`` (from ``client``) is refused right now."""
        return self.refusal(name, client, now) is not None

    def failed(self, name: str, now: datetime, client: str | None = None) -> None:
        with self._lock:
            self._drop_old(self._overall, now).append(now)
            for key in self._keys(name, client):
                failures = self._failures.get(key)
                if failures is None:
                    if len(self._failures) >= MAX_TRACKED_KEYS:
                        self._forget_expired(now)
                    if len(self._failures) >= MAX_TRACKED_KEYS:
                        continue  # counted overall; never wipe what is tracked
                    failures = self._failures[key] = deque()
                self._drop_old(failures, now).append(now)

    def _forget_expired(self, now: datetime) -> None:
        for key in [k for k, v in self._failures.items() if not self._drop_old(v, now)]:
            del self._failures[key]

    def succeeded(self, name: str) -> None:
        """The right password for ``name``: its own count starts again (an address's and the
        overall count do not: one valid account must not reset a spray)."""
        with self._lock:
            self._failures.pop(("name", name.casefold()), None)


@dataclass
class ConsoleState:
    """Settings, accounts, throttle and templates of one console app."""

    settings: ConsoleSettings
    accounts: ReviewerAccounts
    templates: Jinja2Templates
    throttle: SignInThrottle = field(init=False)
    sessions: SessionRegistry = field(init=False)

    def __post_init__(self) -> None:
        self.throttle = SignInThrottle(
            self.settings.max_failed_sign_ins, timedelta(seconds=self.settings.lockout_seconds),
            max_per_client=self.settings.max_failed_sign_ins_per_client,
            max_overall=self.settings.max_failed_sign_ins_overall,
        )
        self.sessions = SessionRegistry(
            self.settings.live_sessions_path, clock=self.settings.clock,
            max_age=timedelta(seconds=self.settings.session_max_age_seconds),
        )

    def now(self) -> datetime:
        return self.settings.clock()

    def business_now(self) -> datetime:
        """The time on the business clock: the business date at the wall clock's time of day.

        Waiting times are measured on it, so they agree with the emails' own dates when the
        database is dated (the demo, ``--as-of``): an email received the evening before waits
        hours, not the months since the demo's business date. On the day itself it is the wall
        clock. An unreadable database leaves the wall clock.
        """
        wall = self.now()
        try:
            day = services_for(self.settings.context).business_date()
        except Exception:  # the queue still shows; the case pages report the database
            return wall
        return wall if day == wall.date() else datetime.combine(day, wall.timetz())


def console(request: Request) -> ConsoleState:
    """The console state of the app serving ``request``."""
    return cast(ConsoleState, request.app.state.console)

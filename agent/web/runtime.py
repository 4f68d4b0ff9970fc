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
from mediavault.agent.web.settings import ConsoleSettings
from mediavault.agent.wiring import services_for


class SignInThrottle:
    """Refuses sign-in for a reviewer name after too many recent failures (password guessing)."""

    def __init__(self, max_failures: int, window: timedelta) -> None:
        self._max = max_failures
        self._window = window
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        failures = self._failures.setdefault(key.casefold(), deque())
        while failures and now - failures[0] > self._window:
            failures.popleft()
        return failures

    def locked(self, name: str, now: datetime) -> bool:
        """Whether sign-in for ``name`` is refused right now."""
        with self._lock:
            return len(self._recent(name, now)) >= self._max

    def failed(self, name: str, now: datetime) -> None:
        with self._lock:
            self._recent(name, now).append(now)
            if len(self._failures) > 10_000:  # names are attacker-chosen: bound the memory
                self._failures.clear()

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name.casefold(), None)


@dataclass
class ConsoleState:
    """Settings, accounts, throttle and templates of one console app."""

    settings: ConsoleSettings
    accounts: ReviewerAccounts
    templates: Jinja2Templates
    throttle: SignInThrottle = field(init=False)

    def __post_init__(self) -> None:
        self.throttle = SignInThrottle(
            self.settings.max_failed_sign_ins, timedelta(seconds=self.settings.lockout_seconds)
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

"""The SLA timer: fires yellow and red lights when they come due, through ordinary commands.

Each round (`fire_due`) catches the pending-deadline store up with the log, takes the
lights whose fire time has come on the injected clock, earliest first, and records
them through `CaseService.fire_deadlines`, which decides each one again on the live
case. So a deadline met, moved or ended meanwhile never fires, and two timers, a timer
restarted after a crash, or a command landing at the same instant never record a light
twice: the store's unique (case, version) key refuses the second write and the loser
decides again on the new state, where the light is already recorded.

`run` loops until stopped, sleeping until the next fire time (at most `max_sleep`, so
earlier deadlines recorded meanwhile are picked up within that). Only the leader fires:
on PostgreSQL a session-level advisory lock held on a dedicated connection
(`AdvisoryLock`); a standby takes over within `standby_interval` of the leader's
connection closing. SQLite is one process: `SoleLeader`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import datetime
from typing import Any, Protocol

import psycopg

from engine.deadlines import DueDeadline, PendingDeadlines
from engine.follower import Follower
from engine.service import CaseService
from engine.viewstore import ViewStore

log = logging.getLogger(__name__)

LOCK_KEY = 0x6C69_616E_6875_5401  # "lianhuT\x01": the timer's advisory lock id (bigint)


class Leadership(Protocol):
    def acquire(self) -> bool:
        """True while this timer may fire (acquire if free; verify if already held)."""
        ...

    def release(self) -> None: ...


class SoleLeader:
    """One process, one timer (the SQLite shape): always the leader."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


class AdvisoryLock:
    """Leadership by `pg_try_advisory_lock` on a dedicated session.

    The lock lives as long as the session: when the leader dies, PostgreSQL ends its
    session and frees the lock, and the next `acquire` of a standby wins it. A leader
    checks its session on every round and steps down the moment it is lost.
    """

    def __init__(self, url: str, key: int = LOCK_KEY) -> None:
        self.url = url
        self.key = key
        self._conn: psycopg.Connection[Any] | None = None
        self.held = False

    def acquire(self) -> bool:
        try:
            if self._conn is None or self._conn.closed:
                self.held = False
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            if self.held:
                self._conn.execute("SELECT 1")  # still our session, still our lock
                return True
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            self.held = bool(row and row[0])
        except psycopg.Error:
            log.warning("timer lost its leadership session; standing by", exc_info=True)
            self.release()
        return self.held

    def release(self) -> None:
        self.held = False
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()  # closing the session frees the lock
            self._conn = None


class Timer:
    """Fires the due SLA lights of one store. `fire_due` is one round; `run` loops."""

    def __init__(
        self,
        service: CaseService,
        views: ViewStore,
        *,
        leadership: Leadership | None = None,
        batch_size: int = 500,
        max_sleep: float = 1.0,
        standby_interval: float = 1.0,
    ) -> None:
        self.service = service
        self.views = views
        self.pending = PendingDeadlines(warn_share=service.rules.warn_share)
        self.follower = Follower(
            service.recorder, service.mapper, views, self.pending, batch_size=batch_size
        )
        self.leadership = leadership or SoleLeader()
        self.batch_size = batch_size
        self.max_sleep = max_sleep
        self.standby_interval = standby_interval

    # -- one round -------------------------------------------------------------------------------

    def catch_up(self) -> int:
        return self.follower.catch_up()

    def due(self, limit: int | None = None) -> list[DueDeadline]:
        with self.views.reading() as cur:
            return self.pending.due(cur, self.service.clock.now(), limit or self.batch_size)

    def next_fire_at(self, after: datetime | None = None) -> datetime | None:
        with self.views.reading() as cur:
            return self.pending.next_fire_at(cur, after)

    def pending_lights(self) -> list[DueDeadline]:
        with self.views.reading() as cur:
            return self.pending.pending(cur)

    def fire_due(self) -> int:
        """Catch up, then fire every light due now, earliest first; how many were recorded."""
        recorded = 0
        done: set[DueDeadline] = set()  # fired or moot this round; gone after the next catch-up
        while True:
            self.catch_up()
            lights = [x for x in self.due(self.batch_size + len(done)) if x not in done]
            if not lights:
                return recorded
            lights = lights[: self.batch_size]
            recorded += self.service.fire_deadlines(lights)
            done.update(lights)

    # -- the loop --------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Fire lights as they come due until `stop` is set."""
        try:
            while not stop.is_set():
                if not self.leadership.acquire():
                    stop.wait(self.standby_interval)
                    continue
                try:
                    recorded = self.fire_due()
                    if recorded:
                        log.info("SLA timer recorded %d lights", recorded)
                    wait = self.sleep_for()
                except Exception:  # a store hiccup: try again shortly
                    log.exception("SLA timer round failed; retrying")
                    wait = self.max_sleep
                stop.wait(wait)
        finally:
            self.leadership.release()

    def sleep_for(self) -> float:
        """Seconds until the next fire time on the injected clock, capped at `max_sleep`."""
        nxt = self.next_fire_at()
        if nxt is None:
            return self.max_sleep
        seconds = (nxt - self.service.clock.now()).total_seconds()
        return min(max(seconds, 0.0), self.max_sleep)

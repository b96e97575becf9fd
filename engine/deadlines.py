"""The pending-deadline store: a read model of every running SLA clock, indexed by fire time.

Folded from case events by `engine.follower` (each batch and its log position commit
in one transaction), it keeps two tables in the view store:

- `sla_clocks`, one row per case x deadline kind that is running or paused: when its
  window started, when it is due, whether its yellow / red light already fired, and
  since when it is paused. This is the fold's state.
- `sla_pending`, one row per light still to fire (a yellow warning at `warn_share` of
  the window, a red breach at the due time), keyed (case, kind, light) and indexed by
  `fire_at`. "What is due now" is an index range scan, O(log n) in the open cases.

Times are stored as integer microseconds since the epoch (UTC) so both SQLite and
PostgreSQL compare and sort them natively.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import ClassVar, NamedTuple
from uuid import UUID

from engine.events import (
    CaseAccepted,
    CaseClosed,
    CaseEscalated,
    CaseEvent,
    CaseReferred,
    CaseReopened,
    CaseResolved,
    CaseResumed,
    CaseReturned,
    CaseRouted,
    CaseSuspended,
    DeadlineExtended,
    SlaBreached,
    SlaWarned,
)
from engine.follower import Tracked
from engine.values import DeadlineKind
from engine.viewstore import ViewCursor

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KINDS = (DeadlineKind.RESPOND, DeadlineKind.RESOLVE)


class Light(StrEnum):
    WARN = "warn"  # yellow: the window is `warn_share` gone
    BREACH = "breach"  # red: the due time passed unmet


class DueDeadline(NamedTuple):
    """A light to fire: for which case, which deadline (by its due time), and when."""

    fire_at: datetime
    case_id: UUID
    kind: DeadlineKind
    light: Light
    due: datetime


def to_us(when: datetime) -> int:
    """Microseconds since the epoch (exact integer arithmetic, no float rounding)."""
    return (when - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def warn_at(started: int, due: int, share: float) -> int:
    """When the yellow light fires: `share` of the window from `started` to `due`."""
    return started + int((due - started) * share)


class PendingDeadlines:
    """The read model (engine.follower.ReadModel) behind the SLA timer."""

    name: ClassVar[str] = "sla_deadlines"
    topics: ClassVar[tuple[str, ...]] = tuple(
        e.TOPIC
        for e in (
            CaseRouted,
            CaseAccepted,
            CaseReturned,
            CaseReferred,
            CaseEscalated,
            SlaWarned,
            SlaBreached,
            DeadlineExtended,
            CaseSuspended,
            CaseResumed,
            CaseResolved,
            CaseReopened,
            CaseClosed,
        )
    )

    def __init__(self, warn_share: float = 0.75) -> None:
        if not 0 < warn_share < 1:
            raise ValueError("warn_share must be between 0 and 1")
        self.warn_share = warn_share

    # -- schema --------------------------------------------------------------------------------

    def create(self, cur: ViewCursor) -> None:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS sla_clocks ("
            " case_id TEXT NOT NULL, kind TEXT NOT NULL,"
            " started BIGINT NOT NULL, due BIGINT NOT NULL, paused_at BIGINT,"
            " warned SMALLINT NOT NULL, breached SMALLINT NOT NULL,"
            " PRIMARY KEY (case_id, kind))"
        )
        cur.execute(
            "CREATE TABLE IF NOT EXISTS sla_pending ("
            " case_id TEXT NOT NULL, kind TEXT NOT NULL, light TEXT NOT NULL,"
            " fire_at BIGINT NOT NULL, due BIGINT NOT NULL,"
            " PRIMARY KEY (case_id, kind, light))"
        )
        cur.execute("CREATE INDEX IF NOT EXISTS sla_pending_fire_at ON sla_pending (fire_at)")
        # the position row exists from the start, so followers can lock it (engine.follower)
        cur.execute(
            "INSERT INTO lianhu_positions (name, position, updated_at) VALUES (?, 0, ?) "
            "ON CONFLICT (name) DO NOTHING",
            (self.name, datetime.now(tz=UTC).isoformat()),
        )

    # -- the fold ------------------------------------------------------------------------------

    def apply(self, cur: ViewCursor, batch: Sequence[Tracked]) -> None:
        for tracked in batch:
            self.evolve(cur, tracked.event)

    def evolve(self, cur: ViewCursor, event: CaseEvent) -> None:
        case, at = str(event.originator_id), to_us(event.timestamp)
        match event:
            case CaseRouted() | CaseReferred() | CaseEscalated():
                self.drop(cur, case)
                self.start(cur, case, DeadlineKind.RESPOND, at, to_us(event.respond_due))
                self.start(cur, case, DeadlineKind.RESOLVE, at, to_us(event.resolve_due))
            case CaseAccepted() | CaseReturned():
                self.drop(cur, case, DeadlineKind.RESPOND)  # the resolve clock keeps running
            case SlaWarned():
                self._fired(cur, case, event.kind, to_us(event.due), breached=False)
            case SlaBreached():
                self._fired(cur, case, event.kind, to_us(event.due), breached=True)
            case DeadlineExtended():
                self._extend(cur, case, event.kind, at, to_us(event.new_due))
            case CaseSuspended():
                cur.execute("UPDATE sla_clocks SET paused_at = ? WHERE case_id = ?", (at, case))
                cur.execute("DELETE FROM sla_pending WHERE case_id = ?", (case,))
            case CaseResumed():
                self._resume(cur, case, at, event.respond_due, event.resolve_due)
            case CaseReopened():
                self.drop(cur, case)
                self.start(cur, case, DeadlineKind.RESOLVE, at, to_us(event.resolve_due))
            case CaseResolved() | CaseClosed():
                self.drop(cur, case)
            case _:
                pass

    def start(self, cur: ViewCursor, case: str, kind: DeadlineKind, started: int, due: int) -> None:
        """A new clock: window from `started` to `due`, no light fired yet."""
        cur.execute(
            "INSERT INTO sla_clocks (case_id, kind, started, due, paused_at, warned, breached) "
            "VALUES (?, ?, ?, ?, NULL, 0, 0) "
            "ON CONFLICT (case_id, kind) DO UPDATE SET started = excluded.started, "
            "due = excluded.due, paused_at = NULL, warned = 0, breached = 0",
            (case, kind.value, started, due),
        )
        self._schedule(cur, case, kind, started, due, warned=False, breached=False)

    def drop(self, cur: ViewCursor, case: str, kind: DeadlineKind | None = None) -> None:
        """The clock(s) stopped: no rows left for them."""
        if kind is None:
            cur.execute("DELETE FROM sla_clocks WHERE case_id = ?", (case,))
            cur.execute("DELETE FROM sla_pending WHERE case_id = ?", (case,))
        else:
            key = (case, kind.value)
            cur.execute("DELETE FROM sla_clocks WHERE case_id = ? AND kind = ?", key)
            cur.execute("DELETE FROM sla_pending WHERE case_id = ? AND kind = ?", key)

    def _schedule(
        self,
        cur: ViewCursor,
        case: str,
        kind: DeadlineKind,
        started: int,
        due: int,
        *,
        warned: bool,
        breached: bool,
    ) -> None:
        cur.execute("DELETE FROM sla_pending WHERE case_id = ? AND kind = ?", (case, kind.value))
        rows: list[tuple[str, str, str, int, int]] = []
        if not warned and not breached:
            fire = warn_at(started, due, self.warn_share)
            rows.append((case, kind.value, Light.WARN.value, fire, due))
        if not breached:
            rows.append((case, kind.value, Light.BREACH.value, due, due))
        if rows:
            cur.executemany(
                "INSERT INTO sla_pending (case_id, kind, light, fire_at, due) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def _clock(self, cur: ViewCursor, case: str, kind: DeadlineKind) -> tuple[int, ...] | None:
        return cur.execute(
            "SELECT started, due, paused_at, warned, breached FROM sla_clocks "
            "WHERE case_id = ? AND kind = ?",
            (case, kind.value),
        ).fetchone()

    def _fired(
        self, cur: ViewCursor, case: str, kind: DeadlineKind, due: int, *, breached: bool
    ) -> None:
        """A light fired for the deadline due at `due`: it (and, once red, yellow) is done."""
        key = (case, kind.value, due)
        flags = "warned = 1, breached = 1" if breached else "warned = 1"
        where = "WHERE case_id = ? AND kind = ? AND due = ?"
        cur.execute(f"UPDATE sla_clocks SET {flags} {where}", key)
        lights = "('warn', 'breach')" if breached else "('warn')"
        cur.execute(f"DELETE FROM sla_pending {where} AND light IN {lights}", key)

    def _extend(self, cur: ViewCursor, case: str, kind: DeadlineKind, at: int, due: int) -> None:
        clock = self._clock(cur, case, kind)
        started = clock[0] if clock is not None else at
        self.start(cur, case, kind, started, due)  # lights of the moved deadline fire anew

    def _resume(
        self,
        cur: ViewCursor,
        case: str,
        at: int,
        respond_due: datetime | None,
        resolve_due: datetime | None,
    ) -> None:
        for kind, due in zip(KINDS, (respond_due, resolve_due), strict=True):
            clock = self._clock(cur, case, kind)
            if due is None or clock is None:
                self.drop(cur, case, kind)
                continue
            started, _, paused_at, warned, breached = clock
            started += at - (paused_at if paused_at is not None else at)  # pause does not count
            cur.execute(
                "UPDATE sla_clocks SET started = ?, due = ?, paused_at = NULL "
                "WHERE case_id = ? AND kind = ?",
                (started, to_us(due), case, kind.value),
            )
            self._schedule(
                cur, case, kind, started, to_us(due), warned=bool(warned), breached=bool(breached)
            )

    # -- queries -------------------------------------------------------------------------------

    def due(self, cur: ViewCursor, now: datetime, limit: int = 500) -> list[DueDeadline]:
        """Lights whose fire time has come, earliest first (an index range scan)."""
        rows = cur.execute(
            "SELECT fire_at, case_id, kind, light, due FROM sla_pending "
            "WHERE fire_at <= ? ORDER BY fire_at, case_id, kind, light LIMIT ?",
            (to_us(now), limit),
        ).fetchall()
        return [_due(row) for row in rows]

    def next_fire_at(self, cur: ViewCursor, after: datetime | None = None) -> datetime | None:
        """The earliest fire time (strictly after `after`, if given)."""
        if after is None:
            row = cur.execute("SELECT MIN(fire_at) FROM sla_pending").fetchone()
        else:
            sql = "SELECT MIN(fire_at) FROM sla_pending WHERE fire_at > ?"
            row = cur.execute(sql, (to_us(after),)).fetchone()
        return from_us(int(row[0])) if row is not None and row[0] is not None else None

    def pending(self, cur: ViewCursor, case_id: UUID | None = None) -> list[DueDeadline]:
        """Every light still to fire (of one case), earliest first."""
        sql = "SELECT fire_at, case_id, kind, light, due FROM sla_pending"
        params: tuple[str, ...] = ()
        if case_id is not None:
            sql, params = sql + " WHERE case_id = ?", (str(case_id),)
        rows = cur.execute(sql + " ORDER BY fire_at, case_id, kind, light", params).fetchall()
        return [_due(row) for row in rows]

    def count(self, cur: ViewCursor) -> int:
        row = cur.execute("SELECT COUNT(*) FROM sla_pending").fetchone()
        return int(row[0]) if row else 0


def _due(row: tuple[object, ...]) -> DueDeadline:
    fire_at, case_id, kind, light, due = row
    return DueDeadline(
        from_us(int(str(fire_at))),
        UUID(str(case_id)),
        DeadlineKind(str(kind)),
        Light(str(light)),
        from_us(int(str(due))),
    )

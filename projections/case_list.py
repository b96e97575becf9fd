"""The case list: every case as it stands (unit, level, status, light, due times, hops).

One row per case, folded from its events. The light is not stored: it depends on
the moment asked, so queries compute it from the due times and window starts
(`light_sql`), which the board shares.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import orjson

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
    PetitionFiled,
    SlaBreached,
)
from engine.values import OPEN_STATUSES, DeadlineKind, EscalationTrigger
from engine.viewstore import ViewCursor
from projections.fold import (
    FoldModel,
    case_key,
    changed,
    columns_ddl,
    epoch,
    load_rows,
    upsert_rows,
)

OPEN = tuple(sorted(s.value for s in OPEN_STATUSES))
LIGHTS = ("green", "yellow", "red")


@dataclass(frozen=True)
class CaseRow:
    case_id: str
    number: str
    title: str
    household: str
    unit: str
    level: str
    status: str
    category: str
    urgency: str
    hops: int
    supervised: int
    filed_at: float
    raised_at: float
    updated_at: float
    respond_from: float | None = None
    respond_due: float | None = None
    resolve_from: float | None = None
    resolve_due: float | None = None
    paused_at: float | None = None
    resumes_to: str = ""


def _assigned(
    s: CaseRow, unit: str, level: str, t: float, respond: float, resolve: float
) -> CaseRow:
    return changed(
        s, unit=unit, level=level, status="routed", respond_from=t, respond_due=respond,
        resolve_from=t, resolve_due=resolve,
    )  # fmt: skip


def evolve_row(s: CaseRow | None, event: CaseEvent) -> CaseRow | None:
    """The pure fold of one case's row."""
    t = epoch(event.timestamp)
    if isinstance(event, PetitionFiled):
        return CaseRow(
            case_key(event.originator_id), event.number, event.title, event.household_unit,
            event.household_unit, "household", "routed", event.category, event.urgency.value,
            0, 0, t, epoch(event.raised_at), t,
        )  # fmt: skip
    if s is None:
        return None
    s = changed(s, updated_at=t)
    match event:
        case CaseRouted():
            return _assigned(
                s, event.handler, event.handler_level.value, t, epoch(event.respond_due),
                epoch(event.resolve_due),
            )  # fmt: skip
        case CaseReferred():
            s = changed(s, hops=event.hop, category=event.category, urgency=event.urgency.value)
            return _assigned(
                s, event.to_unit, event.to_level.value, t, epoch(event.respond_due),
                epoch(event.resolve_due),
            )  # fmt: skip
        case CaseEscalated():
            supervised = s.supervised or int(event.trigger is EscalationTrigger.SLA_BREACH)
            s = changed(s, hops=event.hop, supervised=supervised)
            return _assigned(
                s, event.to_unit, event.to_level.value, t, epoch(event.respond_due),
                epoch(event.resolve_due),
            )  # fmt: skip
        case CaseAccepted():
            return changed(s, status="accepted", respond_from=None, respond_due=None)
        case CaseReturned():
            return changed(
                s, status="returned", unit=event.to_unit, level=event.to_level.value,
                respond_from=None, respond_due=None,
            )  # fmt: skip
        case SlaBreached():
            return changed(s, supervised=1)
        case DeadlineExtended():
            if event.kind is DeadlineKind.RESPOND:
                return changed(s, respond_due=epoch(event.new_due))
            return changed(s, resolve_due=epoch(event.new_due))
        case CaseSuspended():
            return changed(s, status="suspended", paused_at=t, resumes_to=s.status)
        case CaseResumed():
            paused = t - (s.paused_at if s.paused_at is not None else t)
            return changed(
                s, status=s.resumes_to or "routed", paused_at=None, resumes_to="",
                respond_due=epoch(event.respond_due) if event.respond_due else None,
                resolve_due=epoch(event.resolve_due) if event.resolve_due else None,
                respond_from=s.respond_from + paused if s.respond_from is not None else None,
                resolve_from=s.resolve_from + paused if s.resolve_from is not None else None,
            )  # fmt: skip
        case CaseResolved() | CaseClosed():
            status = "resolved" if isinstance(event, CaseResolved) else "closed"
            return changed(
                s, status=status, respond_from=None, respond_due=None, resolve_from=None,
                resolve_due=None,
            )  # fmt: skip
        case CaseReopened():
            return changed(
                s, status="accepted", resolve_from=t, resolve_due=epoch(event.resolve_due)
            )
        case _:
            return s


def light_sql(table: str) -> str:
    """Rows of `table` with `eff` (the clock of the case at T: paused cases stop) and `light`.

    Parameters: the warning share twice, then T. Green before the warning share of a
    window, yellow after it, red at or past a due time; the worst of both deadlines.
    """
    return f"""SELECT *, CASE
        WHEN (respond_due IS NOT NULL AND eff >= respond_due)
          OR (resolve_due IS NOT NULL AND eff >= resolve_due) THEN 'red'
        WHEN (respond_due IS NOT NULL AND eff >= respond_from + ? * (respond_due - respond_from))
          OR (resolve_due IS NOT NULL AND eff >= resolve_from + ? * (resolve_due - resolve_from))
          THEN 'yellow'
        ELSE 'green' END AS light
      FROM (SELECT *, COALESCE(paused_at, ?) AS eff FROM {table}) AS timed"""


def light_of(row: CaseRow, at: float, warn_share: float) -> str:
    """The same rule as `light_sql`, in Python (for one case, and for tests)."""
    if row.status not in OPEN:
        return ""
    eff = row.paused_at if row.paused_at is not None else at
    windows = [(row.respond_from, row.respond_due), (row.resolve_from, row.resolve_due)]
    if any(d is not None and eff >= d for _, d in windows):
        return "red"
    if any(f is not None and d is not None and eff >= f + warn_share * (d - f) for f, d in windows):
        return "yellow"
    return "green"


class BadCursor(ValueError):
    """A cursor this list did not hand out."""


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        filed_at, case_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(filed_at), str(case_id)
    except (ValueError, TypeError) as e:
        raise BadCursor(f"not a cursor from this list: {cursor!r}") from e


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None


class CaseList(FoldModel[CaseRow]):
    """Current state of every case, filterable and paged by cursor."""

    base_name: ClassVar[str] = "case_list"
    name: ClassVar[str] = "case_list.g1"
    tables: ClassVar[dict[str, str]] = {"cl_cases": columns_ddl(CaseRow, "cl_cases")}
    indexes: ClassVar[tuple[str, ...]] = (
        "CREATE INDEX IF NOT EXISTS {cl_cases}_filed ON {cl_cases} (filed_at, case_id)",
        "CREATE INDEX IF NOT EXISTS {cl_cases}_unit ON {cl_cases} (unit, filed_at)",
        "CREATE INDEX IF NOT EXISTS {cl_cases}_status ON {cl_cases} (status, filed_at)",
    )

    def evolve(self, state: CaseRow | None, event: CaseEvent) -> tuple[CaseRow | None, list[Any]]:
        return evolve_row(state, event), []

    def load_states(self, cur: ViewCursor, keys: Sequence[str]) -> dict[str, CaseRow]:
        return load_rows(cur, self.t("cl_cases"), CaseRow, keys)

    def save_states(self, cur: ViewCursor, states: dict[str, CaseRow]) -> None:
        upsert_rows(cur, self.t("cl_cases"), CaseRow, [states[k] for k in sorted(states)])

    def page(
        self,
        cur: ViewCursor,
        *,
        now: float,
        warn_share: float,
        scope: str | None = None,
        status: str | None = None,
        category: str | None = None,
        light: str | None = None,
        since: float | None = None,
        until: float | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page:
        """Cases newest first (by filing time), `limit` per page; `next_cursor` pages on."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = [warn_share, warn_share, now]
        if scope is not None:
            if scope.startswith("dept:"):
                where.append("unit = ?")
                params.append(scope)
            else:
                where.append("unit LIKE ?")  # tree codes: digits and '-' only
                params.append(scope + "%")
        for column, value in (("status", status), ("category", category), ("light", light)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if light is not None:
            where.append(f"status IN ({', '.join('?' * len(OPEN))})")
            params += list(OPEN)
        if since is not None:
            where.append("filed_at >= ?")
            params.append(since)
        if until is not None:
            where.append("filed_at < ?")
            params.append(until)
        if cursor is not None:
            filed_at, case_id = decode_cursor(cursor)
            where.append("(filed_at < ? OR (filed_at = ? AND case_id < ?))")
            params += [filed_at, filed_at, case_id]
        names = [f.name for f in fields(CaseRow)]
        sql = (
            f"SELECT {', '.join(names)}, light FROM ({light_sql(self.t('cl_cases'))}) AS c "
            f"WHERE {' AND '.join(where)} ORDER BY filed_at DESC, case_id DESC LIMIT ?"
        )
        rows = cur.execute(sql, [*params, limit + 1]).fetchall()
        out = []
        for r in rows[:limit]:
            item = dict(zip([*names, "light"], r, strict=True))
            if item["status"] not in OPEN:
                item["light"] = None
            out.append(item)
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            token = orjson.dumps([last[names.index("filed_at")], last[0]])
            next_cursor = base64.urlsafe_b64encode(token).decode()
        return Page(out, next_cursor)

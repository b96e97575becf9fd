"""The case list: every case as it stands (unit, level, status, light, due times, hops).

One row per case, folded from its events. The light is not stored: it depends on
the moment asked, so queries compute it from the due times and window starts
(`light_sql`), which the board shares.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from sys import intern
from typing import Any, ClassVar, NamedTuple

import orjson

from engine.values import OPEN_STATUSES, DeadlineKind, EscalationTrigger
from engine.viewstore import ViewCursor
from projections.fold import (
    FoldModel,
    Rec,
    columns_ddl,
    columns_of,
    in_subtree,
    load_rows,
    ts,
    ts_or_none,
    upsert_rows,
)

OPEN = tuple(sorted(s.value for s in OPEN_STATUSES))
VILLAGE_CODE = 12  # characters of a village's code (routing_rules.units); groups are longer
LIGHTS = ("green", "yellow", "red")


class CaseRow(NamedTuple):
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


ROW_COLUMNS = columns_of(CaseRow)
ROW_NAMES = [name for name, _ in ROW_COLUMNS]
FIXED = frozenset({"number", "title", "household", "filed_at", "raised_at"})  # set at filing
# positions in a CaseRow, for the fold (it edits a list copy of the row: no per-field copies)
UNIT, LEVEL, STATUS, CATEGORY, URGENCY, HOPS, SUPERVISED = 4, 5, 6, 7, 8, 9, 10
UPDATED, RESPOND_FROM, RESPOND_DUE, RESOLVE_FROM, RESOLVE_DUE, PAUSED, RESUMES = range(13, 20)
SLA_BREACH = EscalationTrigger.SLA_BREACH.value
RESPOND = DeadlineKind.RESPOND.value


def _assign(r: list[Any], d: dict[str, Any], t: float, unit: str, level: str) -> None:
    # codes interned (as in measures.fact): rows and intervals share one object per value
    r[UNIT], r[LEVEL], r[STATUS] = intern(unit), intern(level), "routed"
    r[RESPOND_FROM], r[RESPOND_DUE] = t, ts(d["respond_due"])
    r[RESOLVE_FROM], r[RESOLVE_DUE] = t, ts(d["resolve_due"])


def _routed(r: list[Any], d: dict[str, Any], t: float) -> None:
    _assign(r, d, t, d["handler"], d["handler_level"])


def _referred(r: list[Any], d: dict[str, Any], t: float) -> None:
    r[HOPS], r[CATEGORY], r[URGENCY] = d["hop"], intern(d["category"]), intern(d["urgency"])
    _assign(r, d, t, d["to_unit"], d["to_level"])


def _escalated(r: list[Any], d: dict[str, Any], t: float) -> None:
    r[SUPERVISED] = r[SUPERVISED] or int(d["trigger"] == SLA_BREACH)
    r[HOPS] = d["hop"]
    _assign(r, d, t, d["to_unit"], d["to_level"])


def _accepted(r: list[Any], d: dict[str, Any], t: float) -> None:
    r[STATUS], r[RESPOND_FROM], r[RESPOND_DUE] = "accepted", None, None


def _returned(r: list[Any], d: dict[str, Any], t: float) -> None:
    r[STATUS], r[UNIT], r[LEVEL] = "returned", intern(d["to_unit"]), intern(d["to_level"])
    r[RESPOND_FROM], r[RESPOND_DUE] = None, None


def _breached(r: list[Any], d: dict[str, Any], t: float) -> None:
    r[SUPERVISED] = 1


def _extended(r: list[Any], d: dict[str, Any], t: float) -> None:
    r[RESPOND_DUE if d["kind"] == RESPOND else RESOLVE_DUE] = ts(d["new_due"])


def _suspended(r: list[Any], d: dict[str, Any], t: float) -> None:
    r[RESUMES], r[STATUS], r[PAUSED] = r[STATUS], "suspended", t


def _resumed(r: list[Any], d: dict[str, Any], t: float) -> None:
    paused = t - (r[PAUSED] if r[PAUSED] is not None else t)
    r[STATUS], r[PAUSED], r[RESUMES] = r[RESUMES] or "routed", None, ""
    r[RESPOND_DUE], r[RESOLVE_DUE] = ts_or_none(d["respond_due"]), ts_or_none(d["resolve_due"])
    if r[RESPOND_FROM] is not None:
        r[RESPOND_FROM] += paused
    if r[RESOLVE_FROM] is not None:
        r[RESOLVE_FROM] += paused


def _ended(status: str) -> Callable[[list[Any], dict[str, Any], float], None]:
    def end(r: list[Any], d: dict[str, Any], t: float) -> None:
        r[STATUS] = status
        r[RESPOND_FROM] = r[RESPOND_DUE] = r[RESOLVE_FROM] = r[RESOLVE_DUE] = None

    return end


def _reopened(r: list[Any], d: dict[str, Any], t: float) -> None:
    r[STATUS], r[RESOLVE_FROM], r[RESOLVE_DUE] = "accepted", t, ts(d["resolve_due"])


ROW_STEPS: dict[str, Callable[[list[Any], dict[str, Any], float], None]] = {
    "CaseRouted": _routed,
    "CaseReferred": _referred,
    "CaseEscalated": _escalated,
    "CaseAccepted": _accepted,
    "CaseReturned": _returned,
    "SlaBreached": _breached,
    "DeadlineExtended": _extended,
    "CaseSuspended": _suspended,
    "CaseResumed": _resumed,
    "CaseResolved": _ended("resolved"),
    "CaseClosed": _ended("closed"),
    "CaseReopened": _reopened,
}  # any other case event only moves updated_at


MADE = "\x00row"  # in an event's fields: (row before, row after) as evolve_row made it


def evolve_row(s: CaseRow | None, rec: Rec) -> CaseRow | None:
    """The pure fold of one case's row.

    The case list and the board both fold every event into the same row, one after the
    other over a batch. The first leaves its result in the event's fields (under a key no
    stored field has), and the second takes it when its row before is the very same
    object, which it is whenever both folded the case from the same start (a birth in
    the catch-up, or states remembered together): each row is made once, not twice."""
    d = rec.d
    made = d.get(MADE)
    if made is not None and made[0] is s:
        return made[1]  # type: ignore[no-any-return]
    new = _evolve_row(s, rec)
    d[MADE] = (s, new)
    return new


def _evolve_row(s: CaseRow | None, rec: Rec) -> CaseRow | None:
    t = rec.t
    if rec.type == "PetitionFiled":
        d = rec.d
        home = intern(d["household_unit"])
        return CaseRow(
            rec.key, d["number"], d["title"], home, home, "household", "routed",
            intern(d["category"]), intern(d["urgency"]), 0, 0, t, ts(d["raised_at"]), t,
        )  # fmt: skip
    if s is None:
        return None
    r = list(s)
    r[UPDATED] = t
    step = ROW_STEPS.get(rec.type)
    if step is not None:
        step(r, rec.d, t)
    return tuple.__new__(CaseRow, r)


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


def light_expr(at: float, warn_share: float) -> tuple[str, list[Any]]:
    """`light_sql`'s rule as one expression over a row's columns, and its parameters (the
    board computes it in each branch of its union, where SQLite evaluates it in one pass)."""
    e = "COALESCE(paused_at, ?)"
    sql = f"""CASE
        WHEN (respond_due IS NOT NULL AND {e} >= respond_due)
          OR (resolve_due IS NOT NULL AND {e} >= resolve_due) THEN 'red'
        WHEN (respond_due IS NOT NULL AND {e} >= respond_from + ? * (respond_due - respond_from))
          OR (resolve_due IS NOT NULL AND {e} >= resolve_from + ? * (resolve_due - resolve_from))
          THEN 'yellow'
        ELSE 'green' END"""
    return sql, [at, at, at, warn_share, at, warn_share]


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
    tables: ClassVar[dict[str, str]] = {"cl_cases": columns_ddl(ROW_COLUMNS, "cl_cases")}
    indexes: ClassVar[tuple[str, ...]] = (
        "CREATE INDEX IF NOT EXISTS {cl_cases}_filed ON {cl_cases} (filed_at, case_id)",
        "CREATE INDEX IF NOT EXISTS {cl_cases}_unit ON {cl_cases} (unit, filed_at)",
        "CREATE INDEX IF NOT EXISTS {cl_cases}_status ON {cl_cases} (status, filed_at)",
    )

    def evolve(self, state: CaseRow | None, rec: Rec) -> tuple[CaseRow | None, list[Any]]:
        return evolve_row(state, rec), []

    def load_states(self, cur: ViewCursor, keys: Sequence[str]) -> dict[str, CaseRow]:
        rows = load_rows(cur, self.t("cl_cases"), ROW_NAMES, keys)
        return {str(r[0]): CaseRow._make(r) for r in rows}

    def save_states(self, cur: ViewCursor, states: dict[str, CaseRow]) -> None:
        rows = [states[k] for k in sorted(states)]
        upsert_rows(cur, self.t("cl_cases"), ROW_NAMES, rows, fixed=FIXED)

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
            # newest first: a village or wider has 50 among its newest rows, found by the
            # filing-time index (0.5-1.7 ms at 10^6 events; 13-58 ms through the unit index,
            # sorting all its cases); a group or a household's few cases by the unit index
            # (0.7-1.6 ms; 11-64 ms by filing time)
            narrow = len(scope) > VILLAGE_CODE
            scoped, scope_params = in_subtree("unit", scope, cur.dialect, indexed=narrow)
            if scoped:
                where.append(scoped.removeprefix(" AND "))
                params += scope_params
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
        names = ROW_NAMES
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

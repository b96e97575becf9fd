"""The red / yellow / green board: open cases per unit by light, overdue and supervised.

The board must answer for any moment T ("what did it say on 1 March?"), so it
keeps each case's open state as intervals [valid_from, valid_to) of recorded
time: the unit holding it, its status and the due times and window starts in
force. The light at T is computed from those due times against T itself
(engine's warning share of the window, from the rule set), so the same query
answers live (T = now) and historical questions.

Closed intervals are stored cut at week boundaries, each piece tagged with its
week: the intervals alive at T are the pieces of week(T) that contain T, plus
the still-open current rows that began by T. Both are bounded by the cases open
around T, not by the size of the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from engine.viewstore import ViewCursor
from projections.case_list import (
    FIXED,
    OPEN,
    ROW_COLUMNS,
    ROW_NAMES,
    STATUS,
    CaseRow,
    evolve_row,
    light_expr,
)
from projections.fold import (
    FoldModel,
    Rec,
    columns_ddl,
    columns_of,
    in_subtree,
    load_rows,
    upsert_rows,
    week_of,
    week_start,
)

assert "returned" in OPEN  # returned cases are open: the board keeps their intervals
BoardState = tuple[CaseRow, float]  # the case's row, and since when its tracked fields hold
BOARD_NAMES = [*ROW_NAMES, "valid_from"]


class Interval(NamedTuple):
    case_id: str
    valid_from: float
    valid_to: float
    week: int
    unit: str
    level: str
    status: str
    category: str
    urgency: str
    supervised: int
    respond_from: float | None
    respond_due: float | None
    resolve_from: float | None
    resolve_due: float | None
    paused_at: float | None


def tracked(row: CaseRow) -> tuple[Any, ...]:
    """The fields an interval records: unit, level, status, category, urgency, supervised,
    respond_from, respond_due, resolve_from, resolve_due, paused_at."""
    return (*row[4:9], row[10], *row[14:19])


def pieces(row: CaseRow, valid_from: float, end: float) -> list[Interval]:
    """The interval [valid_from, end) of an open row, cut at week boundaries."""
    out, start = [], valid_from
    values = tracked(row)
    while start < end:
        week = week_of(start)
        stop = min(end, week_start(week + 1))
        out.append(Interval(row[0], start, stop, week, *values))
        start = stop
    return out


def evolve(state: BoardState | None, rec: Rec) -> tuple[BoardState | None, list[Interval]]:
    """The pure fold: the case's current row; the closed open-state interval, if it changed."""
    new = evolve_row(state[0] if state is not None else None, rec)
    if new is None:
        return None, []
    if state is None:
        return (new, rec.t), []
    old, valid_from = state
    if old[4:9] == new[4:9] and old[10] == new[10] and old[14:19] == new[14:19]:
        return (new, valid_from), []
    closed = pieces(old, valid_from, rec.t) if old[STATUS] in OPEN else []
    return (new, rec.t), closed


@dataclass(frozen=True)
class UnitBoard:
    unit: str
    green: int = 0
    yellow: int = 0
    red: int = 0
    overdue: int = 0
    supervised: int = 0
    returned: int = 0  # open cases bounced back to their dispatcher: nobody owns them now

    @property
    def open(self) -> int:
        return self.green + self.yellow + self.red


INTERVAL_COLUMNS = list(Interval._fields)


class Board(FoldModel[BoardState]):
    """Open cases per unit by light at any moment."""

    base_name: ClassVar[str] = "board"
    name: ClassVar[str] = "board.g1"
    tables: ClassVar[dict[str, str]] = {
        "bd_current": columns_ddl([*ROW_COLUMNS, ("valid_from", "float")], "bd_current"),
        "bd_history": columns_ddl(columns_of(Interval), "bd_history", key=""),
    }
    indexes: ClassVar[tuple[str, ...]] = (
        "CREATE INDEX IF NOT EXISTS {bd_history}_w ON {bd_history} (week, valid_from)",
        # covering what the board reads of open rows: no lookups into the wide rows
        "CREATE INDEX IF NOT EXISTS {bd_current}_alive ON {bd_current} (status, valid_from, "
        "unit, supervised, respond_from, respond_due, resolve_from, resolve_due, paused_at)",
        "DROP INDEX IF EXISTS {bd_current}_open",  # (status, valid_from): views before _alive
    )

    evolve = staticmethod(evolve)  # the pure fold itself: one call per event, not two

    def load_states(self, cur: ViewCursor, keys: Sequence[str]) -> dict[str, BoardState]:
        rows = load_rows(cur, self.t("bd_current"), BOARD_NAMES, keys)
        return {str(r[0]): (CaseRow._make(r[:-1]), r[-1]) for r in rows}

    def save_states(self, cur: ViewCursor, states: dict[str, BoardState]) -> None:
        rows = [(*row, valid_from) for row, valid_from in (states[k] for k in sorted(states))]
        upsert_rows(cur, self.t("bd_current"), BOARD_NAMES, rows, fixed=FIXED)

    def write(self, cur: ViewCursor, effects: list[Any]) -> None:
        cur.executemany(
            f"INSERT INTO {self.t('bd_history')} VALUES ({', '.join('?' * len(INTERVAL_COLUMNS))})",
            effects,
        )

    def returned(self, cur: ViewCursor, *, at: float, scope: str | None = None) -> int:
        """Open cases returned to their dispatcher at `at` (the board's `returned` total),
        counted without computing lights."""
        where, extra = in_subtree("unit", scope, cur.dialect)
        h, c = self.t("bd_history"), self.t("bd_current")
        sql = (
            f"SELECT (SELECT COUNT(*) FROM {h} WHERE week = ? AND valid_from <= ? "
            f"AND valid_to > ? AND status = 'returned'{where}) + (SELECT COUNT(*) FROM {c} "
            f"WHERE status = 'returned' AND valid_from <= ?{where})"
        )
        row = cur.execute(sql, [week_of(at), at, at, *extra, at, *extra]).fetchone()
        return int(row[0]) if row else 0

    def board(
        self, cur: ViewCursor, *, at: float, warn_share: float, scope: str | None = None
    ) -> list[UnitBoard]:
        """Per unit holding cases at `at`: counts by light, overdue, supervised, returned."""
        scoped, extra = in_subtree("unit", scope, cur.dialect)
        light, light_params = light_expr(at, warn_share)
        columns = (
            f"unit, {light} AS light, CASE WHEN resolve_due IS NOT NULL AND "
            "COALESCE(paused_at, ?) >= resolve_due THEN 1 ELSE 0 END AS overdue, supervised, "
            "CASE WHEN status = 'returned' THEN 1 ELSE 0 END AS returned"
        )
        marks = ", ".join("?" * len(OPEN))
        sql = (  # the open-state rows alive at T: week(T)'s pieces containing T, current rows
            "SELECT unit, light, COUNT(*), SUM(overdue), SUM(supervised), SUM(returned) FROM ("
            f"SELECT {columns} FROM {self.t('bd_history')} "
            f"WHERE week = ? AND valid_from <= ? AND valid_to > ?{scoped} "
            f"UNION ALL SELECT {columns} FROM {self.t('bd_current')} "
            f"WHERE status IN ({marks}) AND valid_from <= ?{scoped}) AS lit "
            "GROUP BY unit, light ORDER BY unit"
        )
        params = [
            *light_params, at, week_of(at), at, at, *extra,
            *light_params, at, *OPEN, at, *extra,
        ]  # fmt: skip
        boards: dict[str, dict[str, int]] = {}
        for unit, light, n, overdue, supervised, returned in cur.execute(sql, params).fetchall():
            b = boards.setdefault(unit, {"overdue": 0, "supervised": 0, "returned": 0})
            b[light] = int(n)
            b["overdue"] += int(overdue or 0)
            b["supervised"] += int(supervised or 0)
            b["returned"] += int(returned or 0)
        return [UnitBoard(unit, **counts) for unit, counts in sorted(boards.items())]

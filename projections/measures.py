"""Measurements as additive facts, with a weekly roll-up, asked "as of" any moment.

Every figure lianhu reports is a sum of facts: `n` (a count), `value` (an
integer: milliseconds, or similarity × 10⁶) and `flag` (a count of "yes").
A fact has two times: `at`, the moment it concerns (the time-range filter and
the week a figure is grouped under), and `recorded`, when the event that
produced it was recorded (the `as_of` filter). A fact later superseded (a
resolution undone by a reopening, a rating replaced by a new one) is
cancelled by a negative copy recorded at the moment it was superseded, so
"as of T" is a WHERE clause and never needs to undo anything.

Facts also feed a roll-up keyed by (kind, at-week, recorded-week, area, level,
category, urgency, depth, histogram bucket). A query sums the roll-up for the
weeks that lie wholly inside the asked range and recorded in weeks before the
`as_of` week, and the raw facts for the rest (the range's partial edge weeks,
and facts recorded in the `as_of` week up to T). Both are bounded by a few
weeks of facts, whatever the range, which is what keeps a county-year fast.

Percentiles come from a logarithmic histogram (DDSketch-style buckets with
γ = 1.05): any reported percentile of a duration is within ±2.5 % (relative)
of the true nearest-rank percentile; durations under 1 ms read as 0. Counts,
sums and means are exact (durations are whole milliseconds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from engine.viewstore import ViewCursor
from projections.fold import (
    FOREVER,
    JSON_STATE_DDL,
    FoldModel,
    S,
    load_json_states,
    save_json_states,
    week_of,
    week_start,
)

GAMMA = 1.05
RELATIVE_ERROR = (GAMMA - 1) / (GAMMA + 1)  # 0.0244
NO_BUCKET = -1

FACTS_DDL = """CREATE TABLE IF NOT EXISTS {t} (
    kind TEXT NOT NULL, case_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
    recorded DOUBLE PRECISION NOT NULL, at_week BIGINT NOT NULL, rec_week BIGINT NOT NULL,
    unit TEXT NOT NULL, area TEXT NOT NULL, level TEXT NOT NULL, category TEXT NOT NULL,
    urgency TEXT NOT NULL, depth BIGINT NOT NULL, bucket BIGINT NOT NULL,
    n BIGINT NOT NULL, value BIGINT NOT NULL, flag BIGINT NOT NULL)"""
ROLLUP_KEY = ("kind", "at_week", "rec_week", "area", "level", "category", "urgency", "depth")
ROLLUP_DDL = """CREATE TABLE IF NOT EXISTS {t} (
    kind TEXT NOT NULL, at_week BIGINT NOT NULL, rec_week BIGINT NOT NULL, area TEXT NOT NULL,
    level TEXT NOT NULL, category TEXT NOT NULL, urgency TEXT NOT NULL, depth BIGINT NOT NULL,
    bucket BIGINT NOT NULL, n BIGINT NOT NULL, value BIGINT NOT NULL, flag BIGINT NOT NULL,
    PRIMARY KEY (kind, at_week, rec_week, area, level, category, urgency, depth, bucket))"""


def fact_indexes(facts: str, rollup: str) -> tuple[str, ...]:
    return (
        f"CREATE INDEX IF NOT EXISTS {{{facts}}}_at ON {{{facts}}} (kind, at)",
        f"CREATE INDEX IF NOT EXISTS {{{facts}}}_rec ON {{{facts}}} (kind, recorded)",
        f"CREATE INDEX IF NOT EXISTS {{{facts}}}_unit ON {{{facts}}} (kind, unit, at)",
    )  # the roll-up's primary key leads with (kind, at_week): it is the index its scans use


def bucket_of(value_ms: int) -> int:
    """Histogram bucket of a duration in ms: 0 for < 1 ms, else ceil(log_γ(ms)) + 1."""
    if value_ms < 1:
        return 0
    return math.ceil(math.log(value_ms) / math.log(GAMMA) - 1e-9) + 1


def bucket_value(bucket: int) -> float:
    """The estimate a bucket stands for (ms): 2γ^i/(γ+1), within RELATIVE_ERROR of any member."""
    if bucket <= 0:
        return 0.0
    return 2 * GAMMA ** (bucket - 1) / (GAMMA + 1)


FactRow = tuple[Any, ...]
"""A fact as a row of the facts table: (kind, case_id, at, recorded, at_week, rec_week,
unit, area, level, category, urgency, depth, bucket, n, value, flag)."""
KIND, CASE_ID, AT, RECORDED, AT_WEEK, REC_WEEK, UNIT, AREA = range(8)
LEVEL, CATEGORY, URGENCY, DEPTH, BUCKET, N, VALUE, FLAG = range(8, 16)


def fact(
    kind: str, case_id: str, t: float, unit: str, area: str, level: str, category: str,
    urgency: str, *, depth: int = 0, bucket: int = NO_BUCKET, n: int = 1, value: int = 0,
    flag: int = 0,
) -> FactRow:  # fmt: skip
    """A fact about moment `t`, recorded at `t`."""
    w = week_of(t)
    return (kind, case_id, t, t, w, w, unit, area, level, category, urgency, depth, bucket,
            n, value, flag)  # fmt: skip


def cancelled(f: Sequence[Any], recorded: float) -> FactRow:
    """The negative copy that withdraws fact `f` from `recorded` on."""
    return (*f[:3], recorded, f[4], week_of(recorded), *f[6:13], -f[13], -f[14], -f[15])


def legacy_fact(f: Any) -> FactRow | None:
    """A fact as states stored it before facts were tuples (a dict of the fields), or as is."""
    if not isinstance(f, dict):
        return None if f is None else tuple(f)
    return (
        f["kind"], f["case_id"], f["at"], f["recorded"], week_of(f["at"]),
        week_of(f["recorded"]), f["unit"], f["area"], f["level"], f["category"],
        f["urgency"], f["depth"], f["bucket"], f["n"], f["value"], f["flag"],
    )  # fmt: skip


def write_facts(cur: ViewCursor, facts_table: str, rollup_table: str, facts: list[FactRow]) -> None:
    if not facts:
        return
    cur.executemany(f"INSERT INTO {facts_table} VALUES ({', '.join('?' * 16)})", facts)
    sums: dict[tuple[Any, ...], list[int]] = {}
    for r in facts:
        key = (r[0], r[4], r[5], r[7], r[8], r[9], r[10], r[11], r[12])
        s = sums.get(key)
        if s is None:
            sums[key] = [r[13], r[14], r[15]]
        else:
            s[0] += r[13]
            s[1] += r[14]
            s[2] += r[15]
    t = rollup_table
    cur.executemany(
        f"INSERT INTO {t} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        f"ON CONFLICT ({', '.join(ROLLUP_KEY)}, bucket) DO UPDATE SET "
        f"n = {t}.n + excluded.n, value = {t}.value + excluded.value, "
        f"flag = {t}.flag + excluded.flag",
        [(*k, *v) for k, v in sorted(sums.items())],
    )


# -- queries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """What to count: a range of `at` (since ≤ at < until), facts recorded up to `as_of`,
    a unit subtree (`scope`: a unit code or a department), and dimension values."""

    since: float | None = None
    until: float | None = None
    as_of: float | None = None
    scope: str | None = None
    level: str | None = None
    category: str | None = None
    urgency: str | None = None
    depth: int | None = None


@dataclass
class Agg:
    n: int = 0
    value: int = 0
    flag: int = 0
    histogram: dict[int, int] = field(default_factory=dict)

    def add(self, bucket: int, n: int, value: int, flag: int) -> None:
        self.n += n
        self.value += value
        self.flag += flag
        if bucket != NO_BUCKET:
            self.histogram[bucket] = self.histogram.get(bucket, 0) + n

    @property
    def mean(self) -> float | None:
        return self.value / self.n if self.n else None

    @property
    def share(self) -> float | None:
        return self.flag / self.n if self.n else None

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile from the histogram, in the value's unit (ms)."""
        if self.n <= 0:
            return None
        rank = max(1, math.ceil(q * self.n))
        seen = 0
        for bucket in sorted(self.histogram):
            seen += self.histogram[bucket]
            if seen >= rank:
                return bucket_value(bucket)
        return None


GROUPS = {"level", "area", "category", "urgency", "depth", "week", "unit"}


def aggregate(
    cur: ViewCursor,
    facts_table: str,
    rollup_table: str,
    kind: str,
    filters: Filters,
    *,
    group_by: str | tuple[str, ...] | None = None,
    area_length: int = 9,
) -> dict[Any, Agg]:
    """Sum the facts of `kind` matching `filters`, per group (None: one group, key None).

    `group_by` names one column (keys are its values) or several (keys are tuples).
    """
    columns = (group_by,) if isinstance(group_by, str) else (group_by or ())
    for column in columns:
        if column not in GROUPS:
            raise ValueError(f"cannot group by {column!r}; use one of {sorted(GROUPS)}")
    f = filters
    since = f.since if f.since is not None else -FOREVER
    until = f.until if f.until is not None else FOREVER
    as_of = f.as_of if f.as_of is not None else FOREVER
    if as_of < FOREVER:
        until = min(until, as_of + 1e-6)  # nothing at or after T can be recorded by T
    if until <= since:
        return {}
    scope_ok = f.scope is None or f.scope.startswith("dept:") or len(f.scope) <= area_length
    use_rollup = scope_ok and "unit" not in columns
    dims, params = _dimension_filters(f)
    group_col = ", ".join("at_week" if c == "week" else c for c in columns) or "NULL"
    width = max(1, len(columns))
    group_by_sql = f"{group_col}, " if columns else ""  # PostgreSQL refuses GROUP BY NULL
    parts: list[tuple[str, list[Any]]] = []
    raw = f"SELECT {group_col}, bucket, n, value, flag FROM {facts_table} WHERE kind = ?"
    raw_dims, raw_params = _scope(f.scope, "unit")
    if not use_rollup:
        parts.append(
            (
                f"{raw} AND at >= ? AND at < ? AND recorded <= ?{dims}{raw_dims}",
                [kind, since, until, as_of, *params, *raw_params],
            )
        )
    else:
        w_lo = max(week_of(since) if week_start(week_of(since)) == since else week_of(since) + 1,
                   week_of(-FOREVER))  # fmt: skip
        w_hi = week_of(until) - 1 if until < FOREVER else week_of(FOREVER)
        w_as_of = week_of(as_of) if as_of < FOREVER else week_of(FOREVER) + 1
        roll_dims, roll_params = _scope(f.scope, "area")
        if w_lo > w_hi:  # no whole week inside the range: raw facts only
            parts.append(
                (
                    f"{raw} AND at >= ? AND at < ? AND recorded <= ?{dims}{raw_dims}",
                    [kind, since, until, as_of, *params, *raw_params],
                )
            )
        else:
            lo_edge, hi_edge = week_start(w_lo), week_start(w_hi + 1)
            parts.append(
                (
                    f"SELECT {group_col}, bucket, SUM(n), SUM(value), SUM(flag) FROM "
                    f"{rollup_table} WHERE kind = ? AND at_week >= ? AND at_week <= ? "
                    f"AND rec_week < ?{dims}{roll_dims} GROUP BY {group_by_sql}bucket",
                    [kind, w_lo, w_hi, w_as_of, *params, *roll_params],
                )
            )
            for lo, hi in ((since, lo_edge), (hi_edge, until)):
                if lo < hi:
                    parts.append(
                        (
                            f"{raw} AND at >= ? AND at < ? AND recorded <= ?{dims}{raw_dims}",
                            [kind, lo, hi, as_of, *params, *raw_params],
                        )
                    )
            if as_of < FOREVER:
                parts.append(
                    (
                        f"{raw} AND recorded >= ? AND recorded <= ? AND at >= ? AND at < ?"
                        f"{dims}{raw_dims}",
                        [kind, week_start(w_as_of), as_of, lo_edge, hi_edge, *params, *raw_params],
                    )
                )
    out: dict[Any, Agg] = {}
    for sql, args in parts:
        for row in cur.execute(sql, args).fetchall():
            group = tuple(row[:width]) if isinstance(group_by, tuple) else row[0]
            bucket, n, value, flag = row[width:]
            agg = out.setdefault(group, Agg())
            agg.add(int(bucket), int(n), int(value), int(flag))
    return {g: a for g, a in out.items() if a.n != 0 or a.flag != 0}


def _dimension_filters(f: Filters) -> tuple[str, list[Any]]:
    sql, params = "", []
    for column in ("level", "category", "urgency", "depth"):
        value = getattr(f, column)
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    return sql, params


def _scope(scope: str | None, column: str) -> tuple[str, list[Any]]:
    if scope is None:
        return "", []
    if scope.startswith("dept:"):
        return f" AND {column} = ?", [scope]
    # tree codes are digits and '-', so LIKE 'prefix%' is exact (a range ending in '~' is
    # not, under a PostgreSQL locale collation)
    return f" AND {column} LIKE ?", [scope + "%"]


def percentiles_ms(agg: Agg) -> dict[str, float | None]:
    return {name: agg.percentile(q) for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}


def summarise_durations(agg: Agg) -> dict[str, Any]:
    """Counts, the exact mean and the percentiles of a duration, in seconds."""

    def s(ms: float | None) -> float | None:
        return None if ms is None else round(ms / 1000, 3)

    return {
        "count": agg.n,
        "mean_s": s(agg.mean),
        **{k: s(v) for k, v in percentiles_ms(agg).items()},
        "on_time_share": agg.share,
    }


def group_key(group_by: str | None, key: Any) -> Any:
    from projections.fold import week_label

    if group_by == "week" and key is not None:
        return week_label(int(key))
    return key


class FactModel(FoldModel[S]):
    """A fold whose effects are facts: a JSON state per case, a facts table and its roll-up.

    Subclasses give `prefix` (their tables are `<prefix>_state`, `_facts`, `_rollup`),
    `decode` (a stored JSON state, an array, back to the state tuple), the `kinds` they
    answer, and `evolve`.
    """

    prefix: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]] = ()
    extra_tables: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        p = cls.prefix
        cls.tables = {
            f"{p}_state": JSON_STATE_DDL,
            f"{p}_facts": FACTS_DDL,
            f"{p}_rollup": ROLLUP_DDL,
            **cls.extra_tables,
        }
        cls.clustered = frozenset({f"{p}_rollup"})
        cls.indexes = fact_indexes(f"{p}_facts", f"{p}_rollup")

    def load_states(self, cur: ViewCursor, keys: Sequence[str]) -> dict[str, S]:
        return load_json_states(cur, self.t(f"{self.prefix}_state"), keys, self.decode)

    @staticmethod
    def decode(data: Any) -> Any:
        raise NotImplementedError

    def save_states(self, cur: ViewCursor, states: dict[str, S]) -> None:
        save_json_states(cur, self.t(f"{self.prefix}_state"), states)

    def write(self, cur: ViewCursor, effects: list[Any]) -> None:
        """Write the facts among `effects` (plain tuples; other effects are NamedTuples)."""
        write_facts(
            cur,
            self.t(f"{self.prefix}_facts"),
            self.t(f"{self.prefix}_rollup"),
            [e for e in effects if type(e) is tuple],
        )

    def query(
        self,
        cur: ViewCursor,
        kind: str,
        filters: Filters,
        group_by: str | tuple[str, ...] | None = None,
        *,
        area_length: int = 9,
    ) -> dict[Any, Agg]:
        if self.kinds and kind not in self.kinds:
            raise ValueError(f"unknown {self.base_name} kind {kind!r}; use one of {self.kinds}")
        return aggregate(
            cur,
            self.t(f"{self.prefix}_facts"),
            self.t(f"{self.prefix}_rollup"),
            kind,
            filters,
            group_by=group_by,
            area_length=area_length,
        )

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
category, urgency, depth), each row with its sums and the histogram of its durations
(a sparse JSON array of [bucket, count], merged by the view store's `lianhu_hist_add`:
one row per group, not one per bucket). A query sums the roll-up for the
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

import bisect
import dataclasses
import itertools
import logging
import math
import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from sys import intern
from typing import Any, ClassVar, Literal

import orjson

from engine.viewstore import ViewCursor, hist_counts, hist_text
from projections.fold import (
    FOREVER,
    JSON_STATE_DDL,
    WEEK,
    WEEK_ORIGIN,
    FoldModel,
    S,
    in_subtree,
    load_json_states,
    save_json_states,
    week_of,
    week_start,
    write_call,
)
from projections.pipeline import scratch

log = logging.getLogger(__name__)

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
    n BIGINT NOT NULL, value BIGINT NOT NULL, flag BIGINT NOT NULL, hist TEXT,
    PRIMARY KEY (kind, at_week, rec_week, area, level, category, urgency, depth))"""


MARGINAL_KEY = ("kind", "dim", "span", "val", "period", "rec_period")
MARGINALS_DDL = """CREATE TABLE IF NOT EXISTS {t} (
    kind TEXT NOT NULL, dim TEXT NOT NULL, span BIGINT NOT NULL, val TEXT NOT NULL,
    period BIGINT NOT NULL, rec_period BIGINT NOT NULL,
    n BIGINT NOT NULL, value BIGINT NOT NULL, flag BIGINT NOT NULL, hist TEXT,
    PRIMARY KEY (kind, dim, span, val, period, rec_period))"""
SPANS = (52, 13, 1)  # marginal periods in weeks, each a multiple of the next: years of 52
# weeks, quarters of 13, and weeks (always); all counted from the week origin
assert SPANS[-1] == 1 and all(a % b == 0 for a, b in itertools.pairwise(SPANS))
HEAT, HEAT_SPAN = "heat", 13  # the marginal rows packing a quarter's weekly counts (heat_sums)
# The span of the marginal rows of all time (period 0, recorded period 0), summed from the
# longest span's: what a live question without a time range reads, one row per value (the
# response times per unit: ~600 rows instead of ~1,200 of 52 weeks)
ALL_TIME = 0
NEVER = 1 << 62  # the week by which an all-time row is final: none
LEVELS = (*reversed(SPANS), ALL_TIME)  # marginal spans, each summed into the next
NEXT_LEVEL = dict(itertools.pairwise(LEVELS))


def fact_indexes(facts: str, rollup: str) -> tuple[str, ...]:
    return (
        f"CREATE INDEX IF NOT EXISTS {{{facts}}}_at ON {{{facts}}} (kind, at)",
        # facts recorded in a later week than the one they concern (cancellations): what an
        # as_of query adds from as_of's week; partial, so the other facts cost no upkeep
        f"CREATE INDEX IF NOT EXISTS {{{facts}}}_late ON {{{facts}}} (kind, recorded) "
        "WHERE at_week <> rec_week",
        f"DROP INDEX IF EXISTS {{{facts}}}_rec",  # all facts by recorded: views before _late
        f"CREATE INDEX IF NOT EXISTS {{{facts}}}_unit ON {{{facts}}} (kind, unit, at)",
    )  # the roll-up's primary key leads with (kind, at_week): it is the index its scans use


def marginal_indexes(marginals: str) -> tuple[str, ...]:
    # rows of facts recorded in a later period than the one they concern (cancellations):
    # what an as_of query adds for the periods before as_of's, found without a scan
    return (
        f"CREATE INDEX IF NOT EXISTS {{{marginals}}}_late ON {{{marginals}}} "
        "(kind, dim, span, val, rec_period, period) WHERE rec_period <> period",
    )


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
    """A fact about moment `t`, recorded at `t`. Its codes and names are interned: the
    facts of a batch then share one object per distinct value, which the message to the
    view writer (a pickle) holds once, not once per fact."""
    w = week_of(t)
    return (kind, case_id, t, t, w, w, intern(unit), intern(area), intern(level),
            intern(category), intern(urgency), depth, bucket, n, value, flag)  # fmt: skip


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


Sums = dict[tuple[Any, ...], list[Any]]
"""Roll-up rows being built: key → [n, value, flag, histogram (bucket → count) or None]."""


def rollup_sums(facts: Sequence[FactRow]) -> Sums:
    """The facts summed per weekly roll-up key (ROLLUP_KEY), each with its histogram."""
    return _sum_facts(facts, _ROLLUP_KEY_OF)


_ROLLUP_KEY_OF = operator.itemgetter(0, 4, 5, 7, 8, 9, 10, 11)  # a FactRow's ROLLUP_KEY


def _sum_facts(facts: Sequence[FactRow], key_of: Callable[[FactRow], Any]) -> Sums:
    """The facts summed per `key_of(fact)` (an itemgetter: no Python call per fact)."""
    sums: Sums = {}
    for r in facts:
        key = key_of(r)
        bucket, n = r[12], r[13]
        s = sums.get(key)
        if s is None:
            sums[key] = [n, r[14], r[15], None if bucket == NO_BUCKET else {bucket: n}]
            continue
        s[0] += n
        s[1] += r[14]
        s[2] += r[15]
        if bucket != NO_BUCKET:
            h = s[3]
            if h is None:
                s[3] = {bucket: n}
            else:
                h[bucket] = h.get(bucket, 0) + n
    return sums


def _add_sums(into: Sums, key: tuple[Any, ...], s: list[Any]) -> bool:
    """Add the sums `s` to `into[key]`; True if `key` was not there yet."""
    acc = into.get(key)
    if acc is None:
        into[key] = [s[0], s[1], s[2], None if s[3] is None else dict(s[3])]
        return True
    _merge(acc, s)
    return False


def _merge(acc: list[Any], s: Sequence[Any], *, copy: bool = True) -> None:
    """Add the sums `s` ([n, value, flag, histogram or None]) into `acc`; a histogram `acc`
    lacks is copied, or taken if `copy` is false (the caller gives `s` up)."""
    acc[0] += s[0]
    acc[1] += s[1]
    acc[2] += s[2]
    hist = s[3]
    if hist is not None:
        h = acc[3]
        if h is None:
            acc[3] = dict(hist) if copy else hist
        else:
            for bucket, n in hist.items():
                h[bucket] = h.get(bucket, 0) + n


def _upsert_sums(cur: ViewCursor, table: str, key: Sequence[str], sums: Sums) -> None:
    """Add `sums` to the roll-up `table` (histograms merged by the store's lianhu_hist_add)."""
    if not sums:
        return
    t = table
    cur.upsert_many(
        f"INSERT INTO {t} VALUES ({', '.join('?' * (len(key) + 4))}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
        f"n = {t}.n + excluded.n, value = {t}.value + excluded.value, "
        f"flag = {t}.flag + excluded.flag, hist = lianhu_hist_add({t}.hist, excluded.hist)",
        _rows_of(sums),
    )


def _insert_sums(cur: ViewCursor, table: str, key: Sequence[str], sums: Sums) -> None:
    """Write `sums` as new rows of the roll-up `table` (keys it does not hold yet)."""
    if sums:
        marks = ", ".join("?" * (len(key) + 4))
        cur.executemany(f"INSERT INTO {table} VALUES ({marks})", _rows_of(sums))


def _rows_of(sums: Sums) -> list[tuple[Any, ...]]:
    return [(*k, n, v, f, None if h is None else hist_text(h)) for k, (n, v, f, h) in sorted(
        sums.items())]  # fmt: skip


def _weekly_final(key: tuple[Any, ...]) -> int:
    """The week by whose start a weekly roll-up row (ROLLUP_KEY) has every fact it will
    ever have (facts come in recorded order): the week after its recorded week."""
    return int(key[2]) + 1


def _marginal_final(key: tuple[Any, ...]) -> int:
    """The same for a marginal roll-up row (MARGINAL_KEY): the week after its recorded
    period (of `span` weeks); NEVER for an all-time row (written when a writer ends)."""
    return int((key[5] + 1) * key[2]) if key[2] != ALL_TIME else NEVER


class HeldRollups:
    """The roll-up rows of one facts table, held back by the view writer of a catch-up until
    no more facts can come for them, then written once.

    Written batch by batch, a catch-up from position 0 (a rebuild, new views) rewrites a
    row with every batch that adds to it: at 10^6 events a weekly row about twice, a
    quarter's or a year's marginal row with every batch of its period (1,147,000 rows
    written for 405,000 rows kept), each rewrite merging its histogram. Facts come in
    recorded order (the log's), so once a batch brings facts recorded in week L, no fact
    recorded before week L - KEEP is to be expected: the rows that can hold only such facts
    are written then (plain inserts), and that week goes into `lianhu_sealed`, in the
    batch's transaction. Queries read the roll-ups for what was recorded before it and the
    facts for the rest (`sealed_cut`): at every position the views answer what they would
    with every row written. A fact recorded before that week all the same (a clock set
    back) is merged into its row in the tables as usual if that row was written.

    When the writer ends it writes what it holds and deletes its week (`flush`); a writer
    stopped before leaves the week, and the next write of these tables sums those rows
    again from the facts (`release_held`). Only committed batches are held: the writer
    forgets this memory when a batch fails (projections.pipeline.scratch).
    """

    KEEP = 1  # recorded weeks held before the latest one seen

    def __init__(
        self, facts: str, rollup: str, marginals: str, dims: Sequence[str],
        heat_kinds: Collection[str] = (),
    ) -> None:  # fmt: skip
        self.facts, self.rollup, self.marginals = facts, rollup, marginals
        # the marginal dimensions in the weekly roll-up's key are summed from its rows once
        # they are whole (`weekly_marginal_sums`), the others from each batch's facts
        self.weekly_dims = [d for d in dims if d in WEEKLY_COLUMNS]
        self.fact_dims = [d for d in dims if d not in WEEKLY_COLUMNS]
        self.heat_kinds = heat_kinds
        # the week a row is final by -> key -> sums: weekly rows, and marginal rows by span;
        # a marginal row is summed into the next longer span's once it is whole (or at once
        # for what is merged into a row already written), never batch by batch
        self.weekly: dict[int, Sums] = {}
        self.spans: dict[int, dict[int, Sums]] = {span: {} for span in LEVELS}
        self.sealed: int | None = None  # rows final by this week are in the tables

    def write(self, cur: ViewCursor, facts: Sequence[FactRow]) -> None:
        """Add a batch's facts (inserted by the caller) to the roll-ups, and write the rows
        no later fact can add to."""
        if self.fact_dims:
            self._add_marginal(cur, 1, weekly_sums(facts, self.fact_dims, overall=False))
        written = self._hold(self.weekly, rollup_sums(facts), _weekly_final)
        if written:  # merged into rows written before: their marginal rows too
            _upsert_sums(cur, self.rollup, ROLLUP_KEY, written)
            self._weekly_whole(cur, written)
        self.seal(cur, max(map(operator.itemgetter(REC_WEEK), facts)))

    def _weekly_whole(self, cur: ViewCursor, weekly: Sums) -> None:
        """Add the marginal (and heat-map) rows of whole weekly rows."""
        self._add_marginal(cur, 1, weekly_marginal_sums(weekly, self.weekly_dims))
        if self.heat_kinds:  # (span HEAT_SPAN, summed into no longer span)
            self._add_marginal(cur, HEAT_SPAN, heat_sums(weekly, self.heat_kinds))

    def _add_marginal(self, cur: ViewCursor, span: int, sums: Sums) -> None:
        """Hold marginal sums of `span`; those merged into rows already written are written
        and summed into the next longer span at once."""
        written = self._hold(self.spans[span], sums, _marginal_final)
        if written:
            _upsert_sums(cur, self.marginals, MARGINAL_KEY, written)
            self._lengthen(cur, span, written)

    def _lengthen(self, cur: ViewCursor, span: int, sums: Sums) -> None:
        """Sum marginal sums of `span` into the next longer span (the heat map's rows stay)."""
        longer = NEXT_LEVEL.get(span)
        if longer is not None:
            sums = {k: s for k, s in sums.items() if k[1] != HEAT} if span == HEAT_SPAN else sums
            self._add_marginal(cur, longer, _coarser(sums, span, longer))

    def _hold(
        self, held: dict[int, Sums], sums: Sums, final_of: Callable[[tuple[Any, ...]], int]
    ) -> Sums:
        """Hold `sums` (taken, not copied: the caller's are its own) in `held`, by the week
        each row is final by; returns the sums of rows already written, to merge into them."""
        sealed = self.sealed if self.sealed is not None else -NEVER
        written: Sums = {}
        for k, s in sums.items():
            final = final_of(k)
            if final <= sealed:
                written[k] = s
                continue
            rows = held.get(final)
            if rows is None:
                held[final] = {k: s}
            elif (acc := rows.get(k)) is None:
                rows[k] = s
            else:
                _merge(acc, s, copy=False)
        return written

    def seal(self, cur: ViewCursor, latest: int) -> None:
        """Write the rows no fact recorded from week `latest` - KEEP on can add to."""
        week = latest - self.KEEP
        if self.sealed is not None and week <= self.sealed:
            return
        self._release(cur, week)
        self.sealed = week
        cur.execute(
            "INSERT INTO lianhu_sealed (facts, week) VALUES (?, ?) "
            "ON CONFLICT (facts) DO UPDATE SET week = excluded.week",
            (self.facts, week),
        )

    def _release(self, cur: ViewCursor, week: int) -> None:
        """Write the rows final by `week`: weekly rows, then marginal rows span by span, the
        shorter ones summed into the longer before those are written."""
        done = _pop_final(self.weekly, week)
        _insert_sums(cur, self.rollup, ROLLUP_KEY, done)
        self._weekly_whole(cur, done)
        for span in LEVELS:
            done = _pop_final(self.spans[span], week)
            _insert_sums(cur, self.marginals, MARGINAL_KEY, done)
            self._lengthen(cur, span, done)

    def flush(self, cur: ViewCursor) -> None:
        """Write every row held and delete the week: the roll-ups are whole."""
        self._release(cur, NEVER)
        _unseal(cur, self.facts)
        self.sealed = None


def _pop_final(held: dict[int, Sums], week: int) -> Sums:
    """The rows of `held` final by `week`, taken out of it."""
    done: Sums = {}
    for final in [f for f in held if f <= week]:
        done.update(held.pop(final))
    return done


def _held(
    cur: ViewCursor, facts: str, rollup: str, marginals: str, dims: Sequence[str],
    heat_kinds: Collection[str],
) -> HeldRollups | None:  # fmt: skip
    """The writer process's held rows of `facts`' roll-ups: None outside a writer process,
    or if the tables had rows before its first batch (only a catch-up into empty tables
    holds rows back: the rows it writes are new)."""
    memory = scratch()
    if memory is None:
        return None
    name = f"held:{facts}"
    if name not in memory:
        empty = all(
            cur.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() is None
            for t in (facts, rollup, marginals)
        )
        fresh = empty and sealed_week(cur, facts) is None
        memory[name] = HeldRollups(facts, rollup, marginals, dims, heat_kinds) if fresh else None
    held: HeldRollups | None = memory[name]
    return held


def sealed_week(cur: ViewCursor, facts: str) -> int | None:
    """The week from which the roll-ups of `facts` lack what a writer held back (None: they
    are whole)."""
    row = cur.execute("SELECT week FROM lianhu_sealed WHERE facts = ?", (facts,)).fetchone()
    return None if row is None else int(row[0])


def _unseal(cur: ViewCursor, facts: str) -> None:
    """The roll-ups of `facts` are whole again (or gone with their tables)."""
    cur.execute("DELETE FROM lianhu_sealed WHERE facts = ?", (facts,))


def sealed_cut(cur: ViewCursor, facts: str) -> float:
    """The moment up to which (exclusive) the roll-ups of `facts` hold what was recorded:
    FOREVER, or the start of the week a catch-up's writer holds rows back from."""
    week = sealed_week(cur, facts)
    return FOREVER if week is None else week_start(week)


def release_held(
    cur: ViewCursor, facts: str, rollup: str, marginals: str, dims: Sequence[str],
    heat_kinds: Collection[str] = (),
) -> None:  # fmt: skip
    """Write the roll-up rows a writer held back and did not write (it was stopped before
    the end of its catch-up), summed again from the facts: every row final after the
    sealed week, from the facts recorded in the periods those rows cover (the longest
    span's period holding that week and after), a quarter of weeks at a time."""
    week = sealed_week(cur, facts)
    if week is None:
        return
    log.info("%s: writing the roll-up rows an interrupted catch-up held back", facts)
    found = cur.execute(f"SELECT MAX(rec_week) FROM {facts}").fetchone()
    top = week if found is None or found[0] is None else int(found[0])
    for lo in range(week // SPANS[0] * SPANS[0], top + 1, HEAT_SPAN):
        rows = cur.execute(
            f"SELECT * FROM {facts} WHERE rec_week >= ? AND rec_week < ?", (lo, lo + HEAT_SPAN)
        ).fetchall()
        weekly = rollup_sums(rows)
        marginal = marginal_sums(rows, dims)
        marginal.update(heat_sums(weekly, heat_kinds))
        _upsert_sums(
            cur, rollup, ROLLUP_KEY, {k: s for k, s in weekly.items() if _weekly_final(k) > week}
        )
        marginal = {k: s for k, s in marginal.items() if k[2] != ALL_TIME}  # (from all facts)
        _upsert_sums(
            cur,
            marginals,
            MARGINAL_KEY,
            {k: s for k, s in marginal.items() if _marginal_final(k) > week},
        )
    # the all-time rows, from every fact: summed again from the (now whole) longest span's
    cur.execute(f"DELETE FROM {marginals} WHERE span = ?", (ALL_TIME,))
    _sum_span(cur, marginals, ALL_TIME, SPANS[0])
    _unseal(cur, facts)


def write_facts(cur: ViewCursor, facts_table: str, rollup_table: str, facts: list[FactRow]) -> Sums:
    """Insert the facts and add them to the weekly roll-up; returns the roll-up's sums."""
    if not facts:
        return {}
    cur.executemany(f"INSERT INTO {facts_table} VALUES ({', '.join('?' * 16)})", facts)
    sums = rollup_sums(facts)
    _upsert_sums(cur, rollup_table, ROLLUP_KEY, sums)
    return sums


MARGINAL_COLUMNS = {"area": AREA, "level": LEVEL, "category": CATEGORY, "urgency": URGENCY,
                    "depth": DEPTH, "unit": UNIT}  # fmt: skip
"""Each marginal dimension's column in a FactRow."""
LATER_DIMS = ("unit",)
"""Marginal dimensions a model took on after views were made with its roll-ups: views
without their rows get them refilled when a follower starts (FactModel.create)."""


def marginal_sums(facts: Sequence[FactRow], dims: Sequence[str], *, overall: bool = True) -> Sums:
    """The facts summed per (kind, one dimension's value, span of weeks, period, recorded
    period) for each dimension of `dims` (and, if `overall`, for none: dim ""), for each
    span of SPANS and all time: weeks straight from the facts (`weekly_sums`), longer
    spans from the weeks."""
    weeks = weekly_sums(facts, dims, overall=overall)
    return _spans(weeks) if weeks else {}


def weekly_sums(facts: Sequence[FactRow], dims: Sequence[str], *, overall: bool = True) -> Sums:
    """The weekly (span 1) marginal sums of `marginal_sums`: one pass over the facts keyed by
    an itemgetter per dimension. From the facts rather than from their weekly roll-up
    batch by batch: that hardly compresses a batch (161,000 rows for 331,000 facts at 200k
    events), and re-keying it per dimension merged a histogram per row and dimension (the
    writer's replay of a 200k catch-up, three alternating pairs: 9.0-9.8 -> 8.2-9.4 s)."""
    weeks: Sums = {}
    if overall:
        by = _sum_facts(facts, operator.itemgetter(KIND, AT_WEEK, REC_WEEK))
        weeks.update({(kind, "", 1, "", w, rw): s for (kind, w, rw), s in by.items()})
    for d in dims:
        by = _sum_facts(facts, operator.itemgetter(KIND, MARGINAL_COLUMNS[d], AT_WEEK, REC_WEEK))
        weeks.update({(kind, d, 1, str(v), w, rw): s for (kind, v, w, rw), s in by.items()})
    return weeks


WEEKLY_COLUMNS = {"area": 3, "level": 4, "category": 5, "urgency": 6, "depth": 7}
"""The marginal dimensions in the weekly roll-up's key (ROLLUP_KEY), and where."""


def weekly_marginal_sums(weekly: Sums, dims: Sequence[str]) -> Sums:
    """The weekly (span 1) marginal sums, overall and for `dims` among WEEKLY_COLUMNS, of
    weekly roll-up rows: what `weekly_sums` makes of their facts. From whole rows
    (HeldRollups) this reads a fifth as many rows as there are facts, once each (10^6
    events: 290,000 rows for 1,656,000 facts)."""
    weeks: Sums = {}
    get = weeks.get
    columns = [(d, WEEKLY_COLUMNS[d]) for d in dims]
    for k, s in weekly.items():
        kind, w, rw = k[0], k[1], k[2]
        n, value, flag, hist = s
        for key in ((kind, "", 1, "", w, rw),
                    *[(kind, d, 1, str(k[c]), w, rw) for d, c in columns]):  # fmt: skip
            acc = get(key)
            if acc is None:
                weeks[key] = [n, value, flag, None if hist is None else dict(hist)]
            else:
                _merge(acc, s)
    return weeks


def _spans(weeks: Sums) -> Sums:
    """Weekly marginal sums (span 1) with their sums over every longer span (LEVELS: SPANS
    and all time), each summed from the next shorter one's."""
    sums = dict(weeks)
    finer, span = weeks, 1
    while (longer := NEXT_LEVEL.get(span)) is not None:
        finer, span = _coarser(finer, span, longer), longer
        sums.update(finer)
    return sums


def _coarser(finer: Sums, shorter: int, longer: int) -> Sums:
    """Marginal sums of periods of `shorter` weeks summed into the `longer` periods they
    lie in (periods nest: SPANS are multiples of each other, counted from the week origin),
    or into all time (`longer` ALL_TIME: period 0, recorded period 0)."""
    out: Sums = {}
    if longer == ALL_TIME:
        for (kind, dim, _, val, _, _), s in finer.items():
            _add_sums(out, (kind, dim, ALL_TIME, val, 0, 0), s)
        return out
    k = longer // shorter
    for (kind, dim, _, val, period, rec_period), s in finer.items():
        _add_sums(out, (kind, dim, longer, val, period // k, rec_period // k), s)
    return out


def _sum_span(cur: ViewCursor, marginals: str, longer: int, shorter: int) -> None:
    """Sum the marginal rows of `shorter` periods into the `longer` ones they lie in (views
    made before the model kept those; a writer's all-time rows it held and lost): the rows
    a fresh fold writes, read from ~100,000 quarter rows at 10^6 events."""
    rows = cur.execute(
        f"SELECT kind, dim, val, period, rec_period, n, value, flag, hist FROM {marginals} "
        "WHERE span = ? AND dim <> ?",
        (shorter, HEAT),
    ).fetchall()
    finer: Sums = {
        (kind, dim, shorter, val, int(period), int(rec_period)):
            [n, value, flag, None if hist is None else dict(hist_counts(hist))]
        for kind, dim, val, period, rec_period, n, value, flag, hist in rows
    }  # fmt: skip
    _upsert_sums(cur, marginals, MARGINAL_KEY, _coarser(finer, shorter, longer))


def heat_sums(weekly: Sums, kinds: Collection[str]) -> Sums:
    """For the facts of `kinds`, their counts per area and category packed by quarter (of
    the week they concern): one marginal row (dim HEAT, span HEAT_SPAN, val "area<TAB>
    category") whose histogram maps each week to its count. A heat map of a county-year
    reads ~1,600 of them instead of ~16,500 weekly roll-up rows (`heat_rows`)."""
    out: Sums = {}
    for k, s in weekly.items():
        kind, at_week, rec_week = k[0], k[1], k[2]
        if kind not in kinds:
            continue
        n = s[0]
        key = (kind, HEAT, HEAT_SPAN, f"{k[3]}\t{k[5]}", at_week // HEAT_SPAN,
               rec_week // HEAT_SPAN)  # fmt: skip
        acc = out.get(key)
        if acc is None:
            out[key] = [n, 0, 0, {at_week: n}]
        else:
            acc[0] += n
            h = acc[3]
            h[at_week] = h.get(at_week, 0) + n
    return out


def write_marginals(
    cur: ViewCursor, table: str, facts: Sequence[FactRow], dims: Sequence[str],
    weekly: Sums | None = None, heat_kinds: Collection[str] = (),
) -> None:  # fmt: skip
    """Add facts to the marginal roll-up (pass `weekly`, their `rollup_sums`, if known),
    and those of `heat_kinds` to its packed heat-map rows."""
    if not facts:
        return
    sums = marginal_sums(facts, dims)
    if heat_kinds:  # keys of their own (dim HEAT)
        sums.update(heat_sums(weekly or rollup_sums(facts), heat_kinds))
    _upsert_sums(cur, table, MARGINAL_KEY, sums)


def write_fact_tables(
    cur: ViewCursor, facts_table: str, rollup: str, marginals: str, dims: Sequence[str],
    facts: list[FactRow], heat_kinds: Collection[str] = (),
) -> None:  # fmt: skip
    """Insert facts and add them to the weekly and the marginal roll-up (held back by the
    writer of a catch-up into empty tables: HeldRollups)."""
    held = _held(cur, facts_table, rollup, marginals, dims, heat_kinds)
    if held is None:
        release_held(cur, facts_table, rollup, marginals, dims, heat_kinds)
        weekly = write_facts(cur, facts_table, rollup, facts)
        write_marginals(cur, marginals, facts, dims, weekly, heat_kinds)
        return
    if not facts:
        return
    cur.executemany(f"INSERT INTO {facts_table} VALUES ({', '.join('?' * 16)})", facts)
    held.write(cur, facts)


def table_exists(cur: ViewCursor, table: str) -> bool:
    if cur.dialect == "sqlite":
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        sql = "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
        sql += "AND table_name = ?"
    return cur.execute(sql, (table,)).fetchone() is not None


def has_column(cur: ViewCursor, table: str, column: str) -> bool:
    if cur.dialect == "sqlite":
        return any(r[1] == column for r in cur.execute(f"PRAGMA table_info({table})").fetchall())
    sql = "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
    sql += "AND table_name = ? AND column_name = ?"
    return cur.execute(sql, (table, column)).fetchone() is not None


def facts_by_quarter(cur: ViewCursor, facts_table: str) -> Iterator[list[FactRow]]:
    """Every fact of `facts_table`, 13 weeks (of the moment concerned) at a time: what a
    refill of the roll-ups reads, without holding 10^6 facts at once."""
    lo, hi = cur.execute(f"SELECT MIN(at_week), MAX(at_week) FROM {facts_table}").fetchone() or (
        None,
        None,
    )
    if lo is None or hi is None:
        return
    for week in range(int(lo), int(hi) + 1, 13):
        yield cur.execute(
            f"SELECT * FROM {facts_table} WHERE at_week >= ? AND at_week < ?", (week, week + 13)
        ).fetchall()


def backfill_rollups(
    cur: ViewCursor,
    facts_table: str,
    rollup: str | None,
    marginals: str | None,
    dims: Sequence[str],
    heat_kinds: Collection[str] = (),
) -> None:
    """Add every fact of `facts_table` to the (new, empty) roll-ups, a quarter at a time,
    so views made before a roll-up's present layout answer the same as rebuilt ones (the
    marginal roll-up with the packed heat-map rows of `heat_kinds`)."""
    if not table_exists(cur, facts_table):
        return
    for rows in facts_by_quarter(cur, facts_table):
        sums = rollup_sums(rows)
        if rollup is not None:
            _upsert_sums(cur, rollup, ROLLUP_KEY, sums)
        if marginals is not None:
            marginal = marginal_sums(rows, dims)
            marginal.update(heat_sums(sums, heat_kinds))
            _upsert_sums(cur, marginals, MARGINAL_KEY, marginal)


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


class Agg:
    """Sums of facts: count, value, flag, and the histogram of the values' buckets. A plain
    class with slots: a report makes one per group, thousands for a heat map.

    A roll-up row's histogram arrives as [bucket, count] pairs; `pending` keeps them as
    parsed, unmerged, until `histogram` is read (merged then) or `percentiles` sorts them
    with the merged ones: a county-year's response times per unit bring ~78,000 pairs for
    ~600 groups, and merging them pair by pair into dicts was most of that report's time.
    Only pairs of counts >= 0 wait (`add_pairs`); a row with a "-" in its text (a
    cancellation) is merged at once."""

    __slots__ = ("_histogram", "flag", "n", "pending", "value")

    def __init__(
        self, n: int = 0, value: int = 0, flag: int = 0, histogram: dict[int, int] | None = None
    ) -> None:
        self.n, self.value, self.flag = n, value, flag
        self._histogram: dict[int, int] = {} if histogram is None else histogram
        self.pending: list[Sequence[int]] = []  # [bucket, count >= 0] not yet in _histogram

    @property
    def histogram(self) -> dict[int, int]:
        """Bucket → count, the pending pairs merged in."""
        h = self._histogram
        if self.pending:
            for b, c in self.pending:
                h[b] = h.get(b, 0) + c
            self.pending = []
        return h

    def __repr__(self) -> str:
        return f"Agg(n={self.n}, value={self.value}, flag={self.flag}, {self.histogram})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Agg):
            return NotImplemented
        return (self.n, self.value, self.flag, self.histogram) == (
            other.n, other.value, other.flag, other.histogram
        )  # fmt: skip

    def add(self, bucket: int, n: int, value: int, flag: int, hist: str | None = None) -> None:
        """Add a fact (its `bucket`), or a roll-up row (`hist`: its histogram, as stored)."""
        self.n += n
        self.value += value
        self.flag += flag
        if bucket != NO_BUCKET:
            h = self._histogram
            h[bucket] = h.get(bucket, 0) + n
        if hist is not None:
            self.add_pairs(hist, hist_counts(hist))

    def add_pairs(self, text: str, pairs: Iterable[Sequence[int]]) -> None:
        """Add a stored histogram: `pairs`, parsed from `text`."""
        if "-" not in text:  # no negative count: they can wait
            self.pending += pairs
            return
        h = self._histogram
        for b, c in pairs:
            h[b] = h.get(b, 0) + c

    @property
    def mean(self) -> float | None:
        return self.value / self.n if self.n else None

    @property
    def share(self) -> float | None:
        return self.flag / self.n if self.n else None

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile from the histogram, in the value's unit (ms)."""
        return self.percentiles((q,))[0]

    def percentiles(self, qs: Sequence[float]) -> list[float | None]:
        """Nearest-rank percentiles, one sort for all of `qs` (a report per unit asks three
        of each of ~600 groups). The pending pairs are sorted with the merged buckets, not
        merged, when no merged count is negative either: the running totals then rise
        through each bucket's pairs, and the first to reach a rank is in the bucket that
        holds it. A cancellation (a negative count) could make them dip, so then the pairs
        are merged first."""
        if self.n <= 0:
            return [None] * len(qs)
        count = operator.itemgetter(1)
        pairs: list[Any] = self.pending
        if pairs and min(self._histogram.values(), default=0) >= 0:
            pairs = sorted([*pairs, *self._histogram.items()], key=operator.itemgetter(0))
        else:
            pairs = sorted(self.histogram.items())
        seen = list(itertools.accumulate(map(count, pairs)))  # totals are never < 0
        out: list[float | None] = []
        for q in qs:
            i = bisect.bisect_left(seen, max(1, math.ceil(q * self.n)))
            out.append(bucket_value(pairs[i][0]) if i < len(pairs) else None)
        return out


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
    marginals_table: str | None = None,
    marginal_dims: Sequence[str] = (),
) -> dict[Any, Agg]:
    """Sum the facts of `kind` matching `filters`, per group (None: one group, key None).

    `group_by` names one column (keys are its values) or several (keys are tuples).
    A question about at most one dimension (filtered, scoped or grouped by) is answered
    from the marginal roll-up, if the model keeps one; others from the weekly roll-up.
    """
    columns = _columns(group_by)
    span = _span(filters)
    if span is None:
        return {}
    since, until, as_of = span
    f = filters
    # per unit: from the marginal roll-up if it keeps units (for any scope: a unit's code
    # says its subtree), else from the facts
    units = "unit" in columns
    kept = _in_roll_up(f, area_length) if not units else "unit" in marginal_dims
    if marginals_table is not None and kept:
        dim = _one_dimension(f, columns, marginal_dims)
        if dim is not False:
            return _from_marginals(
                cur, facts_table, marginals_table, kind, f, columns, dim, area_length,
                since, until, as_of,
            )  # fmt: skip
    parts = _weekly_parts(
        cur, facts_table, rollup_table, kind, f, columns, area_length, span,
        ("bucket, n, value, flag, NULL", f"{NO_BUCKET}, n, value, flag, hist"),
    )  # fmt: skip
    return _summed(cur, parts, max(1, len(columns)), isinstance(group_by, tuple))


def count(
    cur: ViewCursor,
    facts_table: str,
    rollup_table: str,
    kind: str,
    filters: Filters,
    group_by: tuple[str, ...],
    *,
    area_length: int = 9,
) -> dict[tuple[Any, ...], int]:
    """The facts of `kind` matching `filters` counted (their `n` summed) per group of the
    `group_by` columns, read as `aggregate` reads the weekly roll-up and the facts at its
    edges, but without values, flags or histograms; groups counting 0 left out. What the
    heat map needs: ~16,500 groups for a county-year, where summing `Agg`s, each cell a
    dict, took ~90 ms."""
    columns = _columns(group_by)
    span = _span(filters)
    if span is None:
        return {}
    parts = _weekly_parts(
        cur, facts_table, rollup_table, kind, filters, columns, area_length, span, ("n", "n")
    )
    width = len(columns)
    out: dict[tuple[Any, ...], int] = {}
    get = out.get
    for sql, args in parts:
        for row in cur.execute(sql, args).fetchall():
            key = row[:width]
            out[key] = get(key, 0) + row[width]
    return {key: n for key, n in out.items() if n}


HEAT_GROUPS = ("area", "category", "week")


HeatRows = dict[tuple[str, str], dict[int, int]]
"""(area, category) → week → count: a heat map's rows."""


def heat_rows(
    cur: ViewCursor,
    facts_table: str,
    rollup_table: str,
    marginals_table: str,
    kind: str,
    filters: Filters,
    *,
    area_length: int = 9,
) -> HeatRows:
    """The facts of `kind` counted per area, category and week, as the heat map's rows,
    for a kind the marginal roll-up packs (`heat_sums`): the whole weeks of the range from
    the packed rows, its edges from the facts. Only for the live view (no as_of: the
    packed rows hold each week as recorded so far) and a scope no narrower than an area,
    without level, urgency or depth; any other question is counted as `count` does. Rows
    and weeks counting 0 are left out."""
    f = filters
    span = _span(f)
    plain = (
        f.as_of is not None or not _in_roll_up(f, area_length) or (f.scope or "").startswith(
            "dept:") or any(v is not None for v in (f.level, f.urgency, f.depth))
        or sealed_cut(cur, facts_table) < FOREVER  # rows held back by a catch-up's writer
    )  # fmt: skip
    out: HeatRows = {}
    if span is None:
        return out
    since, until, _ = span
    w_lo, w_hi = _whole_weeks(since, until, FOREVER)
    packed = f"SELECT 1 FROM {marginals_table} WHERE kind = ? AND dim = ? LIMIT 1"
    # no whole week; or views made before the packed rows, until a follower starts
    if plain or w_lo > w_hi or cur.execute(packed, [kind, HEAT]).fetchone() is None:
        w_lo, w_hi = 0, -1
        edges = [f]
    else:
        val_where, val_params = in_subtree("val", f.scope, cur.dialect)
        for val, hist in cur.execute(
            f"SELECT val, hist FROM {marginals_table} WHERE kind = ? AND dim = ? AND span = ? "
            f"AND period >= ? AND period <= ?{val_where}",
            [kind, HEAT, HEAT_SPAN, w_lo // HEAT_SPAN, w_hi // HEAT_SPAN, *val_params],
        ).fetchall():
            area, category = val.split("\t")
            if (f.category is not None and category != f.category) or hist is None:
                continue
            row = out.setdefault((area, category), {})
            for week, n in orjson.loads(hist):  # [[week, count], ...]
                if w_lo <= week <= w_hi:
                    row[week] = row.get(week, 0) + n
        edges = [
            dataclasses.replace(f, since=lo, until=hi)
            for lo, hi in ((since, week_start(w_lo)), (week_start(w_hi + 1), until))
            if lo < hi
        ]
    for edge in edges:
        counted = count(
            cur, facts_table, rollup_table, kind, edge, HEAT_GROUPS, area_length=area_length
        )
        for (area, category, week), n in counted.items():
            row = out.setdefault((area, category), {})
            row[week] = row.get(week, 0) + n
    return {k: kept for k, row in out.items() if (kept := {w: n for w, n in row.items() if n})}


def _whole_weeks(since: float, until: float, as_of: float) -> tuple[int, int]:
    """The first and the last week wholly inside [since, until) and recorded before as_of's
    week (the first is past the last if there is none)."""
    w_lo = max(week_of(since) if week_start(week_of(since)) == since else week_of(since) + 1,
               week_of(-FOREVER))  # fmt: skip
    w_hi = week_of(until) - 1 if until < FOREVER else week_of(FOREVER)
    w_as_of = week_of(as_of) if as_of < FOREVER else week_of(FOREVER) + 1
    return w_lo, min(w_hi, w_as_of - 1)  # as_of's week is never whole before as_of


def _columns(group_by: str | tuple[str, ...] | None) -> tuple[str, ...]:
    columns = (group_by,) if isinstance(group_by, str) else (group_by or ())
    for column in columns:
        if column not in GROUPS:
            raise ValueError(f"cannot group by {column!r}; use one of {sorted(GROUPS)}")
    return columns


def _in_roll_up(f: Filters, area_length: int) -> bool:
    """Whether the roll-ups' areas (codes of `area_length`, or departments) can answer for
    the scope: no scope, a department, or a scope as wide as an area or wider."""
    return f.scope is None or f.scope.startswith("dept:") or len(f.scope) <= area_length


def _span(f: Filters) -> tuple[float, float, float] | None:
    """(since, until, as_of) with open ends as ±FOREVER; None if nothing can match."""
    since = f.since if f.since is not None else -FOREVER
    until = f.until if f.until is not None else FOREVER
    as_of = f.as_of if f.as_of is not None else FOREVER
    if as_of < FOREVER:
        until = min(until, as_of + 1e-6)  # nothing at or after T can be recorded by T
    return None if until <= since else (since, until, as_of)


def _weekly_parts(
    cur: ViewCursor,
    facts_table: str,
    rollup_table: str,
    kind: str,
    f: Filters,
    columns: tuple[str, ...],
    area_length: int,
    span: tuple[float, float, float],
    values: tuple[str, str],
) -> list[tuple[str, list[Any]]]:
    """The statements (and parameters) that read a question from the weekly roll-up (whole
    weeks) and the facts (the range's edges, facts recorded late, or all of them for a
    scope narrower than the roll-up's areas). Each selects the group columns, then
    `values`: the expressions read from the facts and from the roll-up."""
    since, until, as_of = span
    cut = min(as_of, sealed_cut(cur, facts_table))  # the roll-up holds what was recorded before
    raw_values, rollup_values = values
    scope_ok = _in_roll_up(f, area_length)
    use_rollup = scope_ok and "unit" not in columns
    dims, params = _dimension_filters(f)
    group_col = ", ".join("at_week" if c == "week" else c for c in columns) or "NULL"
    parts: list[tuple[str, list[Any]]] = []
    raw = f"SELECT {group_col}, {raw_values} FROM {facts_table} WHERE kind = ?"
    # the unit index for a narrower scope; a wider one reads the roll-ups, and the facts at
    # their edges by time
    raw_dims, raw_params = in_subtree("unit", f.scope, cur.dialect, indexed=not scope_ok)
    if not use_rollup:
        parts.append(
            (
                f"{raw} AND at >= ? AND at < ? AND recorded <= ?{dims}{raw_dims}",
                [kind, since, until, as_of, *params, *raw_params],
            )
        )
    else:
        w_lo, w_hi = _whole_weeks(since, until, cut)
        w_cut = week_of(cut) if cut < FOREVER else week_of(FOREVER) + 1
        roll_dims, roll_params = in_subtree("area", f.scope, cur.dialect, indexed=False)
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
                    f"SELECT {group_col}, {rollup_values} FROM "
                    f"{rollup_table} WHERE kind = ? AND at_week >= ? AND at_week <= ? "
                    f"AND rec_week < ?{dims}{roll_dims}",
                    [kind, w_lo, w_hi, w_cut, *params, *roll_params],
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
            if cut < FOREVER:  # facts of the whole weeks recorded from cut's week on
                parts.append(
                    (
                        f"{raw} AND recorded >= ? AND recorded <= ? AND +at >= ? AND at < ?"
                        " AND at_week <> rec_week"
                        f"{dims}{raw_dims}",
                        [kind, week_start(w_cut), as_of, lo_edge, hi_edge, *params, *raw_params],
                    )
                )
    return parts


def _summed(
    cur: ViewCursor,
    parts: list[tuple[str, list[Any]]],
    width: int,
    tuples: bool,
    *,
    int_keys: bool = False,
) -> dict[Any, Agg]:
    """The rows of `parts` (`width` group columns, then bucket, n, value, flag and a roll-up
    row's histogram) summed per group (a tuple of the group columns if `tuples`; an int if
    `int_keys`), groups that sum to nothing left out. Inline rather than through `Agg.add`:
    a township's heat map over a year sums ~3,800 rows into ~3,000 groups (fastest of 150
    runs at 10^6 events: 23 → 20 ms)."""
    out: dict[Any, Agg] = {}
    get, loads = out.get, orjson.loads
    for sql, args in parts:
        for row in cur.execute(sql, args).fetchall():
            group: Any = row[:width] if tuples else row[0]
            if int_keys and group is not None:
                group = int(group)
            bucket, n, value, flag, hist = row[width:]
            agg = get(group)
            if agg is None:
                agg = out[group] = Agg(n, value, flag)
            else:
                agg.n += n
                agg.value += value
                agg.flag += flag
            if bucket != NO_BUCKET:
                h = agg._histogram
                h[bucket] = h.get(bucket, 0) + n
            if hist is not None:  # [[bucket, count], ...] of integers (hist_text)
                agg.add_pairs(hist, loads(hist))
    return {g: a for g, a in out.items() if a.n != 0 or a.flag != 0}


def _one_dimension(
    f: Filters, columns: Sequence[str], dims: Sequence[str]
) -> str | Literal[False] | None:
    """The one dimension a question is about (None: none), or False if it needs more."""
    used = {c for c in columns if c != "week"}
    used |= {c for c in ("level", "category", "urgency", "depth") if getattr(f, c) is not None}
    if f.scope is not None and "unit" not in used:  # (a unit row's code says its subtree)
        used.add("area")
    if len(used) > 1 or ("week" in columns and (used or len(columns) > 1)):
        return False
    dim = next(iter(used), None)
    return False if dim is not None and dim not in dims else dim


def _from_marginals(
    cur: ViewCursor, facts_table: str, marginals_table: str, kind: str, f: Filters,
    columns: Sequence[str], dim: str | None, area_length: int, since: float, until: float,
    as_of: float,
) -> dict[Any, Agg]:  # fmt: skip
    """Sum from the marginal roll-up: whole quarters, then whole weeks, then raw facts.

    For each span (52 weeks, 13, then 1), the periods wholly inside the range are read from the
    roll-up where they were recorded before the cut's period (the cut: as_of, or the week
    from which a catch-up's writer holds rows back, HeldRollups, whichever is earlier); the
    range's edges, and facts of those periods recorded from the start of the cut's period
    up to as_of, go to the next finer span; the finest is the raw facts. A fact recorded in
    a later period than the one it concerns is a cancellation: those are found through a
    partial index.
    """
    group = columns[0] if columns else None
    # the marginal rows: which dimension, and its value condition
    m_where, m_params = " AND dim = ? AND span = ?", [dim or ""]
    r_where, r_params = "", []
    value = getattr(f, dim) if dim in ("level", "category", "urgency", "depth") else None
    if value is not None:
        m_where += " AND val = ?"
        m_params_val: list[Any] = [str(value)]
        r_where, r_params = f" AND {dim} = ?", [value]
    elif dim == "area" and f.scope is not None:
        if f.scope.startswith("dept:") or len(f.scope) == area_length:
            m_where += " AND val = ?"
            m_params_val = [f.scope]
        else:
            val_where, m_params_val = in_subtree("val", f.scope, cur.dialect)
            m_where += val_where
        r_where, r_params = in_subtree("unit", f.scope, cur.dialect, indexed=False)
    elif dim == "unit" and f.scope is not None:  # units in a subtree, or one department
        val_where, m_params_val = in_subtree("val", f.scope, cur.dialect)
        m_where += val_where
        r_where, r_params = in_subtree("unit", f.scope, cur.dialect, indexed=False)
    elif dim is None:
        m_where += " AND val = ?"
        m_params_val = [""]
    else:
        m_params_val = []
    m_group = "val" if group not in (None, "week") else ("period" if group == "week" else "NULL")
    marg = (
        f"SELECT {m_group}, {NO_BUCKET}, n, value, flag, hist FROM {marginals_table} "
        f"WHERE kind = ?{m_where} AND period >= ? AND period < ? AND rec_period >= ? "
        f"AND rec_period < ?"
    )
    r_group = {None: "NULL", "week": "at_week"}.get(group, group)
    raw = (
        f"SELECT {r_group}, bucket, n, value, flag, NULL FROM {facts_table} WHERE kind = ?"
        f"{r_where} AND at >= ? AND at < ? AND recorded <= ?"
    )
    spans = (1,) if group == "week" else SPANS
    parts: list[tuple[str, list[Any]]] = []
    big = 1 << 40

    def plan(lo: float, hi: float, rec_lo: float, level: int) -> None:
        """Facts with lo <= at < hi, recorded in [rec_lo, as_of]; rec_lo is -FOREVER or the
        start of a period of every finer span, and then later than every such `at`."""
        if lo >= hi:
            return
        late = rec_lo > -FOREVER
        if level == len(spans):
            if late:  # facts recorded from the cut's week: the recorded index bounds the scan
                sql = raw.replace(" AND at >= ?", " AND +at >= ?")
                sql += " AND recorded >= ? AND at_week <> rec_week"
                parts.append((sql, [kind, *r_params, lo, hi, as_of, rec_lo]))
            else:
                parts.append((raw, [kind, *r_params, lo, hi, as_of]))
            return
        span = spans[level]
        length = span * WEEK
        p_lo = math.ceil((lo - WEEK_ORIGIN) / length) if lo > -FOREVER else -big
        p_hi = math.floor((hi - WEEK_ORIGIN) / length) if hi < FOREVER else big
        p_cut = math.floor((cut - WEEK_ORIGIN) / length) if cut < FOREVER else big
        p_hi = min(p_hi, p_cut)  # as_of's own period is never whole before as_of
        if p_lo >= p_hi:
            plan(lo, hi, rec_lo, level + 1)
            return
        a = WEEK_ORIGIN + p_lo * length if p_lo > -big else lo
        # p_hi < big here unless both the range and as_of are open
        b = WEEK_ORIGIN + p_hi * length if p_hi < big else hi
        p_rec = math.floor((rec_lo - WEEK_ORIGIN) / length) if late else -big
        sql = marg + (" AND rec_period <> period" if late else "")
        parts.append((sql, [kind, *m_params, span, *m_params_val, p_lo, p_hi, p_rec, p_cut]))
        if cut < FOREVER:  # recorded from the start of cut's period on
            plan(a, b, max(rec_lo, WEEK_ORIGIN + p_cut * length), level + 1)
        plan(lo, a, rec_lo, level + 1)
        plan(b, hi, rec_lo, level + 1)

    cut = min(as_of, sealed_cut(cur, facts_table))  # the roll-up holds what was recorded before
    if since <= -FOREVER and until >= FOREVER and cut >= FOREVER and group != "week":
        # live, of all time: the all-time rows (a view made before them has them refilled
        # when a follower starts, as for every span)
        parts.append((marg, [kind, *m_params, ALL_TIME, *m_params_val, 0, 1, 0, 1]))
    else:
        plan(since, until, -FOREVER, 0)
    # depths: text in the marginal rows (`val`), integers in the facts
    return _summed(cur, parts, 1, False, int_keys=dim == "depth" and group == "depth")


def _dimension_filters(f: Filters) -> tuple[str, list[Any]]:
    sql, params = "", []
    for column in ("level", "category", "urgency", "depth"):
        value = getattr(f, column)
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    return sql, params


def percentiles_ms(agg: Agg) -> dict[str, float | None]:
    return dict(zip(("p50", "p90", "p99"), agg.percentiles((0.5, 0.9, 0.99)), strict=True))


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
    # the length of the unit codes a kind's facts are rolled up by, where not a township's
    area_lengths: ClassVar[dict[str, int]] = {}
    # kinds whose counts per area, category and week the marginal roll-up packs by quarter
    heat_kinds: ClassVar[tuple[str, ...]] = ()
    extra_tables: ClassVar[dict[str, str]] = {}
    marginal_dims: ClassVar[tuple[str, ...]] = ("level", "area", "category", "urgency")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        p = cls.prefix
        cls.tables = {
            f"{p}_state": JSON_STATE_DDL,
            f"{p}_facts": FACTS_DDL,
            f"{p}_rollup": ROLLUP_DDL,
            f"{p}_marg": MARGINALS_DDL,
            **cls.extra_tables,
        }
        cls.clustered = frozenset({f"{p}_rollup", f"{p}_marg"})
        cls.indexes = (*fact_indexes(f"{p}_facts", f"{p}_rollup"), *marginal_indexes(f"{p}_marg"))

    def create(self, cur: ViewCursor) -> None:
        """Create the tables; a store from before the roll-ups' present layout (no marginal
        roll-up, or one row per histogram bucket) gets them refilled from its facts."""
        rollup, marginals = self.t(f"{self.prefix}_rollup"), self.t(f"{self.prefix}_marg")
        stale = [t for t in (rollup, marginals) if has_column(cur, t, "bucket")]
        for table in stale:
            cur.execute(f"DROP TABLE {table}")
        missing = [t for t in (rollup, marginals) if not table_exists(cur, t)]
        super().create(cur)
        facts = self.t(f"{self.prefix}_facts")
        if missing:
            log.info("%s: filling %s from the facts (views made before them)",
                     self.base_name, ", ".join(missing))  # fmt: skip
            backfill_rollups(
                cur, facts, rollup if rollup in missing else None,
                marginals if marginals in missing else None, self.marginal_dims, self.heat_kinds,
            )  # fmt: skip
            return
        if self.heat_kinds and not self._has_rows(cur, facts, marginals, self.heat_kinds, HEAT):
            log.info("%s: adding the packed heat-map rows (once)", self.base_name)
            self._backfill_heat(cur, rollup, marginals)
        for dim in self.marginal_dims:
            if dim in LATER_DIMS and not self._has_rows(cur, facts, marginals, self.kinds, dim):
                log.info("%s: adding the marginal rows per %s (once)", self.base_name, dim)
                self._backfill_fact_dim(cur, facts, marginals, dim)
        for longer, shorter in itertools.pairwise((ALL_TIME, *SPANS)):
            if not self._has_span(cur, marginals, longer, shorter):
                log.info("%s: adding the %s marginal rows (once)", self.base_name,
                         f"{longer}-week" if longer != ALL_TIME else "all-time")  # fmt: skip
                _sum_span(cur, marginals, longer, shorter)

    def _has_span(self, cur: ViewCursor, marginals: str, longer: int, shorter: int) -> bool:
        """False for views made before the marginal roll-up kept periods of `longer` weeks
        that have rows of `shorter` ones to sum (each kind's overall rows tell)."""
        marks = ", ".join("?" * len(self.kinds))
        some = (
            f"SELECT 1 FROM {marginals} WHERE kind IN ({marks}) AND dim = '' AND span = ? LIMIT 1"
        )
        if cur.execute(some, [*self.kinds, longer]).fetchone() is not None:
            return True
        return cur.execute(some, [*self.kinds, shorter]).fetchone() is None

    def _backfill_fact_dim(self, cur: ViewCursor, facts: str, marginals: str, dim: str) -> None:
        """Add the marginal rows of a dimension (LATER_DIMS) to views made before the model
        kept it, a quarter of facts at a time: the rows a fresh fold writes (~2 s at 10^6
        events, once)."""
        for rows in facts_by_quarter(cur, facts):
            sums = marginal_sums(rows, (dim,), overall=False)
            _upsert_sums(cur, marginals, MARGINAL_KEY, sums)

    def _backfill_heat(self, cur: ViewCursor, rollup: str, marginals: str) -> None:
        """Pack the weekly roll-up's rows of the heat kinds (views made before the packed
        rows): the rows a fresh fold writes, read from ~16,500 rows at 10^6 events."""
        marks = ", ".join("?" * len(self.heat_kinds))
        rows = cur.execute(
            f"SELECT {', '.join(ROLLUP_KEY)}, n FROM {rollup} WHERE kind IN ({marks})",
            list(self.heat_kinds),
        ).fetchall()
        weekly: Sums = {tuple(r[:-1]): [r[-1], 0, 0, None] for r in rows}
        _upsert_sums(cur, marginals, MARGINAL_KEY, heat_sums(weekly, self.heat_kinds))

    @staticmethod
    def _has_rows(
        cur: ViewCursor, facts: str, marginals: str, kinds: Sequence[str], dim: str
    ) -> bool:
        """False for views made before the marginal roll-up kept `dim` (the packed heat-map
        rows, a dimension summed from the facts) that have facts of `kinds` to sum."""
        marks = ", ".join("?" * len(kinds))
        packed = f"SELECT 1 FROM {marginals} WHERE kind IN ({marks}) AND dim = ? LIMIT 1"
        if cur.execute(packed, [*kinds, dim]).fetchone() is not None:
            return True
        some = f"SELECT 1 FROM {facts} WHERE kind IN ({marks}) LIMIT 1"
        return cur.execute(some, kinds).fetchone() is None

    def drop(self, cur: ViewCursor) -> None:
        super().drop(cur)
        _unseal(cur, self.t(f"{self.prefix}_facts"))

    def load_states(self, cur: ViewCursor, keys: Sequence[str]) -> dict[str, S]:
        return load_json_states(cur, self.t(f"{self.prefix}_state"), keys, self.decode)

    @staticmethod
    def decode(data: Any) -> Any:
        raise NotImplementedError

    def save_states(self, cur: ViewCursor, states: dict[str, S]) -> None:
        save_json_states(cur, self.t(f"{self.prefix}_state"), states)

    def write(self, cur: ViewCursor, effects: list[Any]) -> None:
        """Write the facts among `effects` (plain tuples; other effects are NamedTuples)."""
        facts = [e for e in effects if type(e) is tuple]
        if not facts:
            return
        p = self.prefix
        tables = (self.t(f"{p}_facts"), self.t(f"{p}_rollup"), self.t(f"{p}_marg"))
        write_call(cur, write_fact_tables, *tables, self.marginal_dims, facts, self.heat_kinds)

    def query(
        self,
        cur: ViewCursor,
        kind: str,
        filters: Filters,
        group_by: str | tuple[str, ...] | None = None,
        *,
        area_length: int = 9,
    ) -> dict[Any, Agg]:
        self._check(kind)
        return aggregate(
            cur,
            self.t(f"{self.prefix}_facts"),
            self.t(f"{self.prefix}_rollup"),
            kind,
            filters,
            group_by=group_by,
            area_length=self.area_lengths.get(kind, area_length),
            marginals_table=self.t(f"{self.prefix}_marg"),
            marginal_dims=self.marginal_dims,
        )

    def heat(self, cur: ViewCursor, kind: str, filters: Filters) -> HeatRows:
        """The facts of `kind` per area, category and week, as rows (measures.heat_rows)."""
        self._check(kind)
        p = self.prefix
        return heat_rows(
            cur, self.t(f"{p}_facts"), self.t(f"{p}_rollup"), self.t(f"{p}_marg"), kind,
            filters, area_length=self.area_lengths.get(kind, 9),
        )  # fmt: skip

    def _check(self, kind: str) -> None:
        if self.kinds and kind not in self.kinds:
            raise ValueError(f"unknown {self.base_name} kind {kind!r}; use one of {self.kinds}")

"""The roll-ups answer exactly what a plain sum over the facts answers, for any range,
as_of, scope, dimension filter and grouping: the marginal roll-up (quarters, weeks, raw
edges and late cancellations) and the weekly one, over histories longer than a year."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.servers import PostgresServer
from engine.viewstore import ViewStore, hist_text, set_position
from projections import pipeline
from projections.fold import WEEK, WEEK_ORIGIN, area_of
from projections.measures import (
    ALL_TIME,
    FACTS_DDL,
    HEAT_GROUPS,
    MARGINALS_DDL,
    NO_BUCKET,
    ROLLUP_DDL,
    Agg,
    FactRow,
    Filters,
    aggregate,
    bucket_value,
    cancelled,
    count,
    fact,
    heat_rows,
    marginal_indexes,
    sealed_week,
    write_fact_tables,
    write_facts,
    write_marginals,
)
from projections.pipeline import WriterFailed
from tests.projections.test_folds import world
from tests.servers_fixtures import unique_name

T0 = WEEK_ORIGIN + 2900 * WEEK + 3 * 86400.0 + 1234.5  # a Thursday in 2025, not a boundary
SPAN = 520 * 86400.0
UNITS = ["510123001001", "510123001002", "510123002001", "510123101003", "dept:water",
         "510123001001-01-02", "510123001010-03"]  # fmt: skip
DIMS = ("level", "area", "category", "urgency", "depth", "unit")
FACTS, ROLLUP, MARG = "f_facts", "f_rollup", "f_marg"
# townships and wider (roll-ups), villages and narrower (facts, by the unit index), a department
SCOPES = [None, "510123001", "510123", "dept:water", "510123002", "510123001001", "5101230010",
          "510123001001-01"]  # fmt: skip
# one dimension (the marginal roll-up answers) and several (the weekly one: the heat map's)
GROUPS = [None, "week", "area", "level", "depth", "unit", ("area", "category", "week"),
          ("level", "depth"), ("unit", "level")]  # fmt: skip


def history(seed: int) -> list[FactRow]:
    rng = random.Random(seed)
    facts: list[FactRow] = []
    for i in range(600):
        at = T0 + rng.random() * SPAN
        unit = rng.choice(UNITS)
        one = fact(
            rng.choice(["a", "b"]), f"c{i}", at, unit, area_of(unit),
            rng.choice(["village", "township", "department"]), rng.choice(["x", "y"]),
            rng.choice(["normal", "urgent"]), depth=rng.randint(0, 2),
            bucket=rng.choice([NO_BUCKET, rng.randint(0, 40)]), value=rng.randint(0, 10**6),
            flag=rng.randint(0, 1),
        )  # fmt: skip
        facts.append(one)
        if rng.random() < 0.25:  # withdrawn later: the same hour, or up to months on
            facts.append(cancelled(one, at + rng.choice([60.0, rng.random() * 200 * 86400])))
    return sorted(facts, key=lambda f: f[3])  # the log's order: by recorded time


def fill(views: ViewStore) -> list[FactRow]:
    """The fact tables of `history(3)`, written in batches as a follower writes them."""
    facts = history(3)
    create_fact_tables(views)
    with views.transaction() as cur:
        for index in marginal_indexes("f_marg"):
            cur.execute(index.format(f_marg=MARG))
    for lo in range(0, len(facts), 97):
        with views.transaction() as cur:
            write_facts(cur, FACTS, ROLLUP, facts[lo : lo + 97])
            write_marginals(cur, MARG, facts[lo : lo + 97], DIMS, heat_kinds=("a", "b"))
    return facts


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ViewStore, list[FactRow]]]:
    path: Path = tmp_path_factory.mktemp("marginals")
    views = ViewStore(sqlite_path=str(path / "v.db"))
    yield views, fill(views)
    views.close()


@pytest.fixture(scope="module")
def pg_store(postgres_server: PostgresServer) -> Iterator[tuple[ViewStore, list[FactRow]]]:
    name = unique_name("marginals")
    views = ViewStore(postgres_url=postgres_server.create_database(name))
    try:
        yield views, fill(views)
    finally:
        views.close()
        postgres_server.drop_database(name)


COLUMN = {"week": 4, "unit": 6, "area": 7, "level": 8, "category": 9, "depth": 11}  # FactRow


def plain(
    facts: list[FactRow], kind: str, f: Filters, group: str | tuple[str, ...] | None
) -> dict[Any, Any]:
    since = f.since if f.since is not None else -1e15
    until = f.until if f.until is not None else 1e15
    as_of = f.as_of if f.as_of is not None else 1e15
    out: dict[Any, Agg] = {}
    for r in facts:
        if r[0] != kind or not since <= r[2] < min(until, as_of + 1e-6) or r[3] > as_of:
            continue
        if f.scope is not None and not (
            r[6] == f.scope if f.scope.startswith("dept:") else r[6].startswith(f.scope)
        ):
            continue
        if any(getattr(f, d) is not None and getattr(f, d) != r[i] for d, i in
               (("level", 8), ("category", 9), ("urgency", 10), ("depth", 11))):  # fmt: skip
            continue
        g: Any
        if isinstance(group, tuple):
            g = tuple(r[COLUMN[c]] for c in group)
        else:
            g = None if group is None else r[COLUMN[group]]
        out.setdefault(g, Agg()).add(r[12], r[13], r[14], r[15])
    return {g: shape(a) for g, a in out.items() if a.n != 0 or a.flag != 0}


@given(
    histogram=st.dictionaries(st.integers(0, 300), st.integers(1, 50), max_size=40),
    qs=st.lists(st.floats(0.001, 1.0), min_size=1, max_size=5),
)
def test_percentiles_in_one_pass_are_each_the_nearest_rank(
    histogram: dict[int, int], qs: list[float]
) -> None:
    qs = sorted(qs)
    values = sorted(b for b, c in histogram.items() for _ in range(c))
    agg = Agg(len(values), 0, 0, dict(histogram))
    expected = [
        bucket_value(values[max(1, math.ceil(q * len(values))) - 1]) if values else None for q in qs
    ]
    assert agg.percentiles(qs) == expected
    assert [agg.percentile(q) for q in qs] == expected


@st.composite
def stored_rows(draw: st.DrawFn) -> tuple[list[dict[int, int]], dict[int, int]]:
    """Roll-up rows' histograms, some holding cancellations (negative counts) of what
    earlier rows counted, and the facts' buckets (also with cancellations): never below
    zero once summed, as in a store."""
    rows: list[dict[int, int]] = []
    total: dict[int, int] = {}
    for _ in range(draw(st.integers(0, 6))):
        row = draw(st.dictionaries(st.integers(0, 60), st.integers(1, 9), max_size=12))
        counted = sorted(b for b, c in total.items() if c > 0)
        if draw(st.booleans()) and counted:  # a late row: takes some counted ones back
            for b in draw(st.lists(st.sampled_from(counted), max_size=4, unique=True)):
                row[b] = row.get(b, 0) - draw(st.integers(1, total[b]))
        rows.append({b: c for b, c in row.items() if c})
        for b, c in row.items():
            total[b] = total.get(b, 0) + c
    facts = draw(st.dictionaries(st.integers(0, 60), st.integers(1, 5), max_size=6))
    counted = sorted(b for b, c in total.items() if c > 0)
    if draw(st.booleans()) and counted:  # a fact that cancels one counted
        b = draw(st.sampled_from(counted))
        facts[b] = facts.get(b, 0) - 1
    return rows, facts


@given(stored=stored_rows(), qs=st.lists(st.floats(0.001, 1.0), min_size=1, max_size=4))
def test_percentiles_of_unmerged_roll_up_rows_are_those_of_the_merged_histogram(
    stored: tuple[list[dict[int, int]], dict[int, int]], qs: list[float]
) -> None:
    rows, facts = stored
    agg = Agg()
    merged: dict[int, int] = {}
    for b, c in facts.items():
        agg.add(b, c, 0, 0)
    for row in rows:
        agg.add(NO_BUCKET, sum(row.values()), 0, 0, hist_text(row))
    for part in (facts, *rows):
        for b, c in part.items():
            merged[b] = merged.get(b, 0) + c
    whole = Agg(agg.n, 0, 0, merged)
    assert agg.percentiles(qs) == whole.percentiles(qs)
    assert agg == whole  # reading the histogram merges what waited


def shape(a: Agg) -> tuple[int, int, int, dict[int, int]]:
    return (a.n, a.value, a.flag, {b: c for b, c in a.histogram.items() if c})


moments = st.floats(0, 1).map(lambda x: T0 - 20 * 86400 + x * (SPAN + 60 * 86400))
QUESTIONS = {  # what is asked of the fact tables
    "kind": st.sampled_from(["a", "b"]),
    "since": st.none() | moments,
    "until": st.none() | moments,
    "as_of": st.none() | moments,
    "scope": st.sampled_from(SCOPES),
    "group": st.sampled_from(GROUPS),
}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    **QUESTIONS,
    level=st.sampled_from([None, None, "township"]),
    depth=st.sampled_from([None, None, 1]),
)
def test_roll_ups_equal_a_plain_sum(
    store: tuple[ViewStore, list[FactRow]],
    kind: str,
    since: float | None,
    until: float | None,
    as_of: float | None,
    scope: str | None,
    level: str | None,
    depth: int | None,
    group: str | tuple[str, ...] | None,
) -> None:
    views, facts = store
    f = Filters(since=since, until=until, as_of=as_of, scope=scope, level=level, depth=depth)
    assert_answers_a_plain_sum(views, facts, kind, f, group)


def assert_answers_a_plain_sum(
    views: ViewStore, facts: list[FactRow], kind: str, f: Filters, group: Any
) -> None:
    """Through the marginal roll-up, through the weekly one, and counted (`count`)."""
    expected = plain(facts, kind, f, group)
    with views.reading() as cur:
        for marginals in (MARG, None):
            got = aggregate(
                cur, FACTS, ROLLUP, kind, f, group_by=group, marginals_table=marginals,
                marginal_dims=DIMS,
            )  # fmt: skip
            assert {g: shape(a) for g, a in got.items()} == expected, marginals
        if isinstance(group, tuple):  # the heat map's question: counts only
            counts = {g: e[0] for g, e in expected.items() if e[0]}
            assert count(cur, FACTS, ROLLUP, kind, f, group) == counts
            if group == HEAT_GROUPS:  # from the packed rows where they can answer
                assert heat_counts(cur, FACTS, ROLLUP, MARG, kind, f) == counts


@pytest.mark.postgres
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(**QUESTIONS)
def test_roll_ups_equal_a_plain_sum_on_postgresql(
    pg_store: tuple[ViewStore, list[FactRow]],
    kind: str,
    since: float | None,
    until: float | None,
    as_of: float | None,
    scope: str | None,
    group: str | tuple[str, ...] | None,
) -> None:
    """The same on PostgreSQL, whose scopes are LIKE patterns (SQLite's are ranges)."""
    views, facts = pg_store
    f = Filters(since=since, until=until, as_of=as_of, scope=scope)
    assert_answers_a_plain_sum(views, facts, kind, f, group)


HEAT_QUESTIONS = {
    "kind": st.sampled_from(["a", "b"]),
    "since": st.none() | moments,
    "until": st.none() | moments,
    "scope": st.sampled_from(SCOPES),
    "category": st.sampled_from([None, "x"]),
}


def heat_counts(
    cur: Any, facts: str, rollup: str, marginals: str, kind: str, f: Filters
) -> dict[tuple[Any, ...], int]:
    """`heat_rows` flattened as `count(..., HEAT_GROUPS)` answers."""
    rows = heat_rows(cur, facts, rollup, marginals, kind, f)
    return {(a, c, w): n for (a, c), weeks in rows.items() for w, n in weeks.items()}


def assert_heat_counts_as_the_facts(
    views: ViewStore, facts: list[FactRow], kind: str, f: Filters
) -> None:
    expected = {g: e[0] for g, e in plain(facts, kind, f, HEAT_GROUPS).items() if e[0]}
    with views.reading() as cur:
        assert heat_counts(cur, FACTS, ROLLUP, MARG, kind, f) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(**HEAT_QUESTIONS)
def test_the_packed_heat_map_rows_count_what_the_facts_count(
    store: tuple[ViewStore, list[FactRow]],
    kind: str,
    since: float | None,
    until: float | None,
    scope: str | None,
    category: str | None,
) -> None:
    """The heat map's question (per area, category and week, live) from the packed rows
    and the facts at the range's edges, scoped and filtered by category."""
    f = Filters(since=since, until=until, scope=scope, category=category)
    assert_heat_counts_as_the_facts(*store, kind, f)


@pytest.mark.postgres
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(**HEAT_QUESTIONS)
def test_the_packed_heat_map_rows_count_what_the_facts_count_on_postgresql(
    pg_store: tuple[ViewStore, list[FactRow]],
    kind: str,
    since: float | None,
    until: float | None,
    scope: str | None,
    category: str | None,
) -> None:
    f = Filters(since=since, until=until, scope=scope, category=category)
    assert_heat_counts_as_the_facts(*pg_store, kind, f)


def test_views_from_before_the_packed_heat_map_rows_get_them_at_start() -> None:
    def without_heat_rows(cur: Any, t: Callable[[str], str]) -> None:
        cur.execute(f"DELETE FROM {t('marg')} WHERE dim = 'heat'")

    assert_refilled_at_start("indicators", 5, "marg", without_heat_rows)


def test_views_from_before_the_unit_marginals_get_them_at_start() -> None:
    def without_unit_rows(cur: Any, t: Callable[[str], str]) -> None:
        kept = cur.execute(f"SELECT COUNT(*) FROM {t('marg')} WHERE dim = 'unit'").fetchone()
        assert kept is not None and kept[0] > 10
        cur.execute(f"DELETE FROM {t('marg')} WHERE dim = 'unit'")

    assert_refilled_at_start("response_times", 6, "marg", without_unit_rows)


@pytest.mark.parametrize(("name", "seed"), [("response_times", 7), ("distortion", 8),
                                             ("indicators", 9)])  # fmt: skip
def test_views_from_before_the_52_week_rows_get_them_at_start(name: str, seed: int) -> None:
    def without_year_rows(cur: Any, t: Callable[[str], str]) -> None:
        kept = cur.execute(f"SELECT COUNT(*) FROM {t('marg')} WHERE span = 52").fetchone()
        assert kept is not None and kept[0] > 0
        cur.execute(f"DELETE FROM {t('marg')} WHERE span = 52")

    assert_refilled_at_start(name, seed, "marg", without_year_rows)


@pytest.mark.parametrize(("name", "seed"), [("response_times", 10), ("indicators", 11)])
def test_views_from_before_the_all_time_rows_get_them_at_start(name: str, seed: int) -> None:
    def without_all_time_rows(cur: Any, t: Callable[[str], str]) -> None:
        kept = cur.execute(f"SELECT COUNT(*) FROM {t('marg')} WHERE span = ?", (ALL_TIME,))
        found = kept.fetchone()
        assert found is not None and found[0] > 0
        cur.execute(f"DELETE FROM {t('marg')} WHERE span = ?", (ALL_TIME,))

    assert_refilled_at_start(name, seed, "marg", without_all_time_rows)


@pytest.mark.parametrize(
    ("since", "until", "spans"),
    [(T0 + 40 * 86400, T0 + 405 * 86400, [13, 1]),  # a year across two 52-week periods
     (T0 - 30 * 86400, None, [52, 13, 1]),  # open at one end: whole 52-week periods first
     (None, None, [ALL_TIME])],  # all of the history, open at both ends: the all-time rows
)  # fmt: skip
def test_a_county_year_reads_the_longest_whole_periods(
    store: tuple[ViewStore, list[FactRow]], since: float | None, until: float | None,
    spans: list[int],
) -> None:  # fmt: skip
    """A year of one kind, county-wide, reads the longest periods wholly inside it, then
    shorter ones and raw facts only at the edges of the range."""
    views, _ = store
    asked: list[tuple[str, list[Any]]] = []
    with views.reading() as cur:
        real = cur.execute

        def spy(sql: str, params: Any = ()) -> Any:
            asked.append((sql, list(params)))
            return real(sql, params)

        cur.execute = spy  # type: ignore[method-assign]
        aggregate(
            cur, FACTS, ROLLUP, "a", Filters(since=since, until=until),
            marginals_table=MARG, marginal_dims=DIMS,
        )  # fmt: skip
    read = [params[2] for sql, params in asked if MARG in sql]
    assert read[0] == spans[0] and set(read) == set(spans)
    assert all(sql.count("?") == len(params) for sql, params in asked)
    assert not any(ROLLUP in sql for sql, _ in asked)


def assert_refilled_at_start(
    name: str, seed: int, table: str, age: Callable[[Any, Callable[[str], str]], None]
) -> None:
    """Fold a history, make the model's tables look as an older version left them (`age`,
    given the cursor and the model's table namer), and check the follower's `create`
    brings back exactly the tables a fresh fold writes; `table` must have had rows."""
    with world(seed, cases=10, steps=120) as (_, projections, _, _):
        with projections.views.transaction() as cur:
            model = projections.model(name, cur)
            before = model.dump(cur)
            prefix: str = model.prefix  # type: ignore[attr-defined]
            assert len(before[f"{prefix}_{table}"]) > 10
            age(cur, lambda t: model.t(f"{prefix}_{t}"))
        with projections.views.transaction() as cur:
            model.create(cur)  # what the follower does when it starts
            assert model.dump(cur) == before


@pytest.mark.parametrize("name", ["response_times", "distortion", "indicators"])
def test_views_from_before_the_marginal_roll_up_get_it_filled(name: str) -> None:
    def without_marginals(cur: Any, t: Callable[[str], str]) -> None:
        cur.execute(f"DROP TABLE {t('marg')}")

    assert_refilled_at_start(name, 17, "marg", without_marginals)


OLD_ROLLUP_DDL = """CREATE TABLE {t} (kind TEXT NOT NULL, at_week BIGINT NOT NULL,
    rec_week BIGINT NOT NULL, area TEXT NOT NULL, level TEXT NOT NULL, category TEXT NOT NULL,
    urgency TEXT NOT NULL, depth BIGINT NOT NULL, bucket BIGINT NOT NULL, n BIGINT NOT NULL,
    value BIGINT NOT NULL, flag BIGINT NOT NULL, PRIMARY KEY (kind, at_week, rec_week, area,
    level, category, urgency, depth, bucket))"""
OLD_MARGINALS_DDL = """CREATE TABLE {t} (kind TEXT NOT NULL, dim TEXT NOT NULL,
    span BIGINT NOT NULL, val TEXT NOT NULL, period BIGINT NOT NULL, rec_period BIGINT NOT NULL,
    bucket BIGINT NOT NULL, n BIGINT NOT NULL, value BIGINT NOT NULL, flag BIGINT NOT NULL,
    PRIMARY KEY (kind, dim, span, val, period, rec_period, bucket))"""


@pytest.mark.parametrize("name", ["response_times", "distortion", "indicators"])
def test_roll_ups_with_a_row_per_bucket_are_refilled_in_the_present_layout(name: str) -> None:
    def per_bucket(cur: Any, t: Callable[[str], str]) -> None:
        rollup, marginals = t("rollup"), t("marg")
        for table, ddl in ((rollup, OLD_ROLLUP_DDL), (marginals, OLD_MARGINALS_DDL)):
            cur.execute(f"DROP TABLE {table}")
            cur.execute(ddl.format(t=table))
        cur.execute(f"INSERT INTO {rollup} VALUES ('first', 1, 1, 'a', 'b', 'c', 'd', 0, 3, "
                    "1, 2, 0)")  # fmt: skip

    assert_refilled_at_start(name, 18, "rollup", per_bucket)


# -- the writer process's memory of the roll-ups ----------------------------------------------


def create_fact_tables(views: ViewStore) -> None:
    with views.transaction() as cur:
        cur.execute(FACTS_DDL.format(t=FACTS))
        cur.execute(ROLLUP_DDL.format(t=ROLLUP))
        cur.execute(MARGINALS_DDL.format(t=MARG))


def roll_ups(views: ViewStore) -> dict[str, list[tuple[Any, ...]]]:
    with views.reading() as cur:
        return {t: sorted(cur.execute(f"SELECT * FROM {t}").fetchall()) for t in (ROLLUP, MARG)}


def shuffled(seed: int, late: float) -> list[FactRow]:
    """`history(seed)` with a share `late` of its facts coming after their recorded time,
    swapped with one up to 400 facts on (weeks to months: a clock set back)."""
    rng = random.Random(seed)
    facts = history(seed)
    for i in range(len(facts)):
        if rng.random() < late:
            j = min(len(facts) - 1, i + rng.randint(1, 400))
            facts[i], facts[j] = facts[j], facts[i]
    return facts


def write_held(views: ViewStore, facts: list[FactRow], batch: int) -> dict[str, Any]:
    """Write `facts` in batches as a catch-up's view writer does, holding roll-up rows back
    (HeldRollups); returns its memory, not flushed."""
    memory: dict[str, Any] = {}
    pipeline._scratch = memory
    try:
        for lo in range(0, len(facts), batch):
            with views.transaction() as cur:
                write_fact_tables(cur, FACTS, ROLLUP, MARG, DIMS, facts[lo : lo + batch])
    finally:
        pipeline._scratch = None
    return memory


def sealed(views: ViewStore) -> int | None:
    with views.reading() as cur:
        return sealed_week(cur, FACTS)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    seed=st.integers(0, 10**6),
    batch=st.integers(1, 200),
    late=st.floats(0, 0.2),
    rows_before=st.integers(0, 40),
)
def test_rows_the_writer_holds_back_are_the_rows_merging_in_the_database_writes(
    tmp_path_factory: pytest.TempPathFactory, seed: int, batch: int, late: float, rows_before: int
) -> None:
    """Batches written as the writer process of a catch-up writes them (rows held back until
    their recorded period has passed, then flushed) leave the very rows that merging each
    batch in the database leaves: with facts arriving out of recorded order by weeks to
    months (merged into rows already written), and with tables that already had rows when
    the writer started (then nothing is held)."""
    facts = shuffled(seed, late)
    path = tmp_path_factory.mktemp("held")
    merged, held = (ViewStore(sqlite_path=str(path / f"{n}.db")) for n in ("m", "h"))
    try:
        for views in (merged, held):
            create_fact_tables(views)
            with views.transaction() as cur:  # rows written before this writer started
                write_fact_tables(cur, FACTS, ROLLUP, MARG, DIMS, facts[:rows_before])
        for lo in range(rows_before, len(facts), batch):
            with merged.transaction() as cur:
                write_fact_tables(cur, FACTS, ROLLUP, MARG, DIMS, facts[lo : lo + batch])
        memory = write_held(held, facts[rows_before:], batch)
        if not rows_before:  # it held rows back, and sealed weeks as it went
            assert memory[f"held:{FACTS}"] is not None
            assert sealed(held) is not None
        pipeline._flush(held, memory)
        assert sealed(held) is None
        assert roll_ups(held) == roll_ups(merged)
    finally:
        merged.close()
        held.close()


@pytest.fixture(scope="module")
def held_store(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ViewStore, list[FactRow]]]:
    """Two thirds of a history written as a catch-up's writer writes it, some facts late,
    stopped before its last transaction: roll-up rows held back and lost."""
    views = ViewStore(sqlite_path=str(tmp_path_factory.mktemp("held") / "v.db"))
    facts = shuffled(7, 0.05)[:400]
    create_fact_tables(views)
    memory = write_held(views, facts, 37)
    held = memory[f"held:{FACTS}"]
    assert held.weekly and held.spans[1] and held.spans[ALL_TIME]  # weekly, marginal rows held
    yield views, facts
    views.close()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(**QUESTIONS, category=st.sampled_from([None, None, "x"]))
def test_while_a_writer_holds_rows_back_the_views_answer_a_plain_sum(
    held_store: tuple[ViewStore, list[FactRow]],
    kind: str,
    since: float | None,
    until: float | None,
    as_of: float | None,
    scope: str | None,
    category: str | None,
    group: str | tuple[str, ...] | None,
) -> None:
    """Every question (marginal roll-up, weekly roll-up, counts, heat map) answers from
    what was written up to the sealed week and the facts after it what a plain sum of the
    facts answers, as if every row had been written."""
    views, facts = held_store
    assert sealed(views) is not None
    f = Filters(since=since, until=until, as_of=as_of, scope=scope, category=category)
    assert_answers_a_plain_sum(views, facts, kind, f, group)
    assert_heat_counts_as_the_facts(views, facts, kind, f)


def test_rows_a_stopped_writer_held_back_are_written_by_the_next_write(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A writer stopped before its last transaction leaves its sealed week: the next write
    of the tables (in a follower, or a new writer) sums the rows held back again from the
    facts, and the tables are those merging every batch leaves."""
    facts = shuffled(11, 0.05)
    path = tmp_path_factory.mktemp("stopped")
    merged, stopped = (ViewStore(sqlite_path=str(path / f"{n}.db")) for n in ("m", "s"))
    try:
        for views in (merged, stopped):
            create_fact_tables(views)
        for lo in range(0, len(facts), 50):
            with merged.transaction() as cur:
                write_fact_tables(cur, FACTS, ROLLUP, MARG, DIMS, facts[lo : lo + 50])
        write_held(stopped, facts[:400], 50)  # stopped here: its memory is lost
        assert sealed(stopped) is not None
        for lo in range(400, len(facts), 50):
            with stopped.transaction() as cur:
                write_fact_tables(cur, FACTS, ROLLUP, MARG, DIMS, facts[lo : lo + 50])
        assert sealed(stopped) is None
        assert roll_ups(stopped) == roll_ups(merged)
    finally:
        merged.close()
        stopped.close()


@pytest.mark.postgres
def test_a_batch_the_writer_rolls_back_leaves_nothing_in_its_memory(
    postgres_server: PostgresServer, request: pytest.FixtureRequest
) -> None:
    """A batch that fails after adding to the roll-ups is rolled back, and so is what the
    writer process remembered of it: the next batch's totals do not count it."""
    facts = history(5)
    first, failing, third = facts[:100], facts[100:200], facts[200:300]
    names = [unique_name(f"{request.node.name}_{n}") for n in ("w", "ref")]
    views, reference = (ViewStore(postgres_url=postgres_server.create_database(n)) for n in names)
    writer = None
    try:
        for v in (views, reference):
            create_fact_tables(v)
            with v.transaction() as cur:
                set_position(cur, "m", 0)
        tables = (FACTS, ROLLUP, MARG, DIMS)
        call = f"{write_fact_tables.__module__}:{write_fact_tables.__qualname__}"
        writer = pipeline.Writer(views)
        writer.send([("m", 0, 1, [(call, (*tables, first), "call")])])
        writer.wait()
        broken = ("INSERT INTO nowhere", (), "execute")  # fails after the roll-ups' writes
        writer.send([("m", 1, 2, [(call, (*tables, failing), "call"), broken])])
        with pytest.raises(WriterFailed):
            writer.wait()
        writer.send([("m", 1, 2, [(call, (*tables, third), "call")])])
        writer.wait()
        with reference.transaction() as cur:
            for part in (first, third):
                write_fact_tables(cur, *tables, part)
        assert roll_ups(views) == roll_ups(reference)
    finally:
        if writer is not None:
            writer.close()
        views.close()
        reference.close()
        for name in names:
            postgres_server.drop_database(name)

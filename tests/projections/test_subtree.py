"""`in_subtree`: the unit-subtree condition every scoped query uses selects exactly the
units equal to a department scope or starting with a tree-code scope, on both stores
(SQLite as a range on the index, PostgreSQL as LIKE with its wildcards escaped)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.servers import PostgresServer
from engine.viewstore import ViewCursor, ViewStore
from projections.fold import at_generation, in_subtree
from projections.response_times import ResponseTimes
from tests.servers_fixtures import unique_name

# tree codes and their prefixes, with the characters next to '-' and the digits in byte
# order ('.', '/', ':'), LIKE's wildcards and escape, and departments
ALPHABET = "0129-./:_%\\"
rng = random.Random(7)
UNITS = sorted(
    {"".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 7))) for _ in range(600)}
    | {"dept:water", "dept:water_2", "dept:wat", "510123001001", "510123001001-01-01"}
)


def fill(views: ViewStore) -> None:
    """Table u: every unit of UNITS, indexed."""
    with views.transaction() as cur:
        cur.execute("CREATE TABLE u (unit TEXT NOT NULL)")
        cur.execute("CREATE INDEX u_unit ON u (unit)")
        cur.executemany("INSERT INTO u VALUES (?)", [(u,) for u in UNITS])


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def units(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ViewStore]:
    name = ""
    if request.param == "sqlite":
        views = ViewStore(sqlite_path=str(tmp_path_factory.mktemp("subtree") / "v.db"))
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        name = unique_name("subtree")
        views = ViewStore(postgres_url=server.create_database(name))
    fill(views)
    yield views
    views.close()
    if name:
        request.getfixturevalue("postgres_server").drop_database(name)


def prefixes() -> list[str]:
    return sorted({u[:k] for u in UNITS for k in range(len(u) + 1)})


def select(views: ViewStore, scope: str, indexed: bool = True) -> tuple[list[str], str]:
    """The units `in_subtree` selects for `scope`, and the query's plan."""
    with views.reading() as cur:
        where, params = in_subtree("unit", scope, cur.dialect, indexed=indexed)
        sql = f"SELECT unit FROM u WHERE 1 = 1{where}"
        got = sorted(str(r[0]) for r in cur.execute(sql, params).fetchall())
        explain = "EXPLAIN QUERY PLAN " if cur.dialect == "sqlite" else "EXPLAIN "
        plan = " ".join(str(r[-1]) for r in cur.execute(explain + sql, params).fetchall())
    return got, plan


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(scope=st.sampled_from(prefixes()) | st.text(alphabet=ALPHABET, max_size=6))
def test_a_scope_selects_exactly_its_subtree(units: ViewStore, scope: str) -> None:
    department = scope.startswith("dept:")
    expected = [u for u in UNITS if (u == scope if department else u.startswith(scope))]
    assert select(units, scope)[0] == expected
    assert select(units, scope, indexed=False)[0] == expected


def test_a_tree_code_scope_searches_the_index(units: ViewStore) -> None:
    got, plan = select(units, "510123001001")
    assert got == ["510123001001", "510123001001-01-01"]
    assert "u_unit" in plan, plan
    if units.dialect == "sqlite":  # a range, not a scan of the index with LIKE on each entry
        assert "(unit>? AND unit<?)" in plan, plan
        assert "(unit>? AND unit<?)" not in select(units, "510123001001", indexed=False)[1]


def index_conditions(cur: ViewCursor, facts: str, scope: str) -> str:
    """The index conditions of PostgreSQL's plan for a village's facts of one kind."""
    cur.execute(  # 2,000 facts of 100 villages, for the planner to weigh the indexes by
        f"INSERT INTO {facts} SELECT 'first', 'case-' || i, i, i, 0, 0, "
        "'510123001' || lpad((i % 100)::text, 3, '0'), '510123001', 'village', 'road', "
        "'normal', 0, 0, 1, 0, 0 FROM generate_series(1, 2000) AS i"
    )
    cur.execute(f"ANALYZE {facts}")
    where, params = in_subtree("unit", scope, cur.dialect)
    sql = f"EXPLAIN SELECT n FROM {facts} WHERE kind = ?{where}"
    rows = cur.execute(sql, ["first", *params]).fetchall()
    return " ".join(str(r[0]).strip() for r in rows if "Index Cond" in str(r[0]))


def code_collations(cur: ViewCursor, tables: list[str]) -> set[str | None]:
    rows = cur.execute(
        "SELECT collation_name FROM information_schema.columns WHERE table_name IN "
        f"({', '.join('?' * len(tables))}) AND column_name IN ('unit', 'area', 'val')",
        tables,
    ).fetchall()
    return {r[0] for r in rows}


@pytest.mark.postgres
def test_postgresql_searches_the_unit_index_whatever_the_database_collation(
    postgres_server: PostgresServer,
) -> None:
    """Under a locale's collation (here C.UTF-8) LIKE 'code%' cannot search a B-tree index;
    the views' code columns collate as C, in new tables and in tables made before."""
    import psycopg

    name = unique_name("collate")
    with psycopg.connect(postgres_server.dsn, autocommit=True) as admin:
        admin.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
            "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
        )
    views = ViewStore(postgres_url=postgres_server.dsn_for(name))
    try:
        fresh, old = at_generation(ResponseTimes, 1), at_generation(ResponseTimes, 2)
        with views.transaction() as cur:
            fresh.create(cur)
            for table, ddl in old.tables.items():  # as lianhu made them before
                cur.execute(ddl.format(t=old.t(table)))
            old.create_indexes(cur)
            before = index_conditions(cur, old.t("rt_facts"), "510123001001")
        assert "unit" not in before, before  # LIKE is a filter on each entry of (kind, at)
        with views.transaction() as cur:
            old.create(cur)
        for model in (fresh, old):
            with views.transaction() as cur:
                tables = [model.t(t) for t in model.tables]
                assert code_collations(cur, tables) == {"C"}
                searched = index_conditions(cur, model.t("rt_facts"), "510123001001")
            assert "unit >= '510123001001'" in searched, searched
    finally:
        views.close()
        postgres_server.drop_database(name)

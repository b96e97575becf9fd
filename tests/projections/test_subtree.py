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
from engine.viewstore import ViewStore, collation_warning
from projections.fold import in_subtree
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


@pytest.mark.postgres
def test_postgresql_under_a_locale_collation_is_reported_since_like_cannot_use_the_index(
    postgres_server: PostgresServer,
) -> None:
    import psycopg

    seen: dict[str, tuple[str | None, str]] = {}
    for collation in ("C", "C.UTF-8"):
        name = unique_name(f"collate_{collation}")
        with psycopg.connect(postgres_server.dsn, autocommit=True) as admin:
            admin.execute(
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
                f"LC_COLLATE '{collation}' LC_CTYPE '{collation}'"
            )
        views = ViewStore(postgres_url=postgres_server.dsn_for(name))
        try:
            fill(views)
            with views.transaction() as cur:
                cur.execute("SET LOCAL enable_seqscan = off")  # the index if it can at all
                where, params = in_subtree("unit", "510123001001", cur.dialect)
                rows = cur.execute(f"EXPLAIN SELECT unit FROM u WHERE 1 = 1{where}", params)
                lines = " ".join(str(r[0]) for r in rows.fetchall())
            seen[collation] = (collation_warning(views), lines)
        finally:
            views.close()
            postgres_server.drop_database(name)
    assert seen["C"][0] is None and "Index Cond" in seen["C"][1], seen["C"][1]
    warning, plan = seen["C.UTF-8"]
    assert warning is not None and "LOCALE 'C'" in warning and "C.UTF-8" in warning
    assert "Index Cond" not in plan, plan  # all of the index read, LIKE on each entry

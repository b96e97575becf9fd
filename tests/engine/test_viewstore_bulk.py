"""Many rows at once: plain inserts (COPY on PostgreSQL) and upserts with distinct keys
(COPY into a staging table, then one INSERT ... SELECT ... ON CONFLICT) leave exactly
what row-by-row statements leave, on both stores, in one transaction or several."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from engine.viewstore import BULK_CACHE_KIB, COPY_FROM, ViewStore

UPSERT = (
    "INSERT INTO {t} (k, label, n, at) VALUES (?, ?, ?, ?) ON CONFLICT (k) DO UPDATE SET "
    "n = {t}.n + excluded.n, label = excluded.label, at = excluded.at"
)


def test_bulk_writes_equal_row_by_row_writes(any_views: ViewStore) -> None:
    views = any_views
    rng = random.Random(4)
    with views.transaction() as cur:
        for t in ("bulk", "single"):
            cur.execute(
                f"CREATE TABLE {t} (k TEXT PRIMARY KEY, label TEXT, n BIGINT NOT NULL, "
                "at DOUBLE PRECISION)"
            )
            cur.execute(f"CREATE TABLE {t}_log (k TEXT NOT NULL, at DOUBLE PRECISION, x TEXT)")
    for round_ in range(4):
        keys = rng.sample(range(400), COPY_FROM + rng.randint(0, 200))  # distinct keys
        rows = [
            (f"k{k}", rng.choice(["甲", "乙", None, "a,b\t'c\"", "\\N"]), rng.randint(-5, 5),
             rng.choice([None, 1.7e9 + rng.random() * 1e6]))
            for k in keys
        ]  # fmt: skip
        log = [(k, at, label) for k, label, _, at in rows]
        with views.transaction() as cur:
            cur.upsert_many(UPSERT.format(t="bulk"), rows)
            cur.executemany("INSERT INTO bulk_log VALUES (?, ?, ?)", log)
            for row in rows:
                cur.execute(UPSERT.format(t="single"), row)
            for entry in log:
                cur.execute("INSERT INTO single_log VALUES (?, ?, ?)", entry)
            if round_ == 1:  # a second bulk upsert of the same table in one transaction
                cur.upsert_many(UPSERT.format(t="bulk"), rows[:COPY_FROM])
                for row in rows[:COPY_FROM]:
                    cur.execute(UPSERT.format(t="single"), row)
    with views.reading() as cur:
        for t in ("bulk", "single"):
            assert cur.execute(f"SELECT COUNT(*) FROM {t}").fetchone() != (0,)
        assert sorted(cur.execute("SELECT * FROM bulk").fetchall()) == sorted(
            cur.execute("SELECT * FROM single").fetchall()
        )
        key = lambda r: tuple("" if v is None else str(v) for v in r)  # noqa: E731
        assert sorted(cur.execute("SELECT * FROM bulk_log").fetchall(), key=key) == sorted(
            cur.execute("SELECT * FROM single_log").fetchall(), key=key
        )


def test_bulk_writes_on_sqlite_commit_atomically_and_end_durable(tmp_path: Path) -> None:
    path = tmp_path / "views.db"
    views = ViewStore(sqlite_path=str(path))
    try:
        with views.transaction() as cur:
            cur.execute("CREATE TABLE t (k BIGINT PRIMARY KEY, x TEXT)")
        wal = Path(f"{path}-wal")
        with views.bulk_writes(checkpoint_every=0.01):
            with views.reading() as cur:
                assert cur.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
                assert cur.execute("PRAGMA cache_size").fetchone() == (BULK_CACHE_KIB,)
            for i in range(30):
                rows = [(i * 100 + j, "x" * 200) for j in range(100)]
                with views.transaction() as cur:
                    cur.executemany("INSERT INTO t VALUES (?, ?)", rows)
            with pytest.raises(ZeroDivisionError), views.transaction() as cur:
                cur.execute("INSERT INTO t VALUES (-1, 'half')")
                _ = 1 / 0  # a failed batch leaves nothing
        with views.reading() as cur:
            assert cur.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL again
            assert cur.execute("PRAGMA wal_autocheckpoint").fetchone() == (16384,)
            assert cur.execute("PRAGMA cache_size").fetchone() == (-2000,)  # the default
            assert cur.execute("SELECT COUNT(*), MIN(k) FROM t").fetchone() == (3000, 0)
        assert wal.stat().st_size == 0  # checkpointed in full at the end
    finally:
        views.close()
    again = ViewStore(sqlite_path=str(path))  # what a restart reads
    try:
        with again.reading() as cur:
            assert cur.execute("SELECT COUNT(*) FROM t").fetchone() == (3000,)
    finally:
        again.close()

"""Where read models live: their tables and their tracked log positions, in one database.

A read model writes a batch of view changes and its new position in ONE
transaction, so after a crash it resumes exactly where its view stopped:
nothing counted twice, nothing missed.

SQLite (the embedded default) keeps views in their own file beside the event
store (`var/views.db`), so view writes never queue behind filings for SQLite's
single writer lock. PostgreSQL keeps them in the event store's database.

SQL is written once with `?` placeholders and portable statements
(`INSERT ... ON CONFLICT ... DO UPDATE` works on both); the PostgreSQL cursor
translates placeholders.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson
import psycopg
from psycopg_pool import ConnectionPool

from engine.persistence import check_durability
from engine.settings import Settings

Dialect = Literal["sqlite", "postgres"]

POSITIONS_TABLE = """
CREATE TABLE IF NOT EXISTS lianhu_positions (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    updated_at TEXT NOT NULL
)
"""
# A facts table whose roll-ups a catch-up's view writer holds back (projections.measures.
# HeldRollups): they hold the facts recorded before `week` (a week index), and a longer
# period's rows only once it has ended by then; facts recorded later are in the facts alone.
SEALED_TABLE = """
CREATE TABLE IF NOT EXISTS lianhu_sealed (facts TEXT PRIMARY KEY, week BIGINT NOT NULL)
"""


class ViewCursor(Protocol):
    dialect: Dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> ViewCursor: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def upsert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """`executemany` of an `INSERT ... ON CONFLICT` whose rows have distinct keys."""

    def fetchone(self) -> tuple[Any, ...] | None: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...


class _SQLiteCursor:
    dialect: Dialect = "sqlite"

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._c = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _SQLiteCursor:
        self._c.execute(sql, tuple(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._c.executemany(sql, rows)  # sqlite3 takes any sequences: no copy

    def upsert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._c.executemany(sql, rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._c.fetchone()
        return tuple(row) if row is not None else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._c.fetchall()  # rows are tuples (no row_factory)


# INSERT of whole rows without ON CONFLICT: PostgreSQL takes many of them through COPY
PLAIN_INSERT = re.compile(r"INSERT INTO (\w+)(?: \(([\w, ]+)\))? VALUES \(\?(?:, ?\?)*\)\s*")
UPSERT = re.compile(
    r"INSERT INTO (\w+)(?: \(([\w, ]+)\))? VALUES \(\?(?:, ?\?)*\)\s*(ON CONFLICT .*)", re.S
)
COPY_FROM = 50  # rows


class _PostgresCursor:
    dialect: Dialect = "postgres"

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._c = cursor

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _PostgresCursor:
        self._c.execute(self._sql(sql), tuple(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        plain = PLAIN_INSERT.fullmatch(sql) if len(rows) >= COPY_FROM else None
        if plain is not None:  # the same rows through COPY: a fraction of the server's work
            self._copy(plain.group(1), plain.group(2), rows)
            return
        self._c.executemany(self._sql(sql), [tuple(r) for r in rows])

    def upsert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Through COPY into a temporary table, then one INSERT ... SELECT ... ON CONFLICT
        (which is why the keys must be distinct: one statement updates a row once)."""
        upsert = UPSERT.fullmatch(sql) if len(rows) >= COPY_FROM else None
        if upsert is None:
            self.executemany(sql, rows)
            return
        table, columns, conflict = upsert.group(1), upsert.group(2), upsert.group(3)
        staging = f"lianhu_staging_{table}"
        self._c.execute(
            # dropped at commit, so made anew in each transaction: always the table's layout
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (LIKE {table}) ON COMMIT DROP"
        )
        self._copy(staging, columns, rows)
        names = columns or "*"
        into = f"{table} ({columns})" if columns else table
        self._c.execute(f"INSERT INTO {into} SELECT {names} FROM {staging} {conflict}")
        self._c.execute(f"TRUNCATE {staging}")

    def _copy(self, table: str, columns: str | None, rows: Sequence[Sequence[Any]]) -> None:
        target = f"{table} ({columns})" if columns else table
        with self._c.copy(f"COPY {target} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._c.fetchone()
        return tuple(row) if row is not None else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._c.fetchall()]


# `lianhu_hist_add(a, b)`: the sum of two sparse count vectors (histograms), each NULL
# (empty) or a JSON array of [key, count] pairs in ascending key order, as
# `hist_text` writes them; the sum has the same form, without zero counts (NULL if none
# is left). Roll-ups keep a histogram per row with it: one upsert per group, not one per
# bucket. Both dialects produce the same text, so rebuilt views equal live ones byte for
# byte whichever side of a conflict a row was written on.
HIST_ADD_POSTGRES = """
CREATE OR REPLACE FUNCTION lianhu_hist_add(a text, b text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a ELSE (
  SELECT '[' || string_agg('[' || k || ',' || c || ']', ',' ORDER BY k) || ']'
  FROM (SELECT (e->>0)::bigint AS k, SUM((e->>1)::bigint) AS c
        FROM jsonb_array_elements(a::jsonb || b::jsonb) AS e GROUP BY 1) AS t
  WHERE c <> 0) END
$$"""


def hist_text(counts: dict[int, int]) -> str | None:
    """A histogram as `lianhu_hist_add` reads and writes it (None: empty)."""
    pairs = [(k, counts[k]) for k in sorted(counts) if counts[k]]
    return orjson.dumps(pairs).decode() if pairs else None


def hist_counts(text: str | None) -> list[tuple[int, int]]:
    return [] if not text else [(int(k), int(c)) for k, c in orjson.loads(text)]


def hist_add(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    counts: dict[int, int] = {}
    for k, c in orjson.loads(a):
        counts[k] = c
    for k, c in orjson.loads(b):
        counts[k] = counts.get(k, 0) + c
    return hist_text(counts)


BULK_CACHE_KIB = -262144  # PRAGMA cache_size of a bulk writer: negative = KiB


def _open_store(sqlite_path: str | None, postgres_url: str | None) -> ViewStore:
    return ViewStore(sqlite_path=sqlite_path, postgres_url=postgres_url)


def locked_position(cur: ViewCursor, name: str) -> int:
    """How far `name` has processed the log, read in the caller's write transaction so no
    other follower moves it before the transaction ends (PostgreSQL: the row is locked and
    a second follower waits, then sees the new position; SQLite: the write lock)."""
    lock = " FOR UPDATE" if cur.dialect == "postgres" else ""
    row = cur.execute(
        "SELECT position FROM lianhu_positions WHERE name = ?" + lock, (name,)
    ).fetchone()
    return int(row[0]) if row else 0


def set_position(cur: ViewCursor, name: str, position: int) -> None:
    """Record how far `name` has processed the log, in the caller's transaction."""
    cur.execute(
        "INSERT INTO lianhu_positions (name, position, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
        "updated_at = excluded.updated_at",
        (name, position, datetime.now(tz=UTC).isoformat()),
    )


class ViewStore:
    """A database for read models. Use `ViewStore.for_settings(settings)`."""

    dialect: Dialect

    def __init__(self, *, sqlite_path: str | None = None, postgres_url: str | None = None) -> None:
        if (sqlite_path is None) == (postgres_url is None):
            raise ValueError("give exactly one of sqlite_path and postgres_url")
        self._sqlite_path = sqlite_path
        self._postgres_url = postgres_url
        self._local = threading.local()
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if postgres_url is not None:
            self.dialect = "postgres"
            self._pool = ConnectionPool(
                postgres_url, min_size=1, max_size=8, open=True, kwargs={"autocommit": False}
            )
        else:
            self.dialect = "sqlite"
        with self.transaction() as cur:
            cur.execute(POSITIONS_TABLE)
            cur.execute(SEALED_TABLE)
            if self.dialect == "postgres":
                found = cur.execute(
                    "SELECT 1 FROM pg_proc WHERE proname = 'lianhu_hist_add'"
                ).fetchone()
                if found is None:  # (CREATE OR REPLACE races with itself in other processes)
                    cur.execute(HIST_ADD_POSTGRES)

    def reopen(self) -> ViewStore:
        """The same store through new connections (another process opens it so)."""
        return ViewStore(sqlite_path=self._sqlite_path, postgres_url=self._postgres_url)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled for a worker process: its location
        return (_open_store, (self._sqlite_path, self._postgres_url))

    @classmethod
    def for_settings(cls, settings: Settings) -> ViewStore:
        if settings.database_url:
            return cls(postgres_url=settings.database_url)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(sqlite_path=str(settings.data_dir / "views.db"))

    def _sqlite(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            assert self._sqlite_path is not None
            Path(self._sqlite_path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self._sqlite_path, isolation_level=None, check_same_thread=False, timeout=30
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            # checkpoint every 64 MB of WAL, not every 4 MB: a follower's batch rewrites the
            # same hot pages (states, roll-ups, index interiors) batch after batch, and each
            # checkpoint copies them once (catch-up: ~40 % less commit time)
            conn.execute("PRAGMA wal_autocheckpoint=16384")
            conn.create_function("lianhu_hist_add", 2, hist_add, deterministic=True)
            check_durability(conn)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[ViewCursor]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self._transaction(write=True) as cur:
            yield cur

    @contextmanager
    def reading(self) -> Iterator[ViewCursor]:
        """A read-only snapshot. On SQLite it takes no write lock, so queries never wait
        for a follower's batch and never make one wait."""
        with self._transaction(write=False) as cur:
            yield cur

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[ViewCursor]:
        if self._pool is not None:
            with self._pool.connection() as conn:
                conn.read_only = not write
                try:
                    with conn.transaction(), conn.cursor() as cur:
                        yield _PostgresCursor(cur)
                finally:
                    conn.read_only = False
            return
        lite = self._sqlite()
        lite.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield _SQLiteCursor(lite.cursor())
        except BaseException:
            lite.execute("ROLLBACK")
            raise
        lite.execute("COMMIT")

    def position(self, name: str) -> int:
        """How far `name` has processed the log (0: nothing yet)."""
        with self.reading() as cur:
            row = cur.execute(
                "SELECT position FROM lianhu_positions WHERE name = ?", (name,)
            ).fetchone()
        return int(row[0]) if row else 0

    def positions(self) -> dict[str, int]:
        with self.reading() as cur:
            rows = cur.execute("SELECT name, position FROM lianhu_positions").fetchall()
        return {str(n): int(p) for n, p in rows}

    @contextmanager
    def bulk_writes(self, checkpoint_every: float = 0.5) -> Iterator[None]:
        """This thread's writes are a long catch-up of derived views (SQLite; elsewhere a
        no-op): commits skip the fsync (synchronous=NORMAL: still atomic, and a power cut
        only loses batches whose positions roll back with them, which the follower
        redoes) and a thread checkpoints the WAL meanwhile, so the writer never waits for
        a checkpoint. At the end a full checkpoint makes everything durable and the
        connection is as before."""
        if self.dialect != "sqlite":
            yield
            return
        conn = self._sqlite()
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        cache = conn.execute("PRAGMA cache_size").fetchone()[0]
        # 256 MB of pages: at 10^6 events the indexes outgrow the default 2 MB and every
        # insert rereads pages from the OS (10 % of a catch-up's time)
        conn.execute(f"PRAGMA cache_size={BULK_CACHE_KIB}")
        stop = threading.Event()

        def checkpoint() -> None:
            assert self._sqlite_path is not None
            other = sqlite3.connect(self._sqlite_path, isolation_level=None, timeout=30)
            try:
                while not stop.wait(checkpoint_every):
                    other.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never blocks writers
            finally:
                other.close()

        checkpointer = threading.Thread(target=checkpoint, name="views-checkpoint", daemon=True)
        checkpointer.start()
        try:
            yield
        finally:
            stop.set()
            checkpointer.join()
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA wal_autocheckpoint=16384")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA cache_size={int(cache)}")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

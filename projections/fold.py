"""The shape every read model shares: a pure per-case fold, persisted batch by batch.

A read model keeps one state per case and a pure function
`evolve(state, rec) -> (state, effects)`. States and effects are plain tuples (a
NamedTuple where readers want names); `rec` is a `Rec`: an event as stored (its JSON
fields, as `PydanticMapper` wrote them), read without building the pydantic model,
which costs more than the whole fold. For a batch it loads the states of
the cases the batch touches, folds the batch in memory, and writes the new
states and the effects (facts, intervals) in the caller's transaction, beside
its log position. Folding a history in one batch or in many therefore gives
the same tables: the fold never sees batch boundaries (tested).

Tables carry a generation suffix (`rt_facts_g2`): a rebuild fills generation
N+1 from position 0 while generation N stays live, then switches the pointer
in `lianhu_generations` in one transaction (projections.registry).
"""

from __future__ import annotations

import functools
import gc
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar
from uuid import UUID

import orjson
from eventsourcing.persistence import Mapper
from eventsourcing.utils import resolve_topic

from engine.events import CaseEvent
from engine.viewstore import ViewCursor

S = TypeVar("S")
WEEK = 7 * 24 * 3600
# Weeks start on Monday 00:00 Beijing time (UTC+8): 1970-01-05 00:00 +08:00 in epoch seconds.
WEEK_ORIGIN = 4 * 24 * 3600 - 8 * 3600
FOREVER = 1e15  # "no end yet" for intervals and "no limit" for ranges, in epoch seconds
CHUNK = 500  # keys per IN (...) list
INDEX_NAME = re.compile(r"CREATE INDEX IF NOT EXISTS (\w+) ON ")
# Columns holding unit codes, which queries select by prefix (in_subtree). On PostgreSQL
# they collate as C whatever the database's locale: LIKE 'code%' searches a B-tree index
# only under C, and C orders codes byte by byte, as SQLite does.
CODE_COLUMNS = ("unit", "area", "val")


def ts(iso: str) -> float:
    """Epoch seconds of a stored ISO 8601 time (as pydantic wrote it; exact to the µs)."""
    return datetime.fromisoformat(iso).timestamp()


def ts_or_none(iso: str | None) -> float | None:
    return None if not iso else datetime.fromisoformat(iso).timestamp()


@functools.lru_cache(maxsize=1 << 16)
def case_key(case_id: UUID | str) -> str:
    """A case's key in the views, str(case_id) (memoised: a case's events come together)."""
    return str(case_id)


@functools.lru_cache(maxsize=1 << 16)
def case_key_of_hex(hex_id: str) -> str:
    """A case's key from its id as the SQLite recorder stores it (`UUID.hex`)."""
    return str(UUID(hex_id))


class Rec(NamedTuple):
    """One case event as the folds read it.

    `type` is the event class's name (`CaseRouted`), `key` the case key, `t` the event's
    timestamp in epoch seconds and `d` its fields as stored: JSON types, datetimes as ISO
    8601 strings, enums as their values, exactly `model_dump(mode="json")` of the event.
    """

    type: str
    key: str
    t: float
    d: dict[str, Any]


def record_of(event: CaseEvent) -> Rec:
    """The `Rec` of a domain event: the same fields the mapper stores for it."""
    d = event.model_dump(mode="json", exclude={"originator_id", "originator_version"})
    return Rec(type(event).__name__, case_key(event.originator_id), ts(d["timestamp"]), d)


class Decoder:
    """Stored events to `Rec`s, without validating them into pydantic models.

    The stored state is what `PydanticMapper.to_stored_event` wrote (`model_dump` of a
    validated event), so the fields are already checked; older versions are upcast by the
    event class's `upcast_vN_vN+1`, as the mapper does. Index events (case numbers) and
    events that are not case events give None.
    """

    def __init__(self, mapper: Mapper[UUID]) -> None:
        self._decode: Callable[[bytes], Any] = mapper.transcoder.decode
        self._topics: dict[str, tuple[str, Any, int] | None] = {}

    def _kind(self, topic: str) -> tuple[str, Any, int] | None:
        if topic not in self._topics:
            cls = resolve_topic(topic)
            case = isinstance(cls, type) and issubclass(cls, CaseEvent) and not cls.INDEX
            self._topics[topic] = (
                (cls.__name__, cls, int(getattr(cls, "class_version", 1))) if case else None
            )
        return self._topics[topic]

    def many(
        self, rows: Iterable[tuple[int, Any, str, bytes]], key: Callable[[Any], str] = case_key
    ) -> list[tuple[int, Rec]]:
        """(position, originator id, topic, stored state) rows to (position, Rec), skipping
        events that are not case events; `key` makes the case key of an originator id.
        One loop over the batch with everything bound locally: a catch-up's hottest code."""
        out: list[tuple[int, Rec]] = []
        append, loads, topics, kind_of = out.append, self._decode, self._topics, self._kind
        for position, originator_id, topic, state in rows:
            kind = topics[topic] if topic in topics else kind_of(topic)
            if kind is None:
                continue
            name, cls, target = kind
            d: dict[str, Any] = loads(state)
            version = d.pop("class_version", 1)
            while version < target:
                getattr(cls, f"upcast_v{version}_v{version + 1}")(d)
                version += 1
            append((position, Rec(name, key(originator_id), ts(d["timestamp"]), d)))
        return out

    def __call__(self, topic: str, originator_id: UUID | str, state: bytes) -> Rec | None:
        found = self.many([(0, originator_id, topic, state)])
        return found[0][1] if found else None


def week_of(t: float) -> int:
    return int((t - WEEK_ORIGIN) // WEEK)


def week_start(week: int) -> float:
    return float(WEEK_ORIGIN + week * WEEK)


@functools.lru_cache(maxsize=4096)
def week_label(week: int) -> str:
    """The Monday (Beijing date) a week index starts on, e.g. 2026-03-02."""
    return datetime.fromtimestamp(week_start(week) + 8 * 3600, tz=UTC).date().isoformat()


def area_of(unit: str) -> str:
    """The unit's township (9-digit prefix), the county itself, or the department."""
    return unit if unit.startswith("dept:") else unit[:9]


def village_of(unit: str) -> str:
    return unit if unit.startswith("dept:") else unit[:12]


def in_subtree(
    column: str, scope: str | None, dialect: str, *, indexed: bool = True
) -> tuple[str, list[Any]]:
    """` AND <column> is in the unit subtree `scope``, and its parameters: equal to a
    department (`dept:...`), else starting with the tree code (a prefix of one: `5101`);
    no condition for no scope (None or "").

    On SQLite as a range, `scope <= column < scope'` (scope' = its last character + 1),
    which is exact under SQLite's binary collation and searches the column's index; LIKE
    does not (it ignores case, so SQLite cannot turn it into a range): a household's
    response times over a county-year took 130 ms through LIKE, under 1 ms through the
    range. `indexed=False` keeps SQLite off that index (`+column`), for a wide scope whose
    rows another index narrows better: a township holds a third of the county's facts,
    the edge of a time range far fewer (SQLite has no statistics to choose by).
    On PostgreSQL as LIKE, which is exact under any collation (a range is not, where the
    locale's collation orders '-' apart from the digits) and searches an index under the
    C collation (docs/metrics.md); its planner chooses by statistics."""
    if not scope:
        return "", []
    if scope.startswith("dept:"):
        return f" AND {column} = ?", [scope]
    if dialect == "sqlite":
        c = column if indexed else f"+{column}"
        return f" AND {c} >= ? AND {c} < ?", [scope, scope[:-1] + chr(ord(scope[-1]) + 1)]
    escaped = scope.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f" AND {column} LIKE ?", [escaped + "%"]


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a batch, or for a report.

    A batch allocates some hundred thousand tuples and dicts (records, states, facts, rows),
    none in reference cycles: reference counting frees them all. Left on, the collector
    runs every 700 allocations and rescans the follower's long-lived memory (recent states
    of every model), which cost a quarter of a catch-up's time; in a query, its full
    collections (~20 ms here) were the p99 of the reports that build thousands of rows.
    The previous state is restored on exit, so overlapping pauses in threads leave it on.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class FoldModel(Generic[S]):
    """Base of lianhu's read models (engine.follower.ReadModel).

    Subclasses set `base_name`, `tables` (name → DDL with `{t}` for the table name) and
    `indexes`, and implement `evolve` (pure), `load_states`, `save_states` and `write`.
    """

    base_name: ClassVar[str] = ""
    name: ClassVar[str] = ""
    topics: ClassVar[tuple[str, ...]] = ()
    tables: ClassVar[dict[str, str]] = {}
    indexes: ClassVar[tuple[str, ...]] = ()  # "CREATE INDEX IF NOT EXISTS {t_x}_i ON ..."
    # events that begin a case (its first): the state before them is None, never loaded
    births: ClassVar[frozenset[str]] = frozenset({"PetitionFiled"})
    # the event types `evolve` reads (None: all); any other leaves every state as it is and
    # emits nothing, so `apply` skips it, and a case the batch touches only with such
    # events is neither loaded nor written again (tested against the fold of every event)
    reads: ClassVar[frozenset[str] | None] = None
    # tables stored in primary-key order on SQLite (WITHOUT ROWID): a roll-up's range scan
    # over (kind, at_week, ...) then reads contiguous pages instead of one lookup per row
    clustered: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, generation: int = 1) -> None:
        self.generation = generation

    def t(self, table: str) -> str:
        """The real name of one of this model's tables in its generation."""
        return f"{table}_g{self.generation}"

    def _fmt(self, sql: str) -> str:
        return sql.format(**{k: self.t(k) for k in self.tables})

    def create(self, cur: ViewCursor) -> None:
        for table, ddl in self.tables.items():
            sql = ddl.format(t=self.t(table), **{k: self.t(k) for k in self.tables})
            if table in self.clustered and cur.dialect == "sqlite":
                sql += " WITHOUT ROWID"
            cur.execute(sql)
        if cur.dialect == "postgres":
            self._collate_codes(cur)
        self.create_indexes(cur)

    def _collate_codes(self, cur: ViewCursor) -> None:
        """The code columns of the tables collate as C (PostgreSQL): new tables have them
        altered before their indexes exist; tables made by earlier versions once, and
        PostgreSQL rebuilds the indexes on them."""
        tables = [self.t(table) for table in self.tables]
        rows = cur.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE "
            f"table_schema = current_schema() AND table_name IN ({', '.join('?' * len(tables))}) "
            f"AND column_name IN ({', '.join('?' * len(CODE_COLUMNS))}) "
            "AND collation_name IS DISTINCT FROM 'C'",
            [*tables, *CODE_COLUMNS],
        ).fetchall()
        for table, column in rows:
            cur.execute(f'ALTER TABLE {table} ALTER COLUMN {column} TYPE TEXT COLLATE "C"')

    def create_indexes(self, cur: ViewCursor) -> None:
        for index in self.indexes:
            cur.execute(self._fmt(index))

    def drop_indexes(self, cur: ViewCursor) -> None:
        """Drop the secondary indexes (the queries' ones; the folds read by primary key):
        a catch-up from position 0 fills the tables without them and `create_indexes`
        builds each in one sorted pass late in the catch-up (projections.registry:
        INDEXES_AT), which costs less than keeping it up to date row by row from the
        start (6 % of a catch-up over 10⁶ events)."""
        for index in self.indexes:
            found = INDEX_NAME.match(self._fmt(index))
            if found:
                cur.execute(f"DROP INDEX IF EXISTS {found.group(1)}")

    def analyze(self, cur: ViewCursor) -> None:
        """Refresh the planner's statistics of the tables (PostgreSQL; after a bulk fill, so
        the first queries are planned on the rows there are, not on empty tables; SQLite
        plans these queries well without statistics)."""
        if cur.dialect == "postgres":
            for table in self.tables:
                cur.execute(f"ANALYZE {self.t(table)}")

    def drop(self, cur: ViewCursor) -> None:
        for table in self.tables:
            cur.execute(f"DROP TABLE IF EXISTS {self.t(table)}")

    def apply(
        self,
        cur: ViewCursor,
        batch: Sequence[Rec],
        cache: dict[str, S] | None = None,
        reader: ViewCursor | None = None,
    ) -> dict[str, S]:
        """Fold `batch` into the tables in `cur`'s transaction; returns the states it wrote.

        `cache` holds states known to equal the stored ones (the follower's memory of
        recent cases): those are not loaded again. States are immutable, so the caller
        adds the returned ones to its cache once the transaction has committed. Other
        states are read through `reader` (default: `cur`), which must see every state
        not in `cache` as last written (projections.pipeline records the writes instead).
        """
        reads = self.reads
        if reads is not None:
            batch = [rec for rec in batch if rec.type in reads]
        if not batch:
            return {}
        known = cache if cache is not None else {}
        births = self.births
        # each case's state before the batch: remembered, loaded, or None at its birth (a
        # birth is a case's first event; a remembered state is never None)
        states: dict[str, S | None] = {key: known.get(key) for key in [r.key for r in batch]}
        born = {rec.key for rec in batch if rec.type in births}
        need = [key for key, state in states.items() if state is None and key not in born]
        if need:
            states.update(self.load_states(reader or cur, sorted(need)))
        effects: list[Any] = []
        evolve, extend = self.evolve, effects.extend
        for rec in batch:
            states[rec.key], emitted = evolve(states[rec.key], rec)
            if emitted:
                extend(emitted)
        written = {k: s for k, s in states.items() if s is not None}
        self.save_states(cur, written)
        self.write(cur, effects)
        return written

    # -- to implement ---------------------------------------------------------------------

    def evolve(self, state: S | None, rec: Rec, /) -> tuple[S | None, list[Any]]:
        """The pure fold (a subclass may bind its module's function: `staticmethod(f)`)."""
        raise NotImplementedError

    def load_states(self, cur: ViewCursor, keys: Sequence[str]) -> dict[str, S]:
        raise NotImplementedError

    def save_states(self, cur: ViewCursor, states: dict[str, S]) -> None:
        raise NotImplementedError

    def write(self, cur: ViewCursor, effects: list[Any]) -> None:
        """Write the effects of a batch (facts, closed intervals)."""

    def dump(self, cur: ViewCursor) -> dict[str, list[tuple[Any, ...]]]:
        """Every table's rows, sorted: what "rebuilt equals live" compares."""
        out = {}
        for table in self.tables:
            rows = cur.execute(f"SELECT * FROM {self.t(table)}").fetchall()
            out[table] = sorted(rows, key=lambda r: tuple("" if v is None else str(v) for v in r))
        return out


def at_generation(model: type[FoldModel[Any]], generation: int) -> FoldModel[Any]:
    """An instance of `model` bound to `generation`, with its own tracked position name."""
    bound = type(
        model.__name__,
        (model,),
        {"name": f"{model.base_name}.g{generation}", "__module__": model.__module__},
    )
    instance: FoldModel[Any] = bound(generation)
    return instance


# -- state persistence helpers ---------------------------------------------------------------

JSON_STATE_DDL = "CREATE TABLE IF NOT EXISTS {t} (case_id TEXT PRIMARY KEY, state TEXT NOT NULL)"


def load_json_states(
    cur: ViewCursor, table: str, keys: Sequence[str], decode: Callable[[Any], S]
) -> dict[str, S]:
    found: dict[str, S] = {}
    loads = orjson.loads
    for part in chunks(keys):
        marks = ",".join("?" * len(part))
        rows = cur.execute(
            f"SELECT case_id, state FROM {table} WHERE case_id IN ({marks})", part
        ).fetchall()
        for case_id, state in rows:
            found[str(case_id)] = decode(loads(state))
    return found


def save_json_states(cur: ViewCursor, table: str, states: dict[str, Any]) -> None:
    dumps = orjson.dumps
    rows = [(k, dumps(states[k]).decode()) for k in sorted(states)]
    cur.upsert_many(
        f"INSERT INTO {table} (case_id, state) VALUES (?, ?) "
        "ON CONFLICT (case_id) DO UPDATE SET state = excluded.state",
        rows,
    )


Columns = Sequence[tuple[str, str]]  # (name, Python type as written: "float | None")


def columns_of(cls: Any) -> list[tuple[str, str]]:
    """The (name, type) columns of a NamedTuple class, in order."""
    types = cls.__annotations__  # ForwardRefs (this module's annotations are strings)
    return [
        (name, getattr(types[name], "__forward_arg__", str(types[name]))) for name in cls._fields
    ]


def columns_ddl(columns: Columns, table_key: str, key: str = "case_id") -> str:
    """CREATE TABLE for flat rows: str → TEXT, int/bool → BIGINT, float → DOUBLE."""
    kinds = {"str": "TEXT", "int": "BIGINT", "bool": "BIGINT", "float": "DOUBLE PRECISION"}
    cols = []
    for name, kind in columns:
        base = kind.replace(" | None", "")
        sql = kinds[base] + ("" if "None" in kind else " NOT NULL")
        cols.append(f"{name} {sql}" + (" PRIMARY KEY" if name == key else ""))
    return f"CREATE TABLE IF NOT EXISTS {{{table_key}}} ({', '.join(cols)})"


def upsert_rows(
    cur: ViewCursor,
    table: str,
    names: Sequence[str],
    rows: Sequence[Any],
    fixed: Collection[str] = (),
) -> None:
    """Insert or replace rows (tuples in `names` order) keyed by the first column.

    Columns in `fixed` never change once written (they are not updated: an index on
    them is left alone)."""
    sets = ", ".join(f"{n} = excluded.{n}" for n in names[1:] if n not in fixed)
    cur.upsert_many(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
        f"ON CONFLICT ({names[0]}) DO UPDATE SET {sets}",
        rows,
    )


def write_call(cur: ViewCursor, fn: Callable[..., None], *args: Any) -> None:
    """`fn(cur, *args)`, now, or in the view writer process if `cur` records the writes for
    it (projections.pipeline): for writes whose rows take Python work to derive from the
    effects (roll-up sums), so that work runs beside the SQL, not in the folding process.
    `fn` must be a module-level function and `args` plain values (str, numbers, None, in
    tuples and lists)."""
    record = getattr(cur, "record_call", None)
    if record is None:
        fn(cur, *args)
    else:
        record(fn, args)


def load_rows(
    cur: ViewCursor, table: str, names: Sequence[str], keys: Sequence[str]
) -> list[tuple[Any, ...]]:
    """The rows (in `names` order) whose first column is one of `keys`."""
    found: list[tuple[Any, ...]] = []
    for part in chunks(keys):
        marks = ",".join("?" * len(part))
        found += cur.execute(
            f"SELECT {', '.join(names)} FROM {table} WHERE {names[0]} IN ({marks})", part
        ).fetchall()
    return found

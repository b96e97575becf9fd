"""Benchmark of the pending-deadline store and the SLA timer (issue 3).

1. With 1,000,000 pending lights in the store (bulk-inserted by SQL, not through the
   engine), the time to add one deadline (the fold's `start`: its clock row and its
   yellow and red rows) and to fire one (the range scan for the earliest due light and
   the fold's removal of it), each in its own committed transaction, beside a plain
   indexed table of the same size in the same database: one-row INSERT and DELETE.
   Target: ≤ 2 × the plain statement.
2. Firing lag (committed − due) of red lights while 1,000 deadlines a second come due,
   through the whole path: service, timer, pending store. Target: p99 < 1 s.

Both on SQLite (the embedded default) and on a throwaway PostgreSQL.

    python -m bench.deadlines [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine import commands as c
from engine.clock import FakeClock
from engine.deadlines import DueDeadline, PendingDeadlines, from_us, to_us
from engine.events import CaseEvent, SlaBreached, SlaWarned
from engine.numbering import new_case_id
from engine.persistence import postgres_env, sqlite_env
from engine.servers import PostgresServer
from engine.service import CaseService
from engine.timer import Timer
from engine.values import DeadlineKind
from engine.viewstore import ViewStore
from routing_rules import Level, RuleSet, default_rule_set_path, load_rule_set

Row = dict[str, object]
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def log(message: str) -> None:
    print(f"[deadlines] {message}", file=sys.stderr, flush=True)


# -- 1. add and fire against plain insert and delete ------------------------------------------


def prefill(views: ViewStore, n: int) -> None:
    """`n` pending lights (n/4 cases x 2 kinds x 2 lights) and a plain table of `n` rows."""
    cases = n // 4
    base = to_us(T0)
    with views.transaction() as cur:
        cur.execute("CREATE TABLE plain (id BIGINT PRIMARY KEY, fire_at BIGINT NOT NULL)")
        cur.execute("CREATE INDEX plain_fire_at ON plain (fire_at)")
    if views.dialect == "postgres":
        series = "generate_series(CAST(1 AS BIGINT), CAST(? AS BIGINT)) AS s(i)"
        hexid = "lpad(to_hex(i), 32, '0')"
    else:
        series = (
            "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?) "
            "SELECT i FROM s)"
        )
        hexid = "printf('%032x', i)"
    # spread over a year of fire times; the benchmark's own rows go in after them
    spread = f"((i * 7919) % {cases}) * 31536000000000 / {cases}"
    with views.transaction() as cur:
        for kind, offset in (("respond", 0), ("resolve", 1000)):
            cur.execute(
                "INSERT INTO sla_clocks (case_id, kind, started, due, paused_at, warned, "
                f"breached) SELECT {hexid}, '{kind}', {base}, {base} + {spread} + {offset}, "
                f"NULL, 0, 0 FROM {series}",
                (cases,),
            )
            for light, back in (("warn", 3600_000_000), ("breach", 0)):
                cur.execute(
                    "INSERT INTO sla_pending (case_id, kind, light, fire_at, due) "
                    f"SELECT {hexid}, '{kind}', '{light}', {base} + {spread} + {offset} - {back},"
                    f" {base} + {spread} + {offset} FROM {series}",
                    (cases,),
                )
        cur.execute(
            f"INSERT INTO plain (id, fire_at) SELECT i, {base} + {spread} FROM {series}", (n,)
        )
    if views.dialect == "postgres":  # settle the bulk load before measuring
        with views.transaction() as cur:
            cur.execute("ANALYZE sla_pending")
            cur.execute("ANALYZE sla_clocks")
            cur.execute("ANALYZE plain")
            cur.execute("CHECKPOINT")


def timed_pair(ops: int, a: Callable[[int], None], b: Callable[[int], None]) -> tuple[float, float]:
    """Median seconds of one call of `a` and of `b`, called alternately so that a checkpoint
    or a disk hiccup hurts both alike (each call is its own transaction)."""
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(ops):
        for op, out in ((a, times[0]), (b, times[1])):
            began = time.perf_counter()
            op(i)
            out.append(time.perf_counter() - began)
    return statistics.median(times[0]), statistics.median(times[1])


def store_ops(views: ViewStore, store: str, n: int, ops: int) -> list[Row]:
    model = PendingDeadlines()
    with views.transaction() as cur:
        model.create(cur)
    log(f"{store}: bulk-inserting {n:,} pending lights and {n:,} plain rows")
    began = time.perf_counter()
    prefill(views, n)
    log(f"{store}: prefilled in {time.perf_counter() - began:.1f} s")
    with views.transaction() as cur:
        assert model.count(cur) == n
    late = to_us(T0 + timedelta(days=400))  # after every prefilled row: a fresh index leaf
    early = to_us(T0 - timedelta(days=1))  # before them: the head of the index

    def add(i: int) -> None:
        with views.transaction() as cur:
            model.start(cur, f"bench-{i}", DeadlineKind.RESOLVE, early + i, late + i)

    def insert(i: int) -> None:
        with views.transaction() as cur:
            cur.execute("INSERT INTO plain (id, fire_at) VALUES (?, ?)", (10 * n + i, late + i))

    def fire(i: int) -> None:
        with views.transaction() as cur:
            light = model.due(cur, from_us(late + 10 * ops), 1)[0]
            model.evolve(cur, _fired(light))

    def delete(i: int) -> None:
        with views.transaction() as cur:
            cur.execute("DELETE FROM plain WHERE id = ?", (10 * n + i,))

    t_add, t_insert = timed_pair(ops, add, insert)
    t_fire, t_delete = timed_pair(ops, fire, delete)
    return [
        _row("add one deadline", store, t_add, "plain indexed INSERT, 1 row", t_insert, 2.0),
        _row("fire one deadline", store, t_fire, "plain indexed DELETE, 1 row", t_delete, 2.0),
    ]


def _fired(light: DueDeadline) -> CaseEvent:
    """The event the timer's firing records, as the fold sees it."""
    cls: type[SlaWarned | SlaBreached] = SlaWarned if light.light.value == "warn" else SlaBreached
    return cls(
        originator_id=light.case_id,
        originator_version=3,
        timestamp=light.fire_at,
        unit="bench",
        kind=light.kind,
        due=light.due,
    )


def _row(
    measurement: str, store: str, value: float, baseline: str, base: float, target: float
) -> Row:
    ratio = value / base if base else float("inf")
    return {
        "measurement": measurement,
        "store": store,
        "value": round(value * 1e6, 1),
        "unit": "µs",
        "baseline": baseline,
        "baseline_value": round(base * 1e6, 1),
        "ratio": round(ratio, 2),
        "target": f"≤ {target:g} ×",
        "verdict": "pass" if ratio <= target else "FAIL",
    }


# -- 2. firing lag at 1,000 deadlines a second -----------------------------------------------


class OffsetClock:
    """Real time, shifted so that it reads `start` at the moment `begin` is called."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.real_start = time.time()

    def begin(self) -> None:
        self.real_start = time.time()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.time() - self.real_start)


def file_due_cases(
    service: CaseService, clock: FakeClock, rules: RuleSet, n: int, rate: float
) -> None:
    """`n` cases whose respond deadlines fall due at T0 + i / rate (filed in batches)."""
    household = next(u.code for u in rules.jurisdiction.units() if u.level is Level.HOUSEHOLD)
    cmd = c.FilePetition(
        household_unit=household, category="neighbour_dispute", title="噪音", description="装修"
    )
    batch: list[object] = []
    for i in range(n):
        clock.set(T0 - timedelta(hours=12) + timedelta(seconds=i / rate))
        case, _ = service.prepare_filing(cmd, new_case_id(clock.now()), clock.now(), "", 0)
        batch.append(case)  # the number index is not needed here (and numbers may collide)
        if len(batch) >= 1000 or i == n - 1:
            service.save(*batch)  # type: ignore[arg-type]
            batch = []


def firing_lag(env: dict[str, str], views: ViewStore, store: str, seconds: float) -> list[Row]:
    rules = load_rule_set(default_rule_set_path())
    rate = 1000.0
    n = int(rate * seconds)
    setup_clock = FakeClock(T0 - timedelta(days=1))
    setup = CaseService(rules=rules, clock=setup_clock, env=env)
    log(f"{store}: filing {n:,} cases due at {rate:.0f}/s")
    file_due_cases(setup, setup_clock, rules, n, rate)
    setup_clock.set(T0 - timedelta(seconds=1))
    warm = Timer(setup, views)
    warm.fire_due()  # the yellow lights, three hours earlier: not part of the measurement
    setup.close()

    clock = OffsetClock(T0)
    service = CaseService(rules=rules, clock=clock, env=env)
    timer = Timer(service, views, max_sleep=0.05)
    lags: list[float] = []
    fire = service.fire_deadlines

    def measured(lights: list[DueDeadline]) -> int:
        recorded = fire(lights)
        committed = clock.now()
        lags.extend(
            (committed - x.due).total_seconds() for x in lights if x.light.value == "breach"
        )
        return recorded

    service.fire_deadlines = measured  # type: ignore[method-assign,assignment]
    stop = threading.Event()
    thread = threading.Thread(target=timer.run, args=(stop,))
    log(f"{store}: timer running for {seconds:.0f} s of deadlines")
    clock.begin()
    thread.start()
    deadline = time.monotonic() + seconds + 30
    while len(lags) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join(10)
    service.close()
    if len(lags) < n:
        log(f"{store}: only {len(lags)} of {n} deadlines fired in time")
    lags.sort()
    p50 = lags[len(lags) // 2] if lags else float("inf")
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else float("inf")
    done = len(lags) >= n
    rows = []
    for name, value in (("p50", p50), ("p99", p99)):
        ok = done and (value < 1.0 if name == "p99" else True)
        rows.append(
            {
                "measurement": f"firing lag {name} at {rate:.0f} deadlines/s ({n:,} fired)",
                "store": store,
                "value": round(value * 1000, 1),
                "unit": "ms",
                "baseline": "target",
                "baseline_value": 1000.0,
                "ratio": round(value / 1.0, 3),
                "target": "p99 < 1 s" if name == "p99" else "(reported)",
                "verdict": "pass" if ok else "FAIL",
            }
        )
    return rows


# -- the two stores ---------------------------------------------------------------------------


@contextmanager
def sqlite_store() -> Iterator[tuple[dict[str, str], ViewStore]]:
    folder = Path(tempfile.mkdtemp(prefix="lianhu-bench-deadlines-"))
    views = ViewStore(sqlite_path=str(folder / "views.db"))
    try:
        yield sqlite_env(str(folder / "lianhu.db")), views
    finally:
        views.close()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_store(server: PostgresServer, name: str) -> Iterator[tuple[dict[str, str], ViewStore]]:
    dsn = server.create_database(name)
    views = ViewStore(postgres_url=dsn)
    try:
        yield postgres_env(dsn, pool_size=4), views
    finally:
        views.close()
        server.drop_database(name)


def main(quick: bool = False) -> list[Row]:
    n = 100_000 if quick else 1_000_000
    ops = 200 if quick else 1000
    seconds = 3.0 if quick else 10.0
    rows: list[Row] = []
    with sqlite_store() as (_, views):
        rows += store_ops(views, "sqlite", n, ops)
    with sqlite_store() as (env, views):
        rows += firing_lag(env, views, "sqlite", seconds)
    log("starting a throwaway PostgreSQL")
    with PostgresServer() as server:
        with postgres_store(server, "bench_deadlines_ops") as (_, views):
            rows += store_ops(views, "postgres", n, ops)
        with postgres_store(server, "bench_deadlines_lag") as (env, views):
            rows += firing_lag(env, views, "postgres", seconds)
    return rows


def print_table(rows: list[Row]) -> None:
    header = (
        "measurement",
        "store",
        "value",
        "unit",
        "baseline_value",
        "ratio",
        "target",
        "verdict",
    )
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[k]) for k in header))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="100,000 pending, 3 s of lag")
    print_table(main(quick=parser.parse_args().quick))

"""Benchmark of the read models (issue 4).

1. Catch-up rate of all five read models together (projections.registry.Fanout: one
   read and decode per batch, every model's view changes and position in one
   transaction of 10,000 events, 30,000 on PostgreSQL) over N events, beside the raw
   rate of reading and decoding the same events from the same store in the same run
   (read in the same batches). Target ratio ≥ 0.5. Measured as `lianhu projections
   rebuild` and `run --once` catch up (the view writes in a second process,
   projections.pipeline) and, on SQLite, again in one process. A full run catches up
   three times into empty views, with raw readings before, between and after; the
   figure is the median catch-up rate over the fastest raw reading, the three ratios
   shown (the same code read 0.27-0.41 in single runs on this shared machine). The
   folds decode only the stored JSON (no pydantic models): its rate is shown too, and
   the rate of the folding process alone (its writes recorded and dropped), the most
   the catch-up can reach on this design, and the CPU time per event of each process
   against the raw reading's: how far two cores could take that much work.
2. Query latency p99 of each metric endpoint (through the HTTP app, TestClient) on
   that data: live, with `as_of`, and scoped to a township, a village, a household.
   Target < 50 ms.

Events are generated fast: realistic case histories (filed, routed, accepted,
referred 30 % with a retelling, escalated 5 %, returned 5 %, resolved, rated,
closed; a county's units, categories and urgencies) are built as aggregates in
memory and their stored events inserted through the recorder in batches of 5,000.
Full mode: 1,000,000 events over a county-year on SQLite and 200,000 on PostgreSQL;
quick mode: 20,000.

    python -m bench.projections [--quick] [--events N] [--sqlite | --postgres] [--random-ids]

`--postgres` runs only on a throwaway PostgreSQL (engine.servers), the views of each
catch-up in a database of their own; `--sqlite` only on SQLite files in a temporary
folder.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID, uuid4

from fastapi.testclient import TestClient

from api.app import create_app
from engine.case import Case
from engine.clock import FakeClock
from engine.events import CaseEvent
from engine.numbering import new_case_id
from engine.persistence import postgres_env, sqlite_env
from engine.servers import PostgresServer
from engine.service import CaseService
from engine.settings import Settings
from engine.values import (
    CloseReason,
    EscalationTrigger,
    Outcome,
    Reporter,
    ReturnReason,
)
from engine.viewstore import ViewStore
from projections.fold import Decoder, no_cyclic_gc
from projections.registry import Fanout, Projections, catch_up_batch
from routing_rules import Level, RuleSet, Urgency, default_rule_set_path, load_rule_set

Row = dict[str, object]
T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
YEAR = 360 * 86400.0
TEXTS = ["增设社区健身器材", "小区电梯故障，请尽快维修", "楼上邻居每晚装修噪音扰民",
         "物业费上涨不合理", "异地就医报销流程咨询", "垃圾分类推进缓慢", "楼道违建占用消防通道",
         "老旧小区停车难，建议错峰停车", "社区充电桩不足", "养老助餐点太远"]  # fmt: skip
RETOLD = ["优化绿化景观", "请协调处理", "居民反映问题，请处理"]


def log(message: str) -> None:
    print(f"[projections] {message}", file=sys.stderr, flush=True)


# -- generating a county-year of events -------------------------------------------------------


def build_case(
    rng: random.Random, rules: RuleSet, units: dict[str, list[str]], start: float,
    random_ids: bool = False,
) -> list[CaseEvent]:  # fmt: skip
    """One case's history as events (built through the aggregate, so it is legal). Its id
    is made as the engine makes it (time-ordered), or random as for idempotent filings."""
    at = T0 + timedelta(seconds=start)
    case_id: UUID = uuid4() if random_ids else new_case_id(at)
    household = rng.choice(units["household"])
    village, township = household[:12], household[:9]
    category = rng.choice(sorted(rules.categories))
    urgency = rng.choices(list(Urgency), weights=[85, 12, 3])[0]
    text = rng.choice(TEXTS)
    case = Case.file(
        case_id=case_id, at=at, number=f"B{int(start)}", household_unit=household, channel="visit",
        category=category, urgency=urgency, title=text[:8], description=text, location="",
        reporter=Reporter(), raised_at=at - timedelta(hours=rng.choice([0, 0, 0, 1, 30])),
        fingerprint="",
    )  # fmt: skip
    level, unit = rng.choice([(Level.HOUSEHOLD, household), (Level.VILLAGE, village),
                              (Level.TOWNSHIP, township)])  # fmt: skip

    def due(hours: float) -> datetime:
        return at + timedelta(hours=hours)

    case.route(
        at=at, rule_id="bench", rule_set_hash="bench", handler=unit, handler_level=level,
        co_handlers=(), ladder=(township, township[:6]), dispatcher=township,
        respond_due=due(12), resolve_due=due(72),
    )  # fmt: skip

    def later(mean_hours: float) -> datetime:
        nonlocal at
        at = at + timedelta(hours=rng.expovariate(1 / mean_hours))
        return at

    if rng.random() < 0.05 and unit != township:
        case.return_(at=later(3), unit=unit, actor="x", reason=rng.choice(list(ReturnReason)),
                     note="", dispatcher_level=Level.TOWNSHIP)  # fmt: skip
        unit, level = township, Level.TOWNSHIP
    case.accept(at=later(6), unit=unit, actor="x")
    if rng.random() < 0.3:
        to = rng.choice(units["department"])
        summary = rng.choice([text, text + "。", *RETOLD])
        case.refer(
            at=later(4), from_unit=unit, to_unit=to, to_level=Level.DEPARTMENT, actor="x",
            summary=summary, category=category, urgency=urgency,
            respond_due=due(24 * 10), resolve_due=due(24 * 20),
        )  # fmt: skip
        unit = to
        case.accept(at=later(8), unit=unit, actor="x")
    elif rng.random() < 0.07 and case.ladder:
        case.escalate(
            at=later(20), to_unit=case.ladder[0], to_level=Level.TOWNSHIP,
            trigger=EscalationTrigger.SLA_BREACH, actor="timer", summary=rng.choice(["", text]),
            respond_due=due(24 * 10), resolve_due=due(24 * 20),
        )  # fmt: skip
        unit = case.unit
        case.accept(at=later(5), unit=unit, actor="x")
    if start + (at - T0).total_seconds() - start < YEAR - start or rng.random() < 0.9:
        case.resolve(at=later(30), unit=unit, actor="x", outcome=rng.choice(list(Outcome)),
                     resolution="done")  # fmt: skip
        if rng.random() < 0.7:
            case.rate(at=later(24), score=rng.choice([2, 3, 4, 5, 5, 5]),
                      request_matched=rng.random() < 0.85, comment="")  # fmt: skip
            case.close(at=later(2), reason=CloseReason.RATED, actor="x")
    return [e for e in case.collect_events() if isinstance(e, CaseEvent)]


def generate(
    service: CaseService, rules: RuleSet, n_events: int, seed: int = 1, random_ids: bool = False
) -> int:
    rng = random.Random(seed)
    units: dict[str, list[str]] = {"household": [], "department": []}
    for u in rules.jurisdiction.units():
        if u.level.value in units:
            units[u.level.value].append(u.code)
    cases = max(1, round(n_events / 5.6))
    written, started = 0, time.perf_counter()
    # The log is in recorded order, as a live system writes it (each event is appended when
    # it happens): a case's events go into the log among those of the cases filed while it
    # was open, not all at its filing. Cases are built in filing order and none has an
    # event before its filing, so an event can be written once it is earlier than the next
    # case's filing (a heap holds the others). Until 2026-12-04 the histories of 1,000
    # cases were sorted among themselves only: 76 % of the events came after a later one
    # (by 4 days at the median, 13 at most), and each case's events came together.
    pending: list[tuple[datetime, int, CaseEvent]] = []
    chunk: list[CaseEvent] = []
    seq = 0
    for i in range(cases):
        for event in build_case(rng, rules, units, YEAR * i / cases, random_ids):
            heapq.heappush(pending, (event.timestamp, seq, event))
            seq += 1
        horizon = T0 + timedelta(seconds=YEAR * (i + 1) / cases) if i < cases - 1 else None
        while pending and (horizon is None or pending[0][0] < horizon):
            chunk.append(heapq.heappop(pending)[2])
        if len(chunk) >= 5000 or (horizon is None and chunk):
            service.recorder.insert_events([service.mapper.to_stored_event(e) for e in chunk])
            written += len(chunk)
            if written // 100_000 != (written - len(chunk)) // 100_000:
                rate = written / (time.perf_counter() - started)
                log(f"generated {written:,} events ({rate:,.0f}/s)")
            chunk = []
    return written


# -- measurements -----------------------------------------------------------------------------


def raw_rate(service: CaseService, head: int, batch: int) -> float:
    """Read and decode every event of the log in the catch-up's batches; events per second."""
    started, position, n = time.perf_counter(), 0, 0
    while position < head:
        stored = service.recorder.select_notifications(
            start=position, limit=batch, inclusive_of_start=False
        )
        if not stored:
            break
        for notification in stored:
            service.mapper.to_domain_event(notification)
            n += 1
        position = stored[-1].id
    return n / (time.perf_counter() - started)


def json_rate(service: CaseService, head: int, batch: int) -> float:
    """Read every event and decode only its JSON (no pydantic model), as the folds do: a
    batch at a time, with the cyclic garbage collector paused (it would rescan the batch's
    records some fifteen times per batch: half the rate)."""
    with no_cyclic_gc():
        return _json_rate(service, head, batch)


def _json_rate(service: CaseService, head: int, batch: int) -> float:
    started, position, n = time.perf_counter(), 0, 0
    decode = Decoder(service.mapper)
    while position < head:
        stored = service.recorder.select_notifications(
            start=position, limit=batch, inclusive_of_start=False
        )
        if not stored:
            break
        decode.many([(s.id, s.originator_id, s.topic, s.state) for s in stored])
        n += len(stored)
        position = stored[-1].id
    return n / (time.perf_counter() - started)


def folding_rate(service: CaseService, views: ViewStore, head: int) -> float:
    """The folding process alone: read, decode and fold every batch for all read models and
    record their writes, as the pipelined catch-up's first process does, but send them
    nowhere (every state stays remembered, so none is read back); events per second. The
    catch-up cannot run faster than this, however cheap its writes."""
    fanout = Fanout(
        service.recorder, service.mapper, views, Projections(views).current(),
        batch_size=catch_up_batch(views), cache_size=1 << 40,
    )  # fmt: skip
    positions = dict.fromkeys((m.name for m in fanout.models), 0)
    started = time.perf_counter()
    with no_cyclic_gc():
        while (start := min(positions.values())) < head:
            folded_batch = fanout._fold_recorded(start, positions)
            if folded_batch is None:
                break
            last, _, folded = folded_batch
            for name, states in folded.items():
                fanout._remember(fanout._cache[name], states)
                positions[name] = last
    return head / (time.perf_counter() - started)


class CatchUp(NamedTuple):
    rate: float  # events per second
    folding_cpu: float  # CPU seconds of this process (read, decode, fold, send)
    writer_cpu: float  # CPU seconds of the view writer process (0 in one process)


def catch_up_rate(
    service: CaseService, views: ViewStore, head: int, pipeline: bool = True
) -> CatchUp:
    """All read models caught up from 0 as `lianhu projections rebuild` does it (with the
    store's default batch): events per second, and the CPU time of the folding process
    and of the writer process (a child, counted once it has exited; a PostgreSQL server's
    own CPU is not counted)."""
    projections = Projections(views)
    fanout = Fanout(
        service.recorder, service.mapper, views, projections.current(),
        batch_size=catch_up_batch(views), pipeline=pipeline,
    )  # fmt: skip
    started, last = time.perf_counter(), [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 10:
            last[0] = time.perf_counter()
            log(f"catch-up {done:,}/{total:,} ({done / (last[0] - started):,.0f}/s)")

    before = os.times()
    fanout.catch_up(progress)
    wall, after = time.perf_counter() - started, os.times()
    return CatchUp(
        head / wall,
        after.user + after.system - before.user - before.system,
        after.children_user + after.children_system
        - before.children_user - before.children_system,
    )  # fmt: skip


def latencies(
    client: TestClient, rounds: int, rng: random.Random, rules: RuleSet
) -> dict[str, list[float]]:
    townships = ["510123001", "510123002", "510123101"]
    below = {level: [u.code for u in rules.jurisdiction.units() if u.level.value == level]
             for level in ("village", "household")}  # fmt: skip

    def when() -> str:
        return (T0 + timedelta(seconds=rng.uniform(0.1, 1.0) * YEAR)).isoformat()

    queries: dict[str, Callable[[], dict[str, Any]]] = {
        "response-times": lambda: {"kind": rng.choice(["assignment", "first", "resolution"])},
        "response-times by level, as_of": lambda: {
            "kind": "first",
            "group_by": "level",
            "as_of": when(),
        },
        "response-times township, range": lambda: {
            "kind": "resolution",
            "unit": rng.choice(townships),
            "since": (T0 + timedelta(days=rng.randint(0, 100))).isoformat(),
            "until": when(),
        },
        "distortion": lambda: {},
        "distortion as_of": lambda: {"as_of": when()},
        "board": lambda: {},
        "board as_of": lambda: {"as_of": when()},
        "indicators": lambda: {},
        "indicators as_of, township": lambda: {"as_of": when(), "unit": rng.choice(townships)},
        "heatmap county, the whole year": lambda: {},
        "heatmap township, one to eleven months": lambda: {
            "unit": rng.choice(townships),
            "since": (T0 + timedelta(days=rng.randint(0, 300))).isoformat(),
            "until": (T0 + timedelta(days=330)).isoformat(),
        },
        "cases (page of 50)": lambda: {"status": rng.choice(["accepted", "closed", None])},
        "cases township, light": lambda: {"unit": rng.choice(townships), "light": "red"},
        "response-times by unit, the whole year": lambda: {
            "kind": rng.choice(["assignment", "first", "resolution"]),
            "group_by": "unit",
        },
        # the same over the calendar year (Beijing): bounded, so the periods inside it and
        # its edges are read, not the all-time rows
        "response-times by unit, calendar year": lambda: {
            "kind": rng.choice(["assignment", "first", "resolution"]),
            "group_by": "unit",
            "since": "2026-01-01T00:00:00+08:00",
            "until": "2027-01-01T00:00:00+08:00",
        },
        "response-times township, by unit": lambda: {
            "kind": "resolution",
            "unit": rng.choice(townships),
            "group_by": "unit",
        },
        # narrower than a township: from the facts, through the unit index
        "response-times village, by level": lambda: {
            "kind": "resolution",
            "unit": rng.choice(below["village"]),
            "group_by": "level",
        },
        "indicators household": lambda: {"unit": rng.choice(below["household"])},
        "cases household": lambda: {"unit": rng.choice(below["household"])},
    }
    paths = {"cases": "/v1/cases"}
    out: dict[str, list[float]] = {}
    for name, params in queries.items():
        base = name.split(" ")[0]
        path = paths.get(base, f"/v1/metrics/{base}")
        times = []
        client.get(path, params={k: v for k, v in params().items() if v is not None})  # warm-up
        for _ in range(rounds):
            p = {k: v for k, v in params().items() if v is not None}
            started = time.perf_counter()
            response = client.get(path, params=p)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (name, response.text)
        out[name] = times
    return out


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.99 + 0.5) - 1)]


POSTGRES_EVENTS = 200_000  # the suite's PostgreSQL run (generating 10^6 there takes long)


def main(
    quick: bool = False, events: int | None = None, postgres: bool | None = None,
    random_ids: bool = False,
) -> list[Row]:  # fmt: skip
    """SQLite (`postgres=False`), PostgreSQL (`True`) or both (None: the suite's default,
    PostgreSQL on POSTGRES_EVENTS unless `events` is given)."""
    rows: list[Row] = []
    if postgres is not True:
        rows += run(quick, events, None, random_ids)
    if postgres is not False:
        with PostgresServer() as server:
            dsn = server.create_database("bench_projections")
            n = events or (None if quick or postgres else POSTGRES_EVENTS)
            rows += run(quick, n, dsn, random_ids, server)
    return rows


CATCH_UPS = 3  # catch-ups per store in a full run, each between two raw readings


def run(
    quick: bool, events: int | None, dsn: str | None, random_ids: bool = False,
    server: PostgresServer | None = None,
) -> list[Row]:  # fmt: skip
    n = events or (20_000 if quick else 1_000_000)
    rounds = 30 if quick else 100
    catch_ups = 1 if quick else CATCH_UPS
    store = "postgres" if dsn else "sqlite"
    rules = load_rule_set(default_rule_set_path())
    tmp = Path(tempfile.mkdtemp(prefix="lianhu-bench-projections-"))
    rows: list[Row] = []

    def fresh_views(i: int) -> ViewStore:
        """An empty view store for the i-th catch-up (PostgreSQL: a database of its own)."""
        if server is not None:
            return ViewStore(postgres_url=server.create_database(f"bench_views_{i}"))
        return ViewStore(sqlite_path=str(tmp / f"views-{i}.db"))

    def discard(views: ViewStore, i: int) -> None:
        views.close()
        if server is not None:
            server.drop_database(f"bench_views_{i}")
        for path in tmp.glob(f"views-{i}.db*"):
            path.unlink()

    try:
        clock = FakeClock(T0 + timedelta(seconds=YEAR + 86400 * 30))
        env = postgres_env(dsn) if dsn else sqlite_env(str(tmp / "lianhu.db"))
        service = CaseService(rules=rules, clock=clock, env=env)
        log(f"generating {n:,} events ({store}, {tmp})")
        started = time.perf_counter()
        generate(service, rules, n, random_ids=random_ids)
        log(f"generated in {time.perf_counter() - started:,.0f} s")
        head = service.recorder.max_notification_id() or 0
        views = fresh_views(0)
        batch = catch_up_batch(views)
        log(f"reading and decoding {head:,} events, {batch:,} a batch")
        readings = [raw_rate(service, head, batch)]
        log(f"raw read+decode {readings[0]:,.0f} events/s; reading JSON only")
        json_only = json_rate(service, head, batch)
        log(f"JSON only {json_only:,.0f} events/s; folding alone (no view writes)")
        folding = folding_rate(service, views, head)
        log(f"folding alone {folding:,.0f} events/s")
        # Catch-ups and raw readings alternate, and the baseline is the fastest reading of
        # the run: a slow spell during a reading cannot flatter a ratio (one run read
        # 45,600 raw before its first catch-up and 29,600-33,600 after, the catch-ups
        # steady at 15,800-17,200: the readings next to each would have made 0.35-0.57 of
        # the same code). The figure is the median catch-up's, all three shown.
        runs: list[CatchUp] = []
        for i in range(catch_ups):
            if i:
                discard(views, i - 1)
                views = fresh_views(i)
            log(f"catching up all read models ({i + 1} of {catch_ups})")
            runs.append(catch_up_rate(service, views, head))
            readings.append(raw_rate(service, head, batch))
            log(f"catch-up {runs[-1].rate:,.0f} events/s; raw read+decode {readings[-1]:,.0f}")
        log("raw read+decode " + " / ".join(f"{r:,.0f}" for r in readings) + " events/s")
        raw = max(readings)
        folds = [r.rate for r in runs]
        median = sorted(runs)[len(runs) // 2]
        fold = median.rate
        ratio = fold / raw
        serial = 0.0
        if not dsn:  # what the writer process adds (SQLite; PostgreSQL's writes run in its server)
            serial_views = ViewStore(sqlite_path=str(tmp / "views-one-process.db"))
            serial = catch_up_rate(service, serial_views, head, pipeline=False).rate
            serial_views.close()
            log(f"catch-up in one process {serial:,.0f} events/s (ratio {serial / raw:.3f})")
        spread = " / ".join(f"{f / raw:.3f}" for f in folds)
        which = f"; the median of {len(folds)}: {spread}" if len(folds) > 1 else ""
        rows.append({
            "measurement": f"catch-up rate, all 5 read models, {head:,} events (as `lianhu "
                           f"projections rebuild` runs it{which})",
            "store": store, "value": round(fold), "unit": "events/s",
            "baseline": "raw read + decode of the same events, same store, same run (the "
                        "fastest of the readings before, between and after the catch-ups)",
            "baseline_value": round(raw), "ratio": round(ratio, 3), "target": "ratio >= 0.5",
            "verdict": "pass" if ratio >= 0.5 else "FAIL",
        })  # fmt: skip
        if serial:
            rows.append({
                "measurement": f"  same, in one process (no writer process), {head:,} events",
                "store": store, "value": round(serial), "unit": "events/s",
                "baseline": "raw read + decode of the same events, same store, same run",
                "baseline_value": round(raw), "ratio": round(serial / raw, 3),
                "target": "-", "verdict": "info",
            })  # fmt: skip
        # where the time goes: µs of CPU per event in each process of the median catch-up,
        # against the raw reading's µs per event; on 2 cores no schedule of that much work
        # reads faster than 2 x raw / (folding + writer) of the raw rate
        us = 1e6 / head
        f_us, w_us, raw_us = median.folding_cpu * us, median.writer_cpu * us, 1e6 / raw
        split = (
            f"folding process {f_us:.1f} us + writer process {w_us:.1f} us"
            if w_us
            else f"{f_us:.1f} us in one process (too few events for the writer process)"
        )
        rows.append({
            "measurement": f"  CPU per event in the median catch-up: {split}; the ratio shown "
                           f"is the most two cores could reach with that work (2 x raw / total)",
            "store": store, "value": round(f_us + w_us, 1), "unit": "us CPU/event",
            "baseline": "raw read + decode, us per event (the fastest reading)",
            "baseline_value": round(raw_us, 1), "ratio": round(2 * raw_us / (f_us + w_us), 3),
            "target": "-", "verdict": "info",
        })  # fmt: skip
        rows.append({
            "measurement": f"  the folding process alone: read, decode, fold, the writes "
                           f"recorded and dropped (the most the pipelined catch-up can reach; "
                           f"it reached {fold / folding:.2f} of it), {head:,} events",
            "store": store, "value": round(folding), "unit": "events/s",
            "baseline": "raw read + decode of the same events, same store, same run",
            "baseline_value": round(raw), "ratio": round(folding / raw, 3), "target": "-",
            "verdict": "info",
        })  # fmt: skip
        rows.append({
            "measurement": f"read + JSON decode only (the folds' input: no pydantic), "
                           f"{head:,} events",
            "store": store, "value": round(json_only), "unit": "events/s",
            "baseline": "raw read + decode of the same events, same store, same run",
            "baseline_value": round(raw), "ratio": round(json_only / raw, 3), "target": "-",
            "verdict": "info",
        })  # fmt: skip
        settings = Settings(data_dir=tmp, database_url=dsn, rules_dir=None)
        app = create_app(service, settings)
        app.state.projections = Projections(views)
        log(f"query latency, {rounds} requests per endpoint")
        # What the generator and the catch-ups left in this process is not a server's: frozen,
        # the cyclic GC's full collections do not rescan it. Left in, one collection (~80 ms
        # in --quick) was the p99 of whichever endpoint it fell in.
        gc.collect()
        gc.freeze()
        with TestClient(app) as client:
            for name, times in latencies(client, rounds, random.Random(2), rules).items():
                worst = p99(times)
                rows.append({
                    "measurement": f"GET {name}: p99 latency ({rounds} requests)",
                    "store": store, "value": round(worst, 2), "unit": "ms",
                    "baseline": "median of the same requests",
                    "baseline_value": round(statistics.median(times), 2),
                    "ratio": round(worst / max(statistics.median(times), 1e-9), 2),
                    "target": "< 50 ms", "verdict": "pass" if worst < 50 else "FAIL",
                })  # fmt: skip
        views.close()
        service.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def print_table(rows: list[Row]) -> None:
    cols = ["measurement", "store", "value", "unit", "baseline_value", "ratio", "target", "verdict"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 events instead of 1,000,000")
    parser.add_argument("--events", type=int, default=None, help="how many events to generate")
    stores = parser.add_mutually_exclusive_group()
    stores.add_argument("--postgres", action="store_true", help="only on a throwaway PostgreSQL")
    stores.add_argument("--sqlite", action="store_true", help="only on SQLite")
    parser.add_argument(
        "--random-ids", action="store_true",
        help="random case ids (as idempotent filings get) instead of the engine's time-ordered",
    )  # fmt: skip
    args = parser.parse_args()
    store = True if args.postgres else False if args.sqlite else None
    print_table(main(args.quick, args.events, store, args.random_ids))

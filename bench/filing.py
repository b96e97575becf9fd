"""Filing rate against the bare eventsourcing append rate, on SQLite and PostgreSQL (issue 2).

For each store, in the same run and on the same kind of store:

1. bare append: a plain `eventsourcing` Application (library defaults) saving one small
   aggregate (one created event, a short string) per `save()`, single caller;
2. filing (validate + route + due times + number), one petition per transaction, single
   caller. The ratio 2/1 is the figure; target >= 0.5. Steps 1 and 2 are interleaved in
   short rounds (ROUND_SIZE saves each, ABBA order) so that a noisy neighbour on the
   machine slows both alike;
3. filing with CALLERS concurrent callers of one CaseService (group commit shares
   transactions); target >= 1,000 petitions/s on PostgreSQL. The average batch that
   group commit reached is read from the service;
4. bare batched append: CALLERS threads each saving B small aggregates per `save()`, with
   B = the aggregates per transaction that group commit reached (a filing writes 3 events
   in 2 aggregates: the case, with PetitionFiled + CaseRouted, and its CaseNumbered index);
5. over HTTP: uvicorn (uvloop + httptools when installed) serving `api.app:create_app` in
   its own process, CALLERS keep-alive connections from bench.http_load; petitions/s and
   latency p50/p99 beside the in-process rate, and `GET /healthz` as the ceiling of
   server + load generator on this machine.

Every loop stops at its count or its time limit, whichever comes first.

    python -m bench.filing [--quick] [--store sqlite|postgres] [--single-only] [--no-http]

`--store sqlite --single-only` is the quick check of the single-caller ratio on SQLite.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import orjson
import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.http_load import get_request, loop_name, post_request, run_load
from bench.workload import petitions
from engine.clock import SystemClock
from engine.commands import FilePetition
from engine.persistence import postgres_env, sqlite_env
from engine.servers import PostgresServer, free_port
from engine.service import CaseService
from routing_rules import RuleSet, default_rule_set_path, load_rule_set

Row = dict[str, object]
ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
CALLERS = 32
ROUND_SIZE = 50  # single-caller bare/filing interleaving: saves of each per round
PG_TARGET = 1000.0
EVENTS_PER_FILING = 3
AGGREGATES_PER_FILING = 2

NOTES = """\
How to read the filing figures:

- A filing writes 3 events in 2 aggregates (the case: PetitionFiled + CaseRouted; its
  number index: CaseNumbered) in one transaction; the bare baseline writes 1 event in 1
  aggregate per save. "1 per transaction" compares petitions/s with saves/s (transactions).
  The concurrent row compares petitions/s with the bare batched append's aggregates/s at
  the same aggregates per transaction; the events/s row below it compares stored events.
- Bare append and filing (1 per transaction) run interleaved in short rounds (50 saves
  each, ABBA order), so a noisy neighbour slows both alike; every measurement is bounded
  by a count and a time limit.
- "sqlite" is a file on disk with synchronous=FULL: each commit waits for its fsync, and
  when the disk is busy both sides wait alike, which flatters the ratio. "sqlite,
  memory-backed" is the same store on /dev/shm: no fsync wait, both sides pure CPU — the
  worst case for the ratio, and the one the target must also meet.
- HTTP: uvicorn (uvloop, httptools) runs `api.app:create_app` in its own process on the
  store just measured; the load comes from bench/http_load.py (raw asyncio keep-alive
  connections; httpx's AsyncClient capped near 250 requests/s here and would have
  measured itself). "server CPU per petition" is the uvicorn process tree's CPU time
  divided by the petitions filed; the GET /healthz ceiling bounds server + load generator.
- The load generator, the API server and PostgreSQL share the machine's cores.
"""


@dataclass(frozen=True)
class Sizes:
    single: int  # saves per single-caller measurement
    many: int  # filings / aggregates per concurrent measurement
    http: int  # requests per HTTP measurement
    seconds: float  # time limit of each measurement
    warmup: int  # untimed operations before each measurement
    http_warmup: int  # untimed requests before each HTTP measurement (every worker warms)


FULL = Sizes(single=3000, many=8000, http=6000, seconds=15.0, warmup=100, http_warmup=500)
QUICK = Sizes(single=300, many=600, http=400, seconds=4.0, warmup=20, http_warmup=60)


def log(message: str) -> None:
    print(f"[filing] {message}", file=sys.stderr, flush=True)


class Note(Aggregate):
    """The smallest useful aggregate: one created event with a short string."""

    @event("Noted")
    def __init__(self, text: str) -> None:
        self.text = text


class Bare(Application[Any]):
    """The library with its defaults, on the same store."""


@dataclass
class Tally:
    """Units done and seconds spent, summed over rounds."""

    units: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.units / self.seconds if self.seconds else 0.0


def run_single(n: int, seconds: float, step: Callable[[int], int], start: int, tally: Tally) -> int:
    """Run `step(i)` (returning units done) until n units or `seconds`; adds to tally."""
    done = 0
    i = start
    began = time.perf_counter()
    stop_at = began + seconds
    while done < n and time.perf_counter() < stop_at:
        done += step(i)
        i += 1
    tally.units += done
    tally.seconds += time.perf_counter() - began
    return i


def run_concurrent(n: int, seconds: float, callers: int, step: Callable[[int], int]) -> Tally:
    """`callers` threads, started together, sharing n calls of `step(i)` (each returns
    the units it did); units done and seconds taken."""
    work = itertools.count()  # next() on itertools.count is atomic in CPython
    done = [0] * callers
    errors: list[BaseException] = []
    start = threading.Barrier(callers + 1)
    stop_at = 0.0

    def worker(w: int) -> None:
        start.wait()
        try:
            while time.perf_counter() < stop_at:
                i = next(work)
                if i >= n:
                    return
                done[w] += step(i)
        except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(callers)]
    for t in threads:
        t.start()
    began = time.perf_counter()
    stop_at = began + seconds
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return Tally(sum(done), elapsed)


def row(
    measurement: str,
    store: str,
    value: float,
    unit: str,
    baseline: str = "-",
    baseline_value: float | None = None,
    target: str = "report",
    ok: bool | None = None,
) -> Row:
    ratio = value / baseline_value if baseline_value else None
    return {
        "measurement": measurement,
        "store": store,
        "value": round(value, 2 if value < 100 else 0),
        "unit": unit,
        "baseline": baseline,
        "baseline_value": round(baseline_value) if baseline_value else None,
        "ratio": round(ratio, 2) if ratio is not None else None,
        "target": target,
        "verdict": "-" if ok is None else ("pass" if ok else "FAIL"),
    }


@dataclass(frozen=True)
class Store:
    name: str  # "sqlite" or "postgres"
    env_for: Callable[[str], dict[str, str]]  # a fresh store per name
    server_env: dict[str, str]  # LIANHU_* settings for the HTTP server (the filing store)


def measure(
    store: Store, rules: RuleSet, sizes: Sizes, http: bool, single_only: bool = False
) -> list[Row]:
    name = store.name
    rows: list[Row] = []
    cmds = commands(rules, sizes.single + sizes.many + 2 * sizes.warmup + sizes.http_warmup)
    bare = Bare(env=store.env_for("bare"))
    service = CaseService(rules=rules, clock=SystemClock(), env=store.env_for("filing"))
    try:

        def save_note(i: int) -> int:
            bare.save(Note(text=f"n{i}"))
            return 1

        def file_one(i: int) -> int:
            service.file_petition(cmds[i % len(cmds)])
            return 1

        # 1 + 2: single caller, one per transaction, interleaved in rounds
        rounds = max(1, sizes.single // ROUND_SIZE)
        log(f"{name}: bare append vs filing, 1 per transaction, 1 caller, {rounds} rounds")
        run_single(sizes.warmup, sizes.seconds, save_note, -sizes.warmup, Tally())
        run_single(sizes.warmup, sizes.seconds, file_one, 0, Tally())
        bare_one, filing_one = Tally(), Tally()
        i_bare, i_file = 0, sizes.warmup
        per_round, round_seconds = sizes.single // rounds, sizes.seconds / rounds
        for r in range(rounds):  # short rounds, in ABBA order, so noise hits both alike
            if r % 2 == 0:
                i_bare = run_single(per_round, round_seconds, save_note, i_bare, bare_one)
            i_file = run_single(per_round, round_seconds, file_one, i_file, filing_one)
            if r % 2 == 1:
                i_bare = run_single(per_round, round_seconds, save_note, i_bare, bare_one)
        ratio = filing_one.rate / bare_one.rate
        log(
            f"{name}:   bare append {bare_one.rate:,.0f}/s ({bare_one.units} saves), "
            f"filing {filing_one.rate:,.0f}/s ({filing_one.units}): ratio {ratio:.2f}"
        )
        rows.append(
            row(
                "filing, 1 petition/tx, 1 caller",
                name,
                filing_one.rate,
                "petitions/s",
                "bare append, 1 aggregate/tx, 1 caller (saves/s)",
                bare_one.rate,
                ">= 0.5 x baseline",
                ratio >= 0.5,
            )
        )
        if single_only:
            return rows

        # 3: concurrent callers of the service; group commit batches them
        log(f"{name}: filing, {CALLERS} concurrent callers (group commit)")
        commit = service._filings
        base = i_file
        before_batches, before_items = commit.batches, commit.items
        filing_many = run_concurrent(
            sizes.many, sizes.seconds, CALLERS, lambda i: file_one(base + i)
        )
        batches = commit.batches - before_batches
        batch = (commit.items - before_items) / batches if batches else 1.0
        log(
            f"{name}:   {filing_many.rate:,.0f} petitions/s ({filing_many.units} in "
            f"{filing_many.seconds:.1f} s), avg batch {batch:.1f} petitions/tx"
        )

        # 4: bare batched append, the same aggregates per transaction
        per_save = max(1, round(batch * AGGREGATES_PER_FILING))
        log(f"{name}: bare append, {per_save} aggregates/save, {CALLERS} callers")

        def save_notes(i: int) -> int:
            bare.save(*[Note(text=f"b{i}-{k}") for k in range(per_save)])
            return per_save

        saves = -(-2 * sizes.many * AGGREGATES_PER_FILING // per_save)  # twice the filings'
        bare_many = run_concurrent(saves, sizes.seconds, CALLERS, save_notes)
        log(f"{name}:   {bare_many.rate:,.0f} aggregates/s (= events/s, 1 event each)")
        is_pg = name == "postgres"
        rows.append(
            row(
                f"filing, {CALLERS} callers, group commit (avg {batch:.1f} petitions/tx)",
                name,
                filing_many.rate,
                "petitions/s",
                f"bare append, {per_save} aggregates/save, {CALLERS} callers (aggregates/s)",
                bare_many.rate,
                ">= 1,000/s on PostgreSQL" if is_pg else "report",
                filing_many.rate >= PG_TARGET if is_pg else None,
            )
        )
        rows.append(
            row(
                f"  same, as events/s ({EVENTS_PER_FILING} events in "
                f"{AGGREGATES_PER_FILING} aggregates per petition)",
                name,
                filing_many.rate * EVENTS_PER_FILING,
                "events/s",
                "bare batched append (events/s)",
                bare_many.rate,
            )
        )
    finally:
        service.close()
        bare.close()
    if http:
        rows += over_http(store, cmds, sizes, filing_many.rate)
    return rows


def commands(rules: RuleSet, n: int) -> list[FilePetition]:
    stream = petitions(rules, seed=7)
    return [next(stream) for _ in range(n)]


# -- over HTTP ---------------------------------------------------------------------------------


def server_command(port: int) -> list[str]:
    """uvicorn serving create_app(); uvloop and httptools named explicitly when installed."""
    command = [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory"]
    command += ["--host", HOST, "--port", str(port), "--log-level", "warning", "--no-access-log"]
    for option, module in (("--loop", "uvloop"), ("--http", "httptools")):
        try:
            __import__(module)
        except ImportError:
            log(f"{module} is not installed: uvicorn picks its pure-Python fallback")
        else:
            command += [option, module]
    return command


def api_ready() -> str | None:
    """Why the HTTP benchmark cannot run, or None."""
    try:
        from api.app import create_app  # noqa: F401 - only checking that it imports
    except ImportError as error:
        return f"api.app.create_app is not importable ({error})"
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_contract(port: int, body: dict[str, Any]) -> None:
    """One filing through httpx2: 201, a Location, a case number (the raw client only
    checks statuses)."""
    response = httpx2.post(f"http://{HOST}:{port}/v1/cases", json=body, timeout=30)
    if response.status_code != 201:
        raise RuntimeError(f"POST /v1/cases answered {response.status_code}: {response.text}")
    if not response.headers.get("location", "").startswith("/v1/cases/"):
        raise RuntimeError(f"POST /v1/cases: no Location header ({dict(response.headers)})")
    if not response.json().get("number"):
        raise RuntimeError(f"POST /v1/cases: no case number in {response.text}")


def over_http(store: Store, cmds: list[FilePetition], sizes: Sizes, in_process: float) -> list[Row]:
    """One uvicorn worker (the shape `lianhu serve` runs), then one per core."""
    name = store.name
    why_not = api_ready()
    if why_not is not None:
        log(f"{name}: over HTTP SKIPPED: {why_not}")
        return [row("filing over HTTP", name, 0.0, "-", target=f"skipped: {why_not}")]
    bodies = [orjson.dumps(c.model_dump(mode="json")) for c in cmds]
    rows: list[Row] = []
    cores = os.cpu_count() or 1
    for workers in (1, cores) if cores > 1 else (1,):
        with api_server(store, workers) as (port, pids):
            if workers == 1:
                check_contract(port, orjson.loads(bodies[0]))
                log(f"{name}: over HTTP, GET /healthz, {CALLERS} connections (ceiling)")
                health = [get_request(HOST, port, "/healthz")]
                run_load(
                    HOST,
                    port,
                    health,
                    n=sizes.http_warmup,
                    seconds=sizes.seconds,
                    connections=CALLERS,
                    expect=200,
                )
                ceiling = run_load(
                    HOST,
                    port,
                    health,
                    n=sizes.http,
                    seconds=sizes.seconds,
                    connections=CALLERS,
                    expect=200,
                )
                log(f"{name}:   {ceiling.rate:,.0f} requests/s")
            shape = f"{workers} uvicorn worker{'s' if workers > 1 else ''}"
            log(f"{name}: over HTTP, POST /v1/cases, {shape}, {CALLERS} connections")
            posts = [post_request(HOST, port, "/v1/cases", b) for b in bodies]
            run_load(
                HOST,
                port,
                posts[: sizes.http_warmup],
                n=sizes.http_warmup,
                seconds=sizes.seconds,
                connections=CALLERS,
                expect=201,
            )
            before = tree_cpu_seconds(pids())
            filed = run_load(
                HOST,
                port,
                posts[sizes.http_warmup :],
                n=sizes.http,
                seconds=sizes.seconds,
                connections=CALLERS,
                expect=201,
            )
            server_cpu = tree_cpu_seconds(pids()) - before
        p50, p99 = filed.percentile(0.50), filed.percentile(0.99)
        log(
            f"{name}:   {filed.rate:,.0f} petitions/s ({filed.count} in {filed.elapsed:.1f} s), "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, server CPU "
            f"{server_cpu / max(1, filed.count) * 1e3:.2f} ms/petition"
        )
        is_pg = name == "postgres"
        rows += [
            row(
                f"filing over HTTP, {shape}, {CALLERS} connections",
                name,
                filed.rate,
                "petitions/s",
                f"in-process, {CALLERS} callers (petitions/s)",
                in_process,
                "report (1,000/s is the in-process target)" if is_pg else "report",
            ),
            row("  latency p50", name, p50, "ms"),
            row("  latency p99", name, p99, "ms"),
            row("  server CPU per petition", name, server_cpu / max(1, filed.count) * 1e3, "ms"),
        ]
        if workers == 1:
            rows += [
                row(
                    "  load generator CPU per request",
                    name,
                    filed.client_cpu / max(1, filed.count) * 1e3,
                    "ms",
                ),
                row(
                    f"  HTTP ceiling: GET /healthz, 1 worker, {CALLERS} connections",
                    name,
                    ceiling.rate,
                    "requests/s",
                ),
            ]
    return rows


@contextmanager
def api_server(store: Store, workers: int) -> Iterator[tuple[int, Callable[[], list[int]]]]:
    """uvicorn serving the app on a free port; yields the port and a way to list the
    server's processes (the master and its workers)."""
    port = free_port()
    command = server_command(port) + (["--workers", str(workers)] if workers > 1 else [])
    server = subprocess.Popen(
        command, env={**os.environ, **store.server_env, "PYTHONPATH": str(ROOT)}, cwd=ROOT
    )
    try:
        wait_until_up(f"http://{HOST}:{port}/healthz", server, deadline=time.monotonic() + 60)
        yield port, lambda: [server.pid, *children(server.pid)]
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def children(pid: int) -> list[int]:
    """Direct child processes of pid (Linux /proc; empty elsewhere)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def tree_cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_seconds(p) or 0.0 for p in pids)


def wait_until_up(url: str, server: subprocess.Popen[bytes], *, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the API server exited with {server.returncode}")
        try:
            if httpx2.get(url, timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


# -- the run -----------------------------------------------------------------------------------


@contextmanager
def scratch_dir(under: Path | None = None) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lianhu-bench-", dir=under))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def postgres_version(server: PostgresServer) -> str:
    with server.connect() as conn:
        found = conn.execute("SHOW server_version").fetchone()
    return str(found[0]) if found else "?"


SHM = Path("/dev/shm")


def sqlite_in(folder: Path) -> Callable[[str], dict[str, str]]:
    """A fresh SQLite store per name, under `folder`."""

    def env_for(name: str) -> dict[str, str]:
        (folder / name).mkdir(exist_ok=True)
        return sqlite_env(str(folder / name / "lianhu.db"))

    return env_for


def main(
    quick: bool = False,
    http: bool = True,
    stores: tuple[str, ...] = ("sqlite", "postgres"),
    single_only: bool = False,
) -> list[Row]:
    """The rows for `stores`; `single_only` measures only the single-caller ratio."""
    sizes = QUICK if quick else FULL
    http = http and not single_only
    impl = psycopg.pq.__impl__
    log(f"psycopg {psycopg.__version__}, libpq implementation: {impl!r}")
    if impl != "binary":
        log("WARNING: psycopg is not using its C build (psycopg-binary); PostgreSQL is slower")
    if http:
        log(f"HTTP load generator: bench.http_load on {loop_name()}, {CALLERS} connections")
    rules = load_rule_set(default_rule_set_path())
    rows: list[Row] = []
    with scratch_dir() as d:
        sqlite = Store("sqlite", sqlite_in(d), {"LIANHU_DATA_DIR": str(d / "filing")})
        if "sqlite" in stores:
            rows += measure(sqlite, rules, sizes, http, single_only)
    if "sqlite" in stores and SHM.is_dir():
        # The same on a memory-backed file: no fsync to wait for, so both sides are pure
        # CPU. A busy disk flatters the ratio (both wait on it alike); this is its worst case.
        with scratch_dir(SHM) as d:
            shm = Store("sqlite, memory-backed", sqlite_in(d), {})
            log("sqlite on a memory-backed file (/dev/shm): the CPU-bound worst case")
            rows += measure(shm, rules, sizes, False, True)
    if "postgres" not in stores:
        return rows
    log("starting a throwaway PostgreSQL")
    with PostgresServer() as server:
        log(f"PostgreSQL {postgres_version(server)} on {HOST}:{server.port}")
        postgres = Store(
            "postgres",
            lambda name: postgres_env(server.create_database(f"bench_{name}"), pool_size=40),
            {
                "LIANHU_DATABASE_URL": server.dsn_for("bench_filing"),
                "LIANHU_POSTGRES_POOL_SIZE": "20",
            },
        )
        rows += measure(postgres, rules, sizes, http, single_only)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Filing rate vs bare eventsourcing append.")
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP measurements")
    parser.add_argument(
        "--store",
        action="append",
        choices=("sqlite", "postgres"),
        help="measure only this store (repeatable; default: both)",
    )
    parser.add_argument(
        "--single-only",
        action="store_true",
        help="only the single-caller filing vs bare append ratio (no concurrency, no HTTP)",
    )
    args = parser.parse_args()
    from bench.__main__ import table

    rows = main(
        quick=args.quick,
        http=not args.no_http,
        stores=tuple(args.store or ("sqlite", "postgres")),
        single_only=args.single_only,
    )
    print(table(rows))

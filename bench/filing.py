"""Filing rate against the bare eventsourcing append rate, on SQLite and PostgreSQL (issue 2).

For each store, in the same run:
1. bare append, one small aggregate per save (one transaction each), single caller;
2. filing (validate + route + due times + number), one petition per transaction, single
   caller; the ratio 2/1 is the figure (target >= 0.5);
3. bare batched append: C callers each saving B small aggregates per save;
4. filing with C concurrent callers of the service (group commit shares transactions);
   target >= 1,000 petitions/s on PostgreSQL; a filing writes 3 events in 2 aggregates
   (the case and its number index), so it is shown beside the bare batched rate;
5. the same over HTTP: uvicorn serving the app, C concurrent keep-alive clients.

    python -m bench.filing [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.workload import petitions
from engine.clock import SystemClock
from engine.persistence import postgres_env, sqlite_env
from engine.servers import PostgresServer, free_port
from engine.service import CaseService
from routing_rules import RuleSet, default_rule_set_path, load_rule_set

Row = dict[str, object]
ROOT = Path(__file__).resolve().parents[1]
CALLERS = 32


def log(message: str) -> None:
    print(f"[filing] {message}", file=sys.stderr, flush=True)


class Note(Aggregate):
    """The smallest useful aggregate: one created event with a short string."""

    @event("Noted")
    def __init__(self, text: str) -> None:
        self.text = text


class Bare(Application[Any]):
    """The library with its defaults, on the same store."""


def timed(n: int, seconds: float, step: Callable[[int], int]) -> float:
    """Run `step(i)` (returning how many units it did) until n units or the time is up."""
    done = 0
    began = time.perf_counter()
    i = 0
    while done < n and time.perf_counter() - began < seconds:
        done += step(i)
        i += 1
    return done / (time.perf_counter() - began)


def concurrent(n: int, seconds: float, callers: int, step: Callable[[int], int]) -> float:
    """`callers` threads sharing n units of work; units per second."""
    lock = threading.Lock()
    counter = [0]
    began = time.perf_counter()
    stop_at = began + seconds

    def worker(w: int) -> None:
        i = 0
        while time.perf_counter() < stop_at:
            with lock:
                if counter[0] >= n:
                    return
            did = step(w * 1_000_000 + i)
            i += 1
            with lock:
                counter[0] += did

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counter[0] / (time.perf_counter() - began)


def row(
    measurement: str,
    store: str,
    value: float,
    unit: str,
    baseline: str,
    baseline_value: float | None,
    target: str,
    ok: bool | None,
) -> Row:
    ratio = value / baseline_value if baseline_value else None
    return {
        "measurement": measurement,
        "store": store,
        "value": round(value, 1),
        "unit": unit,
        "baseline": baseline,
        "baseline_value": round(baseline_value, 1) if baseline_value else None,
        "ratio": round(ratio, 2) if ratio is not None else None,
        "target": target,
        "verdict": "-" if ok is None else ("pass" if ok else "FAIL"),
    }


def measure(
    store: str,
    env_for: Callable[[str], dict[str, str]],
    rules: RuleSet,
    n: int,
    seconds: float,
    http: bool,
    server_env: dict[str, str],
) -> list[Row]:
    rows: list[Row] = []
    bare = Bare(env=env_for("bare"))
    log(f"{store}: bare append, 1 aggregate per transaction")
    bare_one = timed(n, seconds, lambda i: (bare.save(Note(text=f"n{i}")), 1)[1])
    service = CaseService(rules=rules, clock=SystemClock(), env=env_for("filing"))
    stream = petitions(rules, seed=7)
    cmds = [next(stream) for _ in range(n * 2)]
    log(f"{store}: filing, 1 petition per transaction")
    filing_one = timed(n, seconds, lambda i: (service.file_petition(cmds[i % len(cmds)]), 1)[1])
    rows.append(
        row(
            "filing, 1 per transaction",
            store,
            filing_one,
            "petitions/s",
            "bare append, 1 aggregate/tx",
            bare_one,
            ">= 0.5 x",
            filing_one >= 0.5 * bare_one,
        )
    )

    log(f"{store}: filing with {CALLERS} concurrent callers (group commit)")
    commit = service._filings
    before_batches, before_items = commit.batches, commit.items
    filing_many = concurrent(
        n * 2, seconds, CALLERS, lambda i: (service.file_petition(cmds[i % len(cmds)]), 1)[1]
    )
    batches = commit.batches - before_batches
    batch = (commit.items - before_items) / batches if batches else 1.0
    b = max(1, round(batch))
    log(f"{store}: bare batched append, {b} aggregates per save, {CALLERS} callers")
    bare_batched = concurrent(
        n * 4,
        seconds,
        CALLERS,
        lambda i: (bare.save(*[Note(text=f"b{i}-{k}") for k in range(2 * b)]), 2 * b)[1],
    )
    target_ok = filing_many >= 1000 if store == "postgres" else None
    rows.append(
        row(
            f"filing, {CALLERS} callers (avg batch {batch:.1f})",
            store,
            filing_many,
            "petitions/s",
            f"bare append, {2 * b} aggregates/tx, aggregates/s",
            bare_batched,
            ">= 1000/s on PostgreSQL",
            target_ok,
        )
    )
    service.close()
    bare.close()
    if http:
        bodies = [c.model_dump(mode="json") for c in cmds]
        rows += over_http(store, server_env, bodies, n, seconds, filing_many)
    return rows


def over_http(
    store: str,
    server_env: dict[str, str],
    bodies: list[dict[str, Any]],
    n: int,
    seconds: float,
    in_process: float,
) -> list[Row]:
    """The app in its own process (uvicorn, uvloop and httptools when installed), the
    load from this one: CALLERS concurrent keep-alive requests, n in all or `seconds`."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**os.environ, **server_env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", deadline=time.monotonic() + 30)
        log(f"{store}: over HTTP, {CALLERS} concurrent clients")
        latencies, elapsed = asyncio.run(load(port, bodies, n, seconds))
    finally:
        server.terminate()
        server.wait(10)
    rate = len(latencies) / elapsed
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return [
        row(
            f"filing over HTTP, {CALLERS} clients",
            store,
            rate,
            "petitions/s",
            f"in-process, {CALLERS} callers",
            in_process,
            "report",
            None,
        ),
        row("filing over HTTP, latency p50", store, p50, "ms", "-", None, "report", None),
        row("filing over HTTP, latency p99", store, p99, "ms", "-", None, "report", None),
    ]


def wait_until_up(url: str, *, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


async def load(
    port: int, bodies: list[dict[str, Any]], n: int, seconds: float
) -> tuple[list[float], float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=CALLERS, max_keepalive_connections=CALLERS)
    began = time.perf_counter()
    stop_at = began + seconds
    counter = iter(range(n))
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
    ) as client:

        async def worker() -> None:
            for i in counter:
                if time.perf_counter() > stop_at:
                    return
                sent = time.perf_counter()
                response = await client.post("/v1/cases", json=bodies[i % len(bodies)])
                response.raise_for_status()
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(worker() for _ in range(CALLERS)))
    return latencies, time.perf_counter() - began


@contextmanager
def sqlite_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lianhu-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(quick: bool = False) -> list[Row]:
    n = 300 if quick else 3000
    seconds = 5.0 if quick else 20.0
    rules = load_rule_set(default_rule_set_path())
    rows: list[Row] = []
    with sqlite_dir() as d:

        def lite(name: str) -> dict[str, str]:
            (d / name).mkdir(exist_ok=True)
            return sqlite_env(str(d / name / "lianhu.db"))

        rows += measure(
            "sqlite",
            lite,
            rules,
            n,
            seconds,
            http=True,
            server_env={"LIANHU_DATA_DIR": str(d / "filing")},
        )
    log("starting a throwaway PostgreSQL")
    with PostgresServer() as server:
        rows += measure(
            "postgres",
            lambda name: postgres_env(server.create_database(f"bench_{name}"), pool_size=40),
            rules,
            n,
            seconds,
            http=True,
            server_env={
                "LIANHU_DATABASE_URL": server.dsn_for("bench_filing"),
                "LIANHU_POSTGRES_POOL_SIZE": "20",
            },
        )
    return rows


def print_table(rows: list[Row]) -> None:
    for r in rows:
        print(
            " | ".join(
                str(r[k])
                for k in (
                    "measurement",
                    "store",
                    "value",
                    "unit",
                    "baseline_value",
                    "ratio",
                    "verdict",
                )
            )
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    print_table(main(quick=parser.parse_args().quick))

"""Benchmark of the NATS relay (issue 5), on SQLite and a throwaway nats-server (file storage).

1. Relay throughput: case events read from the store, enveloped, published and
   acknowledged (position committed), from position 0 to the head, beside the raw rate of
   nats-py publishing the same payloads (same subjects, same ids) to a second stream of
   the same server in the same run, `publish_async` with 256 acks in flight.
   Target: relay rate ≥ 0.5 × raw rate.
2. End-to-end latency from commit (the event's recorded time, taken just before its
   transaction) to receipt by a JetStream consumer, while petitions are filed at a steady
   1,000 case events/s (500 filings/s, each filed + routed). Target: p99 < 100 ms.

    python -m bench.relay [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import nats
import orjson
from nats.aio.msg import Msg

from bench.workload import petitions
from engine import commands as c
from engine.bus import RelayConfig, StreamSpec, ensure_stream, run_relay
from engine.clock import SystemClock
from engine.outbox import Outbox, Outgoing
from engine.persistence import sqlite_env
from engine.servers import NatsServer
from engine.service import CaseService
from engine.viewstore import ViewStore
from routing_rules import default_rule_set_path, load_rule_set

Row = dict[str, object]
WINDOW = 256


def log(message: str) -> None:
    print(f"[relay] {message}", file=sys.stderr, flush=True)


@contextmanager
def store() -> Iterator[tuple[CaseService, ViewStore]]:
    path = Path(tempfile.mkdtemp(prefix="lianhu-bench-relay-"))
    rules = load_rule_set(default_rule_set_path())
    service = CaseService(rules=rules, clock=SystemClock(), env=sqlite_env(str(path / "l.db")))
    views = ViewStore(sqlite_path=str(path / "views.db"))
    try:
        yield service, views
    finally:
        views.close()
        service.close()
        shutil.rmtree(path, ignore_errors=True)


def petitions_for(service: CaseService, n: int) -> list[c.FilePetition]:
    """`n` petitions from the county generator (bench.workload), made before timing starts."""
    stream = petitions(service.rules, seed=11)
    return [next(stream) for _ in range(n)]


def fill(service: CaseService, filings: int) -> None:
    """`filings` petitions from 4 threads (the service's group commit batches them)."""
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(service.file_petition, petitions_for(service, filings)))


# -- 1. throughput ---------------------------------------------------------------------------


def relay_rate(service: CaseService, views: ViewStore, url: str) -> tuple[float, int, int]:
    """Seconds for the relay to publish the whole log; case events; messages."""
    outbox = Outbox(service, views, prefix="cases")
    config = RelayConfig(url=url, stream=StreamSpec(), max_in_flight=WINDOW, batch_size=2000)
    stop = threading.Event()
    holder: list[object] = []
    thread = threading.Thread(
        target=lambda: holder.append(run_relay(outbox, config, stop)), daemon=True
    )
    head = outbox.head()
    began = time.perf_counter()
    thread.start()
    while outbox.position() < head:
        time.sleep(0.01)
    seconds = time.perf_counter() - began
    stop.set()
    thread.join(30)
    relay = holder[0]
    stats = relay.stats  # type: ignore[attr-defined]
    return seconds, stats.events, stats.messages


def all_messages(service: CaseService, views: ViewStore) -> list[Outgoing]:
    outbox = Outbox(service, views, prefix="cases", name="bench_raw")
    return outbox.read(0, outbox.head() + 1).messages


async def raw_rate(url: str, messages: list[Outgoing]) -> float:
    """Seconds for nats-py alone to publish the same payloads, `WINDOW` acks in flight."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(publish_async_max_pending=WINDOW)
        await ensure_stream(js, StreamSpec(name="RAW", prefix="raw"))
        began = time.perf_counter()
        futures = [
            await js.publish_async(
                "raw" + m.subject[len("cases") :], m.payload, headers={"Nats-Msg-Id": m.msg_id}
            )
            for m in messages
        ]
        await asyncio.wait_for(asyncio.gather(*futures), 60)
        return time.perf_counter() - began
    finally:
        await nc.close()


def throughput(quick: bool) -> list[Row]:
    filings = 3_000 if quick else 15_000
    rows: list[Row] = []
    with store() as (service, views), NatsServer() as server:
        log(f"filing {filings:,} petitions ({2 * filings:,} case events)")
        fill(service, filings)
        messages = all_messages(service, views)
        log(f"relaying {len(messages):,} messages")
        relay_seconds, events, sent = relay_rate(service, views, server.url)
        log(f"raw nats-py publishing of the same {len(messages):,} payloads")
        raw_seconds = asyncio.run(raw_rate(server.url, messages))
    assert sent == len(messages), (sent, len(messages))
    relay_eps, raw_eps = events / relay_seconds, events / raw_seconds
    ratio = relay_eps / raw_eps
    rows.append(
        {
            "measurement": f"relay throughput, {events:,} events as {sent:,} messages",
            "store": "sqlite",
            "value": round(relay_eps),
            "unit": "events/s",
            "baseline": f"nats-py publish_async of the same payloads, {WINDOW} acks in flight",
            "baseline_value": round(raw_eps),
            "ratio": round(ratio, 3),
            "target": "ratio >= 0.5",
            "verdict": "pass" if ratio >= 0.5 else "FAIL",
        }
    )
    return rows


# -- 2. latency ------------------------------------------------------------------------------


def latency(quick: bool) -> list[Row]:
    seconds = 3.0 if quick else 10.0
    rate = 500  # filings/s: 1,000 case events/s
    received: list[float] = []
    with store() as (service, views), NatsServer() as server:
        outbox = Outbox(service, views, prefix="cases")
        config = RelayConfig(url=server.url, stream=StreamSpec(), poll_interval=0.005)
        stop = threading.Event()
        relay = threading.Thread(target=run_relay, args=(outbox, config, stop), daemon=True)
        relay.start()
        consumer_ready = threading.Event()
        consumer = threading.Thread(
            target=lambda: asyncio.run(_consume(server.url, received, stop, consumer_ready)),
            daemon=True,
        )
        consumer.start()
        consumer_ready.wait(10)
        log(f"filing {rate} petitions/s for {seconds:.0f} s")
        todo = petitions_for(service, int(rate * seconds) + 10)
        began = time.perf_counter()
        filed = 0
        while (elapsed := time.perf_counter() - began) < seconds:
            due = int(elapsed * rate) + 1
            while filed < due:
                service.file_petition(todo[filed])
                filed += 1
            time.sleep(0.002)
        deadline = time.monotonic() + 10
        while outbox.position() < outbox.head() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the last receipts
        stop.set()
        relay.join(10)
        consumer.join(10)
    achieved = 2 * filed / seconds
    ms = sorted(received)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    common = {
        "store": "sqlite",
        "unit": "ms",
        "baseline": f"{achieved:,.0f} case events/s filed, {len(ms):,} messages received",
        "baseline_value": None,
        "ratio": None,
    }
    return [
        {
            "measurement": "end-to-end latency p50, commit to consumer",
            "value": round(p50, 1),
            "target": "-",
            "verdict": "info",
            **common,
        },
        {
            "measurement": "end-to-end latency p99, commit to consumer",
            "value": round(p99, 1),
            "target": "< 100 ms",
            "verdict": "pass" if p99 < 100 else "FAIL",
            **common,
        },
    ]


async def _consume(
    url: str, out: list[float], stop: threading.Event, ready: threading.Event
) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_stream(js, StreamSpec())

    async def on_message(msg: Msg) -> None:
        now = datetime.now(tz=UTC)
        recorded = datetime.fromisoformat(orjson.loads(msg.data)["recorded_at"])
        out.append((now - recorded).total_seconds() * 1000)

    await js.subscribe("cases.>", cb=on_message, ordered_consumer=True)
    ready.set()
    while not stop.is_set():
        await asyncio.sleep(0.05)
    await nc.close()


def main(quick: bool = False) -> list[Row]:
    return throughput(quick) + latency(quick)


def print_table(rows: list[Row]) -> None:
    cols = ["measurement", "store", "value", "unit", "baseline_value", "ratio", "target", "verdict"]
    print(" | ".join(cols))
    for row in rows:
        print(" | ".join(str(row.get(col, "")) for col in cols))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer events, shorter runs")
    print_table(main(quick=parser.parse_args().quick))

"""A department's own consumer of lianhu case events, with idempotent handling.

Needs only nats-py and the standard library. It follows the department's subjects with
a durable pull consumer, records each event in its own SQLite inbox keyed by the
envelope's `event_id` (a redelivered event is recognised and skipped), commits, and only
then acknowledges. Killed at any moment, it loses nothing and records nothing twice.

    python docs/examples/department_consumer.py --department housing --db housing.db
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time

import nats
from nats.js.api import AckPolicy, ConsumerConfig


def record(db: sqlite3.Connection, envelope: dict[str, object]) -> bool:
    """Handle one event once: False if this event_id was handled before (a redelivery)."""
    with db:  # one transaction: the inbox row and the department's own changes together
        cur = db.execute(
            "INSERT OR IGNORE INTO inbox (event_id, case_id, type, version) VALUES (?, ?, ?, ?)",
            (
                envelope["event_id"],
                envelope["case_id"],
                envelope["type"],
                envelope["aggregate_version"],
            ),
        )
        return cur.rowcount == 1


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("--stream", default="CASES")
    parser.add_argument("--prefix", default="cases")
    parser.add_argument("--department", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--ack-wait", type=float, default=30.0)
    parser.add_argument("--work-ms", type=float, default=0.0, help="simulated handling time")
    args = parser.parse_args()

    db = sqlite3.connect(args.db)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS inbox (event_id TEXT PRIMARY KEY, case_id TEXT, "
        "type TEXT, version INTEGER)"
    )
    subject = f"{args.prefix}.department.{args.department}.>"
    durable = f"dept_{args.department}"
    nc = await nats.connect(args.url)
    js = nc.jetstream()
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=args.ack_wait,
        filter_subject=subject,
    )
    sub = await js.pull_subscribe(subject, durable=durable, stream=args.stream, config=config)
    print("ready", flush=True)
    while True:
        try:
            msgs = await sub.fetch(args.batch, timeout=1)
        except nats.errors.TimeoutError:
            continue
        for msg in msgs:
            envelope = json.loads(msg.data)
            time.sleep(args.work_ms / 1000)  # the department's own work
            fresh = record(db, envelope)
            print("handled" if fresh else "duplicate", envelope["event_id"], flush=True)
        for msg in msgs:  # acknowledged only once the whole batch is committed
            await msg.ack_sync()


if __name__ == "__main__":
    asyncio.run(main())

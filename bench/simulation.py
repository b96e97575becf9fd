"""#6: the simulated county through the real engine.

    python -m bench.simulation [--quick]

1. `lianhu demo --weeks 4` on the default county, timed as a user runs it (a child
   process; two designs, each in its own process). Target: under a minute.
2. The engine's write rate while the simulation plays (commands, the SLA timer's
   lights and escalations: events recorded per second of simulated play, the
   projections' catch-up excluded), beside the bare eventsourcing append rate of one
   small aggregate per save on the same scratch medium in the same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

from bench.filing import Bare, Note, Row, row
from engine.persistence import sqlite_env
from engine.sim.run import Scenario, designs, play, scratch_dir

NOTES = """How to read the simulation figures:

- The demo row is the wall time of `lianhu demo --weeks 4` as a user runs it: two designs
  (relay chain, lianhu), each in its own process on a memory-backed scratch store,
  including start-up, the simulated play with its SLA timer, and the projections' catch-up.
- The play row counts every event the engine recorded (filings, actions, the timer's lights
  and escalations) per second of play. A simulation reads a case before each action and
  fires the timer between actions, so it records far fewer events per second than a bare
  append loop; the ratio says what the simulated people and timer cost, not the store.
"""


def log(message: str) -> None:
    print(f"[simulation] {message}", file=sys.stderr, flush=True)


def demo_wall_time(weeks: int) -> list[Row]:
    command = [sys.executable, "-m", "api.cli", "demo", "--weeks", str(weeks), "--json"]
    log(f"timing `lianhu demo --weeks {weeks}`")
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    took = time.perf_counter() - began
    results = json.loads(done.stdout)
    events = sum(int(r["events"]) for r in results)
    return [
        row(
            f"lianhu demo --weeks {weeks}, default county, 2 designs "
            f"({results[0]['cases']:,} petitions, {events:,} events)",
            "sqlite",
            took,
            "s",
            "the issue's limit (s)",
            60.0,
            "< 60 s",
            took < 60,
        )
    ]


def engine_rate(weeks: int) -> list[Row]:
    root = scratch_dir("lianhu-bench-sim-")
    try:
        log(f"playing {weeks} week(s) of the lianhu design in {root}")
        began = time.perf_counter()
        played = play(designs()["lianhu"], Scenario(weeks=weeks, settle_days=7), root / "sim")
        took = time.perf_counter() - began
        try:
            events = played.service.recorder.max_notification_id() or 0
        finally:
            played.close()
        bare = Bare(env=sqlite_env(str(root / "bare.db")))
        n = max(1000, events)
        log(f"bare append: {n:,} saves of one event")
        began = time.perf_counter()
        for i in range(n):
            bare.save(Note(text=f"note {i}"))
        bare_took = time.perf_counter() - began
        bare.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [
        row(
            f"simulated play, lianhu design, {weeks} week(s) + 7 days ({events:,} events)",
            "sqlite (memory-backed scratch)",
            events / took,
            "events/s",
            "bare append, 1 event per save, same medium (events/s)",
            n / bare_took,
        )
    ]


def main(quick: bool = False) -> list[Row]:
    return demo_wall_time(1 if quick else 4) + engine_rate(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1 simulated week instead of 4")
    for r in main(parser.parse_args().quick):
        print(r)

"""An SLA timer process on scaled simulated time, for the crash, race and takeover tests.

Prints `ready`, then `leader` when it wins leadership, then `done` once its clock has
passed `--until` and a whole round after that found nothing left to fire. The tests
SIGKILL it at random moments.
"""

from __future__ import annotations

import argparse
import threading
from datetime import datetime

from engine.persistence import postgres_env, sqlite_env
from engine.service import CaseService
from engine.simulation import ScaledClock
from engine.timer import AdvisoryLock, Leadership, SoleLeader, Timer
from engine.viewstore import ViewStore
from routing_rules import default_rule_set_path, load_rule_set


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sqlite")
    parser.add_argument("--views")
    parser.add_argument("--postgres")
    parser.add_argument("--start", required=True, help="simulated time at --real-start")
    parser.add_argument("--real-start", type=float, required=True)
    parser.add_argument("--scale", type=float, required=True)
    parser.add_argument("--until", required=True)
    parser.add_argument("--leader", action="store_true", help="take the advisory lock")
    args = parser.parse_args()
    clock = ScaledClock(datetime.fromisoformat(args.start), args.scale, args.real_start)
    until = datetime.fromisoformat(args.until)
    if args.sqlite:
        env, views = sqlite_env(args.sqlite), ViewStore(sqlite_path=args.views)
    else:
        env, views = postgres_env(args.postgres), ViewStore(postgres_url=args.postgres)
    service = CaseService(rules=load_rule_set(default_rule_set_path()), clock=clock, env=env)
    leadership: Leadership = AdvisoryLock(args.postgres) if args.leader else SoleLeader()
    timer = Timer(service, views, leadership=leadership, max_sleep=0.05, standby_interval=0.2)
    print("ready", flush=True)
    stop = threading.Event()
    led = False
    while not stop.is_set():
        if not timer.leadership.acquire():
            stop.wait(timer.standby_interval)
            continue
        if not led:
            print("leader", flush=True)
            led = True
        round_started = clock.now()
        timer.fire_due()
        if round_started > until:
            break
        stop.wait(timer.sleep_for())
    print("done", flush=True)


if __name__ == "__main__":
    main()

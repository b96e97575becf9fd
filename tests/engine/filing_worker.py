"""A process that files petitions as fast as it can and prints each acknowledged case id.

Run by the crash-safety tests, which SIGKILL it at a random moment and then
check that every case it printed is in the store, whole.
"""

from __future__ import annotations

import argparse
import sys
import threading

from engine import commands as c
from engine.clock import SystemClock
from engine.persistence import postgres_env, sqlite_env
from engine.service import CaseService
from routing_rules import Level, default_rule_set_path, load_rule_set


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sqlite")
    parser.add_argument("--postgres")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    env = sqlite_env(args.sqlite) if args.sqlite else postgres_env(args.postgres)
    rules = load_rule_set(default_rule_set_path())
    service = CaseService(rules=rules, clock=SystemClock(), env=env)
    households = [u.code for u in rules.jurisdiction.units() if u.level is Level.HOUSEHOLD]
    out = threading.Lock()
    print("ready", flush=True)

    def file_forever(worker: int) -> None:
        n = 0
        while True:
            n += 1
            filed = service.file_petition(
                c.FilePetition(
                    household_unit=households[(worker * 7919 + n) % len(households)],
                    category="neighbour_dispute",
                    title=f"噪音 {worker}-{n}",
                    description="楼上邻居深夜装修，影响休息。",
                ),
                idempotency_key=f"w{worker}-{n}" if n % 3 == 0 else None,
            )
            with out:
                sys.stdout.write(f"{filed.case_id} {filed.number}\n")
                sys.stdout.flush()

    threads = [
        threading.Thread(target=file_forever, args=(i,), daemon=True) for i in range(args.threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()

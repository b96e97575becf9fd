"""Several SLA timers on one PostgreSQL database: every light fires exactly once."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from uuid import UUID

import pytest

from engine.clock import FakeClock
from engine.persistence import postgres_env
from engine.service import CaseService
from routing_rules import RuleSet
from tests.engine.deadline_checks import (
    START,
    Scenario,
    check_exactly_once,
    file_cases,
    start_timer,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def filed(postgres_dsn: str, rules: RuleSet, n: int) -> tuple[CaseService, list[UUID]]:
    clock = FakeClock(START - timedelta(hours=24))
    service = CaseService(rules=rules, clock=clock, env=postgres_env(postgres_dsn))
    return service, file_cases(service, clock, n)


def test_two_timers_racing_without_a_leader_fire_each_light_once(
    postgres_dsn: str, rules: RuleSet
) -> None:
    service, ids = filed(postgres_dsn, rules, 100)
    scenario = Scenario(real_start=time.time())
    args = ["--postgres", postgres_dsn, *scenario.args()]  # no --leader: they really race

    timers = [start_timer(args), start_timer(args)]
    for proc in timers:
        wait_for(proc, "done", timeout=30)
        proc.wait(timeout=10)

    assert check_exactly_once(service, ids, scenario.until) >= 120
    service.close()


def test_a_standby_timer_takes_over_within_seconds_when_the_leader_dies(
    postgres_dsn: str, rules: RuleSet
) -> None:
    service, ids = filed(postgres_dsn, rules, 100)
    scenario = Scenario(real_start=time.time())
    args = ["--postgres", postgres_dsn, "--leader", *scenario.args()]
    leader = start_timer(args)
    wait_for(leader, "leader", timeout=10)
    standby = start_timer(args)

    time.sleep(1.5)
    assert leader.poll() is None and standby.poll() is None
    os.kill(leader.pid, signal.SIGKILL)
    died = time.monotonic()
    wait_for(standby, "leader", timeout=10)
    took_over = time.monotonic() - died
    wait_for(standby, "done", timeout=30)
    standby.wait(timeout=10)
    leader.wait(timeout=10)

    assert took_over < 3.0
    assert check_exactly_once(service, ids, scenario.until) >= 120
    service.close()

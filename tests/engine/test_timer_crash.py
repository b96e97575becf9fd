"""The timer can die at any moment: after a restart every due light fired exactly once."""

from __future__ import annotations

import os
import random
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest

from engine.clock import FakeClock
from engine.persistence import sqlite_env
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


@pytest.mark.slow
def test_sigkill_at_random_moments_fires_every_due_light_exactly_once(
    tmp_path: Path, rules: RuleSet
) -> None:
    db, views = str(tmp_path / "timer.db"), str(tmp_path / "views.db")
    clock = FakeClock(START - timedelta(hours=24))
    service = CaseService(rules=rules, clock=clock, env=sqlite_env(db))
    ids = file_cases(service, clock, 120)
    scenario = Scenario(real_start=time.time())
    args = ["--sqlite", db, "--views", views, *scenario.args()]
    rng = random.Random(11)

    for _ in range(4):  # killed mid-round, mid-sleep, mid-catch-up: wherever it is
        proc = start_timer(args)
        time.sleep(rng.uniform(0.1, 0.7))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
    last = start_timer(args)
    wait_for(last, "done", timeout=30)
    last.wait(timeout=10)

    assert check_exactly_once(service, ids, scenario.until) >= 150
    service.close()

"""A crash at any moment loses no acknowledged filing and leaves no case half-written."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from uuid import UUID

import pytest

from engine.clock import SystemClock
from engine.persistence import postgres_env, sqlite_env
from engine.service import CaseService
from routing_rules import RuleSet

ROOT = Path(__file__).resolve().parents[2]


def run_and_kill(args: list[str], *, min_acks: int, seed: int) -> dict[UUID, str]:
    """Start the filing worker, SIGKILL it at a random moment, return what it acknowledged."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.engine.filing_worker", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    acked: dict[UUID, str] = {}
    kill_after = min_acks + random.Random(seed).randrange(min_acks)
    deadline = time.monotonic() + 60
    while len(acked) < kill_after and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        case_id, number = line.split()
        acked[UUID(case_id)] = number
    os.kill(proc.pid, signal.SIGKILL)
    # what the worker wrote before dying was acknowledged too
    for line in proc.stdout.read().splitlines():
        if len(line.split()) == 2:
            case_id, number = line.split()
            acked[UUID(case_id)] = number
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= min_acks, "the worker did not get going"
    return acked


def check_store(service: CaseService, acked: dict[UUID, str]) -> None:
    # every acknowledged filing is there, filed and routed, under its number
    for case_id, number in acked.items():
        case = service.get_case(case_id)
        assert case.version == 2
        assert case.number == number
        assert service.find_case(number) == case_id
    # and no case in the store is half-written: filed and routed commit together
    topics: dict[UUID, list[str]] = defaultdict(list)
    max_id = service.recorder.max_notification_id() or 0
    for n in service.recorder.select_notifications(start=1, limit=max_id + 1):
        topics[UUID(str(n.originator_id))].append(n.topic)
    cases = {k: v for k, v in topics.items() if v[0] == "lianhu.PetitionFiled.v1"}
    numbers = {k: v for k, v in topics.items() if v[0] == "lianhu.CaseNumbered.v1"}
    assert len(cases) == len(numbers) >= len(acked)
    for case_topics in cases.values():
        assert case_topics[:2] == ["lianhu.PetitionFiled.v1", "lianhu.CaseRouted.v1"]


@pytest.mark.slow
def test_sigkill_during_filing_loses_nothing_on_sqlite(tmp_path: Path, rules: RuleSet) -> None:
    db = str(tmp_path / "crash.db")
    acked: dict[UUID, str] = {}
    for round_ in range(3):
        acked |= run_and_kill(["--sqlite", db], min_acks=150, seed=round_)

    service = CaseService(rules=rules, clock=SystemClock(), env=sqlite_env(db))
    check_store(service, acked)
    service.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkill_during_filing_loses_nothing_on_postgres(postgres_dsn: str, rules: RuleSet) -> None:
    acked: dict[UUID, str] = {}
    for round_ in range(3):
        acked |= run_and_kill(["--postgres", postgres_dsn], min_acks=150, seed=round_)

    service = CaseService(rules=rules, clock=SystemClock(), env=postgres_env(postgres_dsn))
    check_store(service, acked)
    service.close()

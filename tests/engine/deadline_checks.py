"""Shared by the timer process tests: a batch of cases coming due, and the exactly-once check."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

from engine import commands as c
from engine.clock import FakeClock
from engine.events import CaseEscalated, CaseRouted, SlaBreached, SlaWarned
from engine.service import CaseService
from engine.values import EscalationTrigger
from routing_rules import Urgency

ROOT = Path(__file__).resolve().parents[2]
HOUSEHOLD = "510123104201-01-01"
START = datetime.fromisoformat("2026-03-02T01:00:00+00:00")
SCALE = 4 * 3600.0  # one real second is four simulated hours
UNTIL = START + timedelta(hours=28)  # seven real seconds after the start


@dataclass(frozen=True)
class Scenario:
    """Simulated time, as every process of a test agrees on it."""

    real_start: float
    start: datetime = START
    scale: float = SCALE
    until: datetime = UNTIL

    def args(self) -> list[str]:
        return [
            f"--start={self.start.isoformat()}",
            f"--real-start={self.real_start}",
            f"--scale={self.scale}",
            f"--until={self.until.isoformat()}",
        ]


def file_cases(service: CaseService, clock: FakeClock, n: int) -> list[UUID]:
    """`n` urgent cases filed over the simulated day before START: lights due all along."""
    step = timedelta(hours=24) / n
    ids = []
    for i in range(n):
        clock.advance(seconds=step.total_seconds())
        filed = service.file_petition(
            c.FilePetition(
                household_unit=HOUSEHOLD,
                category="neighbour_dispute",
                urgency=Urgency.URGENT,
                title=f"噪音 {i}",
                description="楼上邻居深夜装修，影响休息。",
            )
        )
        ids.append(filed.case_id)
    return ids


def start_timer(args: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.engine.timer_worker", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def wait_for(proc: subprocess.Popen[str], line: str, timeout: float) -> None:
    """Read the worker's output until `line` (polls with a deadline; fails on timeout)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = proc.stdout.readline()
        if not got:
            raise AssertionError(f"worker exited before {line!r}: rc={proc.wait(5)}")
        if got.strip() == line:
            return
    raise AssertionError(f"no {line!r} within {timeout} s")


def check_exactly_once(service: CaseService, ids: list[UUID], until: datetime) -> int:
    """Every light of every assignment due by `until` fired exactly once; none ever twice.

    A plain walk over each case's history: an assignment (routing or escalation) sets
    two due times; its warnings and breaches name the due time they are for. Returns
    the number of breaches checked.
    """
    checked = 0
    for case_id in ids:
        history = service.history(case_id)
        fired = Counter(
            (type(e).__name__, e.kind.value, e.due)
            for e in history
            if isinstance(e, SlaWarned | SlaBreached)
        )
        assert all(n == 1 for n in fired.values()), f"{case_id} fired twice: {fired}"
        escalations = [e for e in history if isinstance(e, CaseEscalated)]
        assert all(e.trigger is EscalationTrigger.SLA_BREACH for e in escalations)
        assignments = [e for e in history if isinstance(e, CaseRouted | CaseEscalated)]
        for a in assignments:
            for kind, due in (("respond", a.respond_due), ("resolve", a.resolve_due)):
                if due <= until:
                    assert fired[("SlaWarned", kind, due)] == 1, (case_id, kind, due)
                    assert fired[("SlaBreached", kind, due)] == 1, (case_id, kind, due)
                    checked += 1
        # each breached resolve deadline moved the case up exactly one rung, at once
        resolve_breaches = [
            e for e in history if isinstance(e, SlaBreached) and e.kind.value == "resolve"
        ]
        for breach in resolve_breaches:
            after = history[breach.originator_version]  # versions count from 1
            if isinstance(after, CaseEscalated):
                assert after.timestamp == breach.timestamp
        assert len(escalations) <= len(resolve_breaches)
    return checked

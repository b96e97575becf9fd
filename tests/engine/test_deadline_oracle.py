"""Random commands and clock advances: the breaches recorded equal a plain, independent oracle.

The oracle below knows nothing of the aggregate, the read model or the timer. It walks
the case's assignment history (the commands the service accepted, with their times)
and works out from the SLA table alone which deadlines passed unmet, when, and where
each breached resolve deadline moved the case.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import commands as c
from engine.clock import FakeClock
from engine.errors import CaseError
from engine.events import SlaBreached
from engine.persistence import sqlite_env
from engine.service import CaseService
from engine.simulation import Simulation
from engine.values import DeadlineKind, Outcome, ReturnReason
from engine.viewstore import ViewStore
from routing_rules import Level, RuleSet, Urgency, deadlines_for

HOUSEHOLD = "510123104201-01-01"
START = datetime.fromisoformat("2026-03-02T09:00:00+08:00")
TARGETS = ["510123104201-01", "510123104201", "dept:housing", HOUSEHOLD]

COMMANDS = [
    "accept",
    "return",
    "refer",
    "escalate",
    "extend",
    "suspend",
    "resume",
    "resolve",
    "reopen",
    "wait",
]
Step = tuple[str, int, int]  # (command, parameter, hours to advance before it)

steps = st.lists(
    st.tuples(
        st.sampled_from(COMMANDS),
        st.integers(min_value=0, max_value=3),
        st.integers(min_value=0, max_value=72),
    ),
    max_size=12,
)


@dataclass
class Oracle:
    """The SLA rules, written out plainly over one case's assignment history."""

    rules: RuleSet
    unit: str
    level: Level
    ladder: list[str]
    dispatcher: str
    due: dict[str, datetime | None]
    active: bool = True
    paused_at: datetime | None = None
    transfers: int = 0
    fired: set[str] = field(default_factory=set)
    breaches: list[tuple[str, datetime, str]] = field(default_factory=list)

    def level_of(self, unit: str) -> Level:
        return self.rules.jurisdiction.unit(unit).level

    def assign(self, unit: str, at: datetime) -> None:
        self.unit, self.level = unit, self.level_of(unit)
        d = deadlines_for(self.rules, self.level, Urgency.NORMAL, at)
        self.due = {"respond": d.respond_due, "resolve": d.resolve_due}
        self.fired = set()

    def up_one_rung(self, at: datetime) -> None:
        rung = next((u for u in self.ladder if u != self.unit), None)
        if rung is not None:
            self.ladder = self.ladder[self.ladder.index(rung) + 1 :]
            self.assign(rung, at)

    def time_passes(self, until: datetime) -> None:
        """Breach, in time order, every running deadline due by `until`."""
        while self.active and self.paused_at is None:
            running = [
                (due, kind)
                for kind, due in self.due.items()
                if due is not None and due <= until and kind not in self.fired
            ]
            if not running:
                return
            due, kind = min(running)
            self.breaches.append((kind, due, self.unit))
            self.fired.add(kind)
            if kind == "resolve":
                self.up_one_rung(due)

    def transferred(self, at: datetime) -> None:
        self.transfers += 1
        if self.transfers == 3:
            self.up_one_rung(at)

    def command(self, name: str, at: datetime, data: dict[str, Any]) -> None:
        match name:
            case "accept":
                self.due["respond"] = None
            case "return":
                self.due["respond"], self.unit = None, self.dispatcher
                self.level = self.level_of(self.unit)
                self.transferred(at)
            case "refer":
                self.assign(data["to"], at)
                self.transferred(at)
            case "escalate":
                rung = self.ladder[0]
                self.ladder = self.ladder[1:]
                self.assign(rung, at)
            case "extend":
                self.due["resolve"] = data["new_due"]
                self.fired.discard("resolve")
            case "suspend":
                self.paused_at = at
            case "resume":
                assert self.paused_at is not None
                paused = at - self.paused_at
                self.due = {k: (d + paused if d else None) for k, d in self.due.items()}
                self.paused_at = None
            case "resolve":
                self.active = False
            case "reopen":
                self.active = True
                self.due["resolve"] = deadlines_for(
                    self.rules, self.level, Urgency.NORMAL, at
                ).resolve_due
                self.fired = set()


def act(service: CaseService, case_id: Any, name: str, param: int) -> dict[str, Any] | None:
    """Try a command on the real service; what the oracle needs to know, or None if refused."""
    case = service.get_case(case_id)
    unit, data = case.unit, dict[str, Any]()
    try:
        match name:
            case "accept":
                service.accept_case(case_id, c.AcceptCase(unit=unit, actor="a"))
            case "return":
                reason = ReturnReason.NOT_OUR_RESPONSIBILITY
                service.return_case(case_id, c.ReturnCase(unit=unit, actor="a", reason=reason))
            case "refer":
                data["to"] = TARGETS[param]
                service.refer_case(
                    case_id, c.ReferCase(unit=unit, to_unit=data["to"], actor="a", summary="转")
                )
            case "escalate":
                service.escalate_case(case_id, c.EscalateCase(actor="a"))
            case "extend":
                base = case.resolve_due or service.clock.now()
                data["new_due"] = base + timedelta(hours=6 * (param + 1))
                service.extend_deadline(
                    case_id, c.ExtendDeadline(new_due=data["new_due"], approver="b", reason="r")
                )
            case "suspend":
                service.suspend_case(case_id, c.SuspendCase(actor="a", reason="等待材料"))
            case "resume":
                service.resume_case(case_id, c.ResumeCase(actor="a"))
            case "resolve":
                service.resolve_case(
                    case_id,
                    c.ResolveCase(unit=unit, actor="a", outcome=Outcome.SOLVED, resolution="ok"),
                )
            case "reopen":
                service.reopen_case(case_id, c.ReopenCase(actor="r", reason="没解决"))
            case _:
                return None
    except CaseError:
        return None
    return data


def test_recorded_breaches_equal_the_oracle(rules: RuleSet) -> None:
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        derandomize=True,
    )
    @given(steps=steps)
    def check(steps: list[Step]) -> None:
        folder = Path(tempfile.mkdtemp(prefix="lianhu-oracle-"))
        clock = FakeClock(START)
        service = CaseService(rules=rules, clock=clock, env=sqlite_env(str(folder / "o.db")))
        views = ViewStore(sqlite_path=str(folder / "views.db"))
        try:
            sim = Simulation(service, views, clock)
            filed = service.file_petition(
                c.FilePetition(
                    household_unit=HOUSEHOLD,
                    category="neighbour_dispute",
                    title="噪音",
                    description="楼上装修",
                )
            )
            case = service.get_case(filed.case_id)
            assert case.respond_due is not None and case.resolve_due is not None
            oracle = Oracle(
                rules,
                unit=case.unit,
                level=case.level,
                ladder=list(case.ladder),
                dispatcher=case.dispatcher,
                due={"respond": case.respond_due, "resolve": case.resolve_due},
            )
            for name, param, hours in steps:
                sim.advance(hours=hours)
                oracle.time_passes(clock.now())
                data = act(service, filed.case_id, name, param)
                if data is not None:
                    oracle.command(name, clock.now(), data)
            sim.advance(days=20)
            oracle.time_passes(clock.now())

            recorded = [
                (e.kind.value, e.due, e.unit)
                for e in service.history(filed.case_id)
                if isinstance(e, SlaBreached)
            ]
            assert recorded == oracle.breaches
            assert all(
                e.timestamp == e.due
                for e in service.history(filed.case_id)
                if isinstance(e, SlaBreached)
            )
        finally:
            views.close()
            service.close()
            shutil.rmtree(folder, ignore_errors=True)

    check()


def test_the_oracle_is_not_vacuous(rules: RuleSet) -> None:
    """A case nobody touches breaches both deadlines and climbs its whole ladder."""
    oracle = Oracle(
        rules,
        unit=HOUSEHOLD,
        level=Level.HOUSEHOLD,
        ladder=[*TARGETS[:2], "510123104"],
        dispatcher="510123104",
        due={},
    )
    oracle.assign(HOUSEHOLD, START)
    oracle.time_passes(START + timedelta(days=60))
    assert [b[0] for b in oracle.breaches].count("resolve") == 4
    assert oracle.breaches[0][0] == DeadlineKind.RESPOND.value

"""Simulated time: play weeks of filings and actions in seconds, every light at its moment.

`Simulation` drives a service on a `FakeClock` together with its SLA timer: between
scheduled actions it moves the clock from one fire time to the next and fires what is
due there, so every warning and breach is recorded at exactly its simulated fire time,
as a timer that never sleeps late would. `play` generates a county's worth of random
filings and unit behaviour (accept, refer, return, extend, suspend, resolve, or let it
lapse) for the timer to police. `ScaledClock` runs simulated time faster than the wall
clock, for processes (a timer under test) that cannot be stepped by hand.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from engine import commands as c
from engine.case import Case
from engine.clock import FakeClock
from engine.errors import CaseError
from engine.service import CaseService
from engine.timer import Timer
from engine.values import DeadlineKind, Outcome, ReturnReason, Status
from engine.viewstore import ViewStore
from routing_rules import Level, Urgency


class ScaledClock:
    """Simulated time running `scale` times faster than the wall clock from `start`.

    Processes given the same `start`, `real_start` and `scale` agree on the time.
    """

    def __init__(self, start: datetime, scale: float, real_start: float | None = None) -> None:
        self.start = start
        self.scale = scale
        self.real_start = time.time() if real_start is None else real_start

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.real_start) * self.scale)


@dataclass
class Tally:
    """What a played simulation did."""

    filed: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    lights: int = 0

    def count(self, name: str) -> None:
        self.actions[name] = self.actions.get(name, 0) + 1


Action = Callable[[], object]


class Simulation:
    """A service, its timer and a fake clock, stepped together."""

    def __init__(self, service: CaseService, views: ViewStore, clock: FakeClock) -> None:
        if service.clock is not clock:
            raise ValueError("the service must run on the simulation's clock")
        self.service = service
        self.clock = clock
        self.views = views
        self.timer = Timer(service, views)
        self._agenda: list[tuple[datetime, int, Action]] = []
        self._seq = itertools.count()
        self.lights = 0

    # -- time ------------------------------------------------------------------------------------

    def run_until(self, when: datetime) -> int:
        """Move the clock to `when`, firing every light at its own fire time on the way."""
        fired = 0
        while True:
            fired += self.timer.fire_due()
            nxt = self.timer.next_fire_at(after=self.clock.now())
            if nxt is None or nxt > when:
                break
            self.clock.set(nxt)
        if when > self.clock.now():
            self.clock.set(when)
            fired += self.timer.fire_due()
        self.lights += fired
        return fired

    def advance(self, *, days: float = 0, hours: float = 0, minutes: float = 0) -> int:
        step = timedelta(days=days, hours=hours, minutes=minutes)
        return self.run_until(self.clock.now() + step)

    # -- an agenda of actions --------------------------------------------------------------------

    def at(self, when: datetime, action: Action) -> None:
        """Run `action` at simulated time `when` (after the lights due by then)."""
        heapq.heappush(self._agenda, (when, next(self._seq), action))

    def run_agenda(self, until: datetime) -> int:
        """Run every scheduled action up to `until` in time order, with the timer between."""
        ran = 0
        while self._agenda and self._agenda[0][0] <= until:
            when, _, action = heapq.heappop(self._agenda)
            self.run_until(max(when, self.clock.now()))
            action()
            ran += 1
        self.run_until(until)
        return ran

    # -- a county, played -------------------------------------------------------------------------

    def play(self, *, days: int, cases_per_day: int, seed: int = 0) -> Tally:
        """File `cases_per_day` random petitions a day for `days` days and let units act.

        Each unit behaves by a die roll: accept soon or late, refer, return, ask for
        more time, wait for the resident, resolve, or simply let the deadline lapse.
        """
        rng = random.Random(seed)
        rules = self.service.rules
        households = [u.code for u in rules.jurisdiction.units() if u.level is Level.HOUSEHOLD]
        categories = sorted(rules.categories)
        tally = Tally()
        start = self.clock.now()
        end = start + timedelta(days=days)
        for n in range(days * cases_per_day):
            when = start + timedelta(seconds=rng.uniform(0, days * 86400))
            self.at(when, self._filing(rng, households, categories, tally, n))
        self.run_agenda(end)
        tally.lights = self.lights
        return tally

    def _filing(
        self,
        rng: random.Random,
        households: list[str],
        categories: list[str],
        tally: Tally,
        n: int,
    ) -> Action:
        def file() -> None:
            filed = self.service.file_petition(
                c.FilePetition(
                    household_unit=rng.choice(households),
                    category=rng.choice(categories),
                    urgency=rng.choices(list(Urgency), weights=[85, 12, 3])[0],
                    title=f"模拟诉求 {n}",
                    description="模拟：居民反映的问题。",
                )
            )
            tally.filed += 1
            self._next_move(filed.case_id, rng, tally)

        return file

    def _next_move(self, case_id: UUID, rng: random.Random, tally: Tally) -> None:
        """Schedule what the unit holding the case does next, some hours from now."""
        delay = timedelta(hours=rng.expovariate(1 / 10))
        self.at(self.clock.now() + delay, lambda: self._move(case_id, rng, tally))

    def _move(self, case_id: UUID, rng: random.Random, tally: Tally) -> None:
        case = self.service.get_case(case_id)
        if not case.is_open:
            return
        name = self._pick(case, rng.random())
        if name == "lapse":
            tally.count(name)  # nobody acts again; the timer will
            return
        try:
            self._do(name, case)
            tally.count(name)
        except CaseError:
            tally.refused += 1
        if name != "resolve":
            self._next_move(case_id, rng, tally)

    @staticmethod
    def _pick(case: Case, roll: float) -> str:
        if case.status is Status.SUSPENDED:
            return "resume"
        if roll < 0.08:
            return "lapse"
        if case.status is Status.ROUTED and roll < 0.15:
            return "return"
        if case.status in (Status.ROUTED, Status.RETURNED):
            return "accept"
        if roll < 0.2 and case.ladder:
            return "refer"
        if roll < 0.3 and case.resolve_due is not None:
            return "extend"
        return "suspend" if roll < 0.4 else "resolve"

    def _do(self, name: str, case: Case) -> None:
        s, case_id, unit, actor = self.service, case.id, case.unit, "sim"
        match name:
            case "resume":
                s.resume_case(case_id, c.ResumeCase(actor=actor))
            case "return":
                reason = ReturnReason.NOT_OUR_RESPONSIBILITY
                s.return_case(case_id, c.ReturnCase(unit=unit, actor=actor, reason=reason))
            case "accept":
                s.accept_case(case_id, c.AcceptCase(unit=unit, actor=actor))
            case "refer":
                s.refer_case(
                    case_id,
                    c.ReferCase(unit=unit, to_unit=case.ladder[0], actor=actor, summary="转办"),
                )
            case "extend":
                assert case.resolve_due is not None
                s.extend_deadline(
                    case_id,
                    c.ExtendDeadline(
                        kind=DeadlineKind.RESOLVE,
                        new_due=case.resolve_due + timedelta(days=2),
                        approver="leader",
                        reason="需要现场核实",
                    ),
                )
            case "suspend":
                s.suspend_case(case_id, c.SuspendCase(actor=actor, reason="等待居民补充材料"))
            case _:
                s.resolve_case(
                    case_id,
                    c.ResolveCase(
                        unit=unit, actor=actor, outcome=Outcome.SOLVED, resolution="已处理"
                    ),
                )

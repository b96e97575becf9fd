"""Play a county through the real engine on simulated time.

`play` builds a fresh store in a scratch directory (SQLite for events and views), a
`CaseService` on a `FakeClock`, the SLA timer (`engine.simulation.Simulation`), and
then files every arrival at the moment its leader records it. From then on a
`Player` acts for the people in the chain through the service's public commands,
exactly as a client of the HTTP API would: accept, pass on (escalate or refer,
retold), return, resolve, suspend and resume, rate, reopen, close, withdraw. The
timer fires every yellow and red light at its own simulated moment, and escalates
breached cases up their ladders. Afterwards the projections catch up from the log
and `engine.sim.report` reads the figures from them: the simulator never counts
anything itself.

Who can settle a case is ground truth from the petition's template (`Draft.owner`),
unknown to the engine: a holder that does not own the matter passes it on along the
case's ladder (or, at the township, dispatches it), a department returns what is not
its own, and the owner accepts and resolves it.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

from engine import commands as c
from engine.case import Case
from engine.clock import FakeClock
from engine.errors import CaseError
from engine.persistence import sqlite_env
from engine.service import CaseService
from engine.sim.arrivals import Arrival, Rhythm, arrivals
from engine.sim.behaviour import BEHAVIOURS, LIANHU, RELAY, SATISFIED, Behaviour
from engine.sim.county import SIZES, County, from_rule_set, generate, size_for_leaders
from engine.sim.retell import Retelling, first_telling, retell
from engine.simulation import Simulation
from engine.values import CloseReason, Outcome, ReturnReason, Status
from engine.viewstore import ViewStore
from routing_rules import Level, RuleSet, default_rule_set_path, load_rule_set
from routing_rules.evaluate import resolve_target

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
DEFAULT_START = datetime(2026, 3, 2, 0, 0, tzinfo=BEIJING)  # a Monday, after the Spring Festival
DISPUTES = frozenset({"neighbour_dispute", "property_dispute"})
MISREADINGS = frozenset({"swap", "generalise"})

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def scratch_dir(prefix: str) -> Path:
    """A fresh folder for a throwaway store: memory-backed (/dev/shm) when there is one,
    since a scratch store needs no disk."""
    shm = Path("/dev/shm")
    under = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=under))


@dataclass(frozen=True)
class Design:
    """A routing design: a rule set and the people who work it."""

    name: str
    rules_dir: Path
    behaviour: Behaviour


def relay_rules_dir() -> Path:
    """The old relay chain's rule set (shipped beside the default)."""
    return default_rule_set_path().parent / "relay_chain"


def designs() -> dict[str, Design]:
    return {
        "relay": Design("relay", relay_rules_dir(), RELAY),
        "lianhu": Design("lianhu", default_rule_set_path(), LIANHU),
    }


def design_for(rules_dir: Path, behaviour: str = "lianhu", name: str | None = None) -> Design:
    """A planner's rule set, worked by the people of `behaviour` (lianhu or relay)."""
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {behaviour!r}; choose from {sorted(BEHAVIOURS)}")
    return Design(name or rules_dir.name, rules_dir, BEHAVIOURS[behaviour])


@dataclass(frozen=True)
class Scenario:
    """What to simulate: the same scenario gives the same events, byte for byte."""

    seed: int = 2026
    weeks: int = 4
    county_size: str = "default"  # "default" (the rule set's own units), a SIZES name, or leaders
    settle_days: int = 14  # after the last filing, people keep working off the backlog
    start: datetime = DEFAULT_START
    rhythm: Rhythm = field(default_factory=Rhythm)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=7 * self.weeks + self.settle_days)


def build_county(scenario: Scenario, rules: RuleSet) -> County:
    size = scenario.county_size
    if size == "default":
        return from_rule_set(rules, seed=scenario.seed)
    if size in SIZES:
        return generate(SIZES[size], rules, seed=scenario.seed)
    if size.isdigit():
        return generate(size_for_leaders(int(size)), rules, seed=scenario.seed)
    choices = ", ".join(["default", *SIZES, "<number of household leaders>"])
    raise ValueError(f"unknown county size {size!r}; choose from {choices}")


def prepare_rules(design: Design, scenario: Scenario, workdir: Path) -> tuple[RuleSet, County]:
    """Copy the design's rule set into `workdir/rules`, with the scenario's county in it."""
    base = load_rule_set(design.rules_dir)  # fails early, naming file and rule, if it is bad
    county = build_county(scenario, base)
    target = workdir / "rules"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(design.rules_dir, target, symlinks=False)
    if scenario.county_size != "default":
        county.write(target)
    return load_rule_set(target), county


@dataclass
class Truth:
    """What the engine does not know about a case: who can settle it, how it was retold."""

    arrival: Arrival
    owner: str
    joint: tuple[str, ...]
    telling: Retelling
    misread: bool = False
    suspended: bool = False
    reopened: bool = False


@dataclass
class Tally:
    filed: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    refused: int = 0

    def count(self, name: str) -> None:
        self.actions[name] = self.actions.get(name, 0) + 1


Key = tuple[str, int, int]


class Player:
    """Acts for every person in the chain, through the service's public commands."""

    def __init__(self, sim: Simulation, behaviour: Behaviour, *, seed: int) -> None:
        self.sim = sim
        self.service = sim.service
        self.rules = sim.service.rules
        self.b = behaviour
        self.rng = random.Random(f"behaviour:{behaviour.name}:{seed}")
        self.seed = seed
        self.truth: dict[UUID, Truth] = {}
        self.tally = Tally()
        self.departments = sorted(u.code for u in self.rules.jurisdiction.departments())

    # -- scheduling ------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.sim.clock.now()

    def later(self, delay: timedelta, action: Callable[[], None]) -> None:
        self.sim.at(self.now() + delay, action)

    @staticmethod
    def key(case: Case) -> Key:
        return (case.unit, case.hops, case.returns)

    def schedule_turn(self, case: Case) -> None:
        """The holder acts some time after the case reached it (sooner if it heeds the light)."""
        lag = self.b.act[case.level].draw(self.rng)
        if case.respond_due is not None and self.rng.random() < self.b.heed:
            window = case.respond_due - self.now()
            if window > timedelta(0):
                lag = min(lag, window * self.rng.uniform(0.2, 0.9))
        key = self.key(case)
        self.later(lag, lambda: self.turn(case.id, key))

    def schedule_resolve(self, case: Case) -> None:
        lag = self.b.resolve[case.level].draw(self.rng)
        if case.resolve_due is not None and self.rng.random() < self.b.heed:
            window = case.resolve_due - self.now()
            if window > timedelta(0):
                lag = min(lag, window * self.rng.uniform(0.3, 0.95))
        key = self.key(case)
        self.later(lag, lambda: self.finish(case.id, key))

    def current(self, case_id: UUID, key: Key) -> Case | None:
        """The case if it is still open with the holder this action was scheduled for.

        A case the timer escalated meanwhile has a new holder: schedule their turn instead.
        """
        case = self.service.get_case(case_id)
        if not case.is_open:
            return None
        if self.key(case) != key:
            self.schedule_turn(case)
            return None
        return case

    # -- the resident and the household leader ---------------------------------------------------

    def file(self, arrival: Arrival) -> None:
        d = arrival.draft
        filed = self.service.file_petition(
            d.petition(
                arrival.household_unit,
                arrival.reporter,
                channel=arrival.channel,
                raised_at=arrival.raised_at,
            ),
            idempotency_key=f"sim:{self.seed}:{arrival.n}",
        )
        self.tally.filed += 1
        self.truth[filed.case_id] = Truth(
            arrival=arrival,
            owner=self._unit_for(d.owner, arrival.household_unit),
            joint=tuple(j for j in d.joint if j in self.rules.jurisdiction),
            telling=first_telling(d),
        )
        self.schedule_turn(filed.case)

    def _unit_for(self, target: str, household: str) -> str:
        """The unit a ground-truth owner names; a department this county lacks → the township."""
        if target.startswith("dept:") and target not in self.rules.jurisdiction:
            target = "township"
        return resolve_target(self.rules, target, household)

    # -- the holder's turn -----------------------------------------------------------------------

    def turn(self, case_id: UUID, key: Key) -> None:
        case = self.current(case_id, key)
        if case is None or case.status not in (Status.ROUTED, Status.RETURNED):
            return
        t = self.truth[case_id]
        try:
            self._act(case, t)
        except CaseError:
            self.tally.refused += 1  # the engine refused: a bug in the player, counted and shown

    def _act(self, case: Case, t: Truth) -> None:
        s, unit, rng = self.service, case.unit, self.rng
        if case.hops == 0 and case.returns == 0 and rng.random() < self.b.withdraw:
            s.withdraw_case(case.id, c.WithdrawCase(actor="resident", reason="邻里已自行协商解决"))
            self.tally.count("withdraw")
            return
        if self._owns(case, t):
            disputed = t.joint and not set(t.joint) <= set(case.co_handlers)
            if disputed and unit != case.dispatcher and rng.random() < self.b.joint_return:
                self._return(case, "涉及多个部门，职责不清，请协调", "return (joint matter)")
                return
            saved = s.accept_case(case.id, c.AcceptCase(unit=unit, actor=_actor(case)))
            self.tally.count("accept")
            self.schedule_resolve(saved)
            return
        if case.level is Level.DEPARTMENT and rng.random() < self.b.wrong_return:
            self._return(case, "不属于本部门职责", "return (not its own)")
            return
        next_rung_is_department = bool(case.ladder) and case.ladder[0].startswith("dept:")
        dispatching = unit == case.dispatcher and not next_rung_is_department
        if case.status is Status.RETURNED or dispatching:
            target = t.owner if rng.random() < self.b.dispatch_right else self._guess(case, t)
            self._refer(case, t, target)
        elif case.ladder:
            telling = self._retell(t)
            saved = s.escalate_case(
                case.id,
                c.EscalateCase(actor=_actor(case), to_unit=case.ladder[0], summary=telling.text),
            )
            self.tally.count("escalate")
            self.schedule_turn(saved)
        else:
            self._refer(case, t, t.owner)

    def _owns(self, case: Case, t: Truth) -> bool:
        """Can the holder settle it? Its owner (or a joint department), or a mediator above it."""
        if case.level not in self.b.mediators:
            return False
        if case.unit == t.owner or case.unit in t.joint:
            return True
        if t.owner.startswith("dept:") or not case.level.in_tree:
            return False
        owner = self.rules.jurisdiction.unit(t.owner)
        return case.level.rank >= owner.level.rank

    def _guess(self, case: Case, t: Truth) -> str:
        """A department that is not the owner: a dispatcher's wrong guess."""
        choices = [d for d in self.departments if d not in (t.owner, case.unit)]
        return self.rng.choice(choices) if choices else t.owner

    def _return(self, case: Case, note: str, why: str) -> None:
        saved = self.service.return_case(
            case.id,
            c.ReturnCase(
                unit=case.unit,
                actor=_actor(case),
                reason=ReturnReason.NOT_OUR_RESPONSIBILITY,
                note=note,
            ),
        )
        self.tally.count(why)
        self.schedule_turn(saved)

    def _refer(self, case: Case, t: Truth, target: str) -> None:
        s = self.service
        if target == case.unit:
            target = t.owner if t.owner != case.unit else self._guess(case, t)
        if case.status is Status.ROUTED:
            s.accept_case(case.id, c.AcceptCase(unit=case.unit, actor=_actor(case)))
            self.tally.count("accept")
        telling = self._retell(t)
        saved = s.refer_case(
            case.id,
            c.ReferCase(
                unit=case.unit,
                to_unit=target,
                actor=_actor(case),
                summary=telling.text,
                category=telling.category if telling.category in self.rules.categories else None,
                urgency=telling.urgency,
            ),
        )
        self.tally.count("refer")
        self.schedule_turn(saved)

    def _retell(self, t: Truth) -> Retelling:
        t.telling = retell(self.rng, t.arrival.draft, t.telling, self.b.retell)
        t.misread = t.misread or bool(MISREADINGS & set(t.telling.ops))
        return t.telling

    # -- resolution, rating ----------------------------------------------------------------------

    def finish(self, case_id: UUID, key: Key) -> None:
        case = self.current(case_id, key)
        if case is None or case.status is not Status.ACCEPTED:
            return
        t, s, rng = self.truth[case_id], self.service, self.rng
        try:
            if not t.suspended and rng.random() < self.b.suspend:
                t.suspended = True
                s.suspend_case(
                    case_id, c.SuspendCase(actor=_actor(case), reason="等待居民补充材料")
                )
                self.tally.count("suspend")
                self.later(self.b.suspend_for.draw(rng), lambda: self.resume(case_id))
                return
            outcome = self._outcome(case, t)
            saved = s.resolve_case(
                case_id,
                c.ResolveCase(
                    unit=case.unit,
                    actor=_actor(case),
                    outcome=outcome,
                    resolution=_RESOLUTIONS[outcome],
                ),
            )
        except CaseError:
            self.tally.refused += 1
            return
        self.tally.count("resolve")
        if rng.random() < self.b.rate:
            self.later(self.b.rate_after.draw(rng), lambda: self.rate(saved.id))

    def resume(self, case_id: UUID) -> None:
        case = self.service.get_case(case_id)
        if case.status is not Status.SUSPENDED:
            return
        saved = self.service.resume_case(
            case_id, c.ResumeCase(actor="resident", reason="材料已补齐")
        )
        self.tally.count("resume")
        self.schedule_resolve(saved)

    def _outcome(self, case: Case, t: Truth) -> Outcome:
        d, rng = t.arrival.draft, self.rng
        if d.category in DISPUTES:
            festered = case.hops >= 1 or self.now() - t.arrival.raised_at > timedelta(days=3)
            p = self.b.mediation - (self.b.mediation_late if festered else 0)
            return Outcome.MEDIATED_SUCCESS if rng.random() < p else Outcome.MEDIATED_FAILURE
        if d.category == "policy_question":
            return Outcome.EXPLAINED
        return Outcome.NOT_ACTIONABLE if rng.random() < self.b.not_actionable else Outcome.SOLVED

    def rate(self, case_id: UUID) -> None:
        case = self.service.get_case(case_id)
        if case.status is not Status.RESOLVED or case.outcome is None:
            return
        t, rng, s = self.truth[case_id], self.rng, self.service
        matched = not t.misread and t.telling.category == t.arrival.draft.category
        assert case.resolved_at is not None
        late = case.resolved_at - t.arrival.raised_at > timedelta(hours=72)
        p = (
            SATISFIED[case.outcome.value]
            - (self.b.late_penalty if late else 0)
            - (0 if matched else self.b.mismatch_penalty)
        )
        satisfied = rng.random() < p
        score = rng.choice((4, 5, 5)) if satisfied else rng.choice((1, 2, 3))
        if case.rating is None:
            s.rate_case(case_id, c.RateCase(score=score, request_matched=matched))
            self.tally.count("rate")
        if not satisfied and not t.reopened and rng.random() < self.b.reopen:
            t.reopened = True
            saved = s.reopen_case(case_id, c.ReopenCase(actor="resident", reason="问题没有解决"))
            self.tally.count("reopen")
            self.schedule_resolve(saved)
            return
        reason = CloseReason.RATED if case.rating is None else CloseReason.AUTO
        s.close_case(case_id, c.CloseCase(actor="resident", reason=reason))
        self.tally.count("close")


_RESOLUTIONS = {
    Outcome.SOLVED: "已现场处理，问题解决。",
    Outcome.MEDIATED_SUCCESS: "经调解，双方达成一致。",
    Outcome.MEDIATED_FAILURE: "经调解未能达成一致，已告知其他解决途径。",
    Outcome.EXPLAINED: "已向居民解释相关政策和办理流程。",
    Outcome.NOT_ACTIONABLE: "经核实不具备处理条件，已向居民说明。",
}


def _actor(case: Case) -> str:
    return f"sim:{case.unit}"


@dataclass
class Played:
    """A finished simulation: its store, its views, what the player did."""

    design: Design
    scenario: Scenario
    county: County
    service: CaseService
    views: ViewStore
    tally: Tally
    workdir: Path

    def close(self) -> None:
        self.views.close()
        self.service.close()


def play(
    design: Design, scenario: Scenario, workdir: Path, progress: Progress | None = None
) -> Played:
    """Run the scenario through the real engine on a fresh store in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("lianhu.db", "views.db"):
        for suffix in ("", "-wal", "-shm"):
            (workdir / f"{name}{suffix}").unlink(missing_ok=True)
    rules, county = prepare_rules(design, scenario, workdir)
    clock = FakeClock(scenario.start)
    # The library's aggregate cache (kept current on save, fast-forwarded on read) spares
    # re-reading each case's history at every action: the simulation reads more than
    # it writes. A served engine leaves it off (several processes share the store).
    env = sqlite_env(str(workdir / "lianhu.db")) | {"AGGREGATE_CACHE_MAXSIZE": "100000"}
    service = CaseService(rules=rules, clock=clock, env=env)
    views = ViewStore(sqlite_path=str(workdir / "views.db"))
    sim = Simulation(service, views, clock)
    player = Player(sim, design.behaviour, seed=scenario.seed)
    todo = arrivals(
        county,
        start=scenario.start,
        weeks=scenario.weeks,
        seed=scenario.seed,
        rhythm=scenario.rhythm,
        categories=frozenset(rules.categories),
    )
    for arrival in todo:
        sim.at(arrival.recorded_at, lambda a=arrival: player.file(a))  # type: ignore[misc]
    days = (scenario.end - scenario.start).days
    for day in range(1, days + 1):
        sim.run_agenda(scenario.start + timedelta(days=day))
        if progress is not None:
            progress(f"{design.name}: simulating", day, days)
    return Played(design, scenario, county, service, views, player.tally, workdir)

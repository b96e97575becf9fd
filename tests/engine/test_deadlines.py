"""Deadlines that keep themselves: every SLA path on the fake clock, through the real timer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from engine import commands as c
from engine.clock import FakeClock
from engine.deadlines import Light, PendingDeadlines
from engine.events import (
    CaseEscalated,
    CaseEvent,
    CaseReturned,
    SlaBreached,
    SlaWarned,
)
from engine.follower import Follower
from engine.persistence import sqlite_env
from engine.service import CaseService
from engine.simulation import Simulation
from engine.timer import Timer
from engine.values import DeadlineKind, EscalationTrigger, Outcome, ReturnReason, Status
from engine.viewstore import ViewStore
from routing_rules import Level, RuleSet, Urgency, deadlines_for

HOUSEHOLD = "510123104201-01-01"
GROUP = "510123104201-01"
SHANGHAI = ZoneInfo("Asia/Shanghai")
RESPOND, RESOLVE = DeadlineKind.RESPOND, DeadlineKind.RESOLVE


@pytest.fixture
def views(store: dict[str, str], tmp_path: Path) -> Iterator[ViewStore]:
    """The view store beside each kind of event store (PostgreSQL: the same database)."""
    if store["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
        url = "postgresql://{u}@{h}:{p}/{d}".format(
            u=store["POSTGRES_USER"],
            h=store["POSTGRES_HOST"],
            p=store["POSTGRES_PORT"],
            d=store["POSTGRES_DBNAME"],
        )
        vs = ViewStore(postgres_url=url)
    else:
        vs = ViewStore(sqlite_path=str(tmp_path / "views.db"))
    yield vs
    vs.close()


@pytest.fixture
def sim(any_service: CaseService, views: ViewStore, clock: FakeClock) -> Simulation:
    return Simulation(any_service, views, clock)


@pytest.fixture
def lite(tmp_path: Path, rules: RuleSet, clock: FakeClock) -> Iterator[Simulation]:
    """A simulation on SQLite only, for the paths that do not depend on the store."""
    service = CaseService(rules=rules, clock=clock, env=sqlite_env(str(tmp_path / "l.db")))
    views = ViewStore(sqlite_path=str(tmp_path / "lviews.db"))
    yield Simulation(service, views, clock)
    views.close()
    service.close()


def file(sim: Simulation, **overrides: object) -> UUID:
    fields: dict[str, object] = {
        "household_unit": HOUSEHOLD,
        "category": "neighbour_dispute",
        "title": "邻居装修噪音",
        "description": "楼上邻居每天晚上十点以后装修，影响老人休息。",
    }
    fields.update(overrides)
    return sim.service.file_petition(c.FilePetition.model_validate(fields)).case_id


def lights(sim: Simulation, case_id: UUID) -> list[CaseEvent]:
    return [
        e
        for e in sim.service.history(case_id)
        if isinstance(e, SlaWarned | SlaBreached | CaseEscalated)
    ]


def accept(sim: Simulation, case_id: UUID) -> None:
    unit = sim.service.get_case(case_id).unit
    sim.service.accept_case(case_id, c.AcceptCase(unit=unit, actor="a1"))


# -- warning, breach, escalation ----------------------------------------------------------------


def test_warning_then_breach_then_escalation_one_rung_up(
    sim: Simulation, rules: RuleSet, clock: FakeClock
) -> None:
    case_id = file(sim)
    case = sim.service.get_case(case_id)
    assigned, respond_due, resolve_due = clock.now(), case.respond_due, case.resolve_due
    assert respond_due is not None and resolve_due is not None

    sim.run_until(assigned + (respond_due - assigned) * 0.75 - timedelta(seconds=1))
    assert lights(sim, case_id) == []
    sim.run_until(respond_due)
    warned, breached = lights(sim, case_id)

    assert isinstance(warned, SlaWarned) and warned.kind is RESPOND
    assert warned.timestamp == assigned + (respond_due - assigned) * 0.75
    assert isinstance(breached, SlaBreached) and breached.kind is RESPOND
    assert breached.timestamp == breached.due == respond_due
    case = sim.service.get_case(case_id)
    assert case.supervised and case.unit == HOUSEHOLD, "a late answer is supervised, not moved"

    accept(sim, case_id)
    sim.run_until(resolve_due)
    *_, warned, breached, escalated = lights(sim, case_id)

    assert isinstance(warned, SlaWarned) and warned.kind is RESOLVE
    assert isinstance(breached, SlaBreached) and breached.kind is RESOLVE
    assert breached.timestamp == resolve_due
    assert isinstance(escalated, CaseEscalated)
    assert escalated.originator_version == breached.originator_version + 1
    assert (escalated.from_unit, escalated.to_unit) == (HOUSEHOLD, GROUP)
    assert escalated.trigger is EscalationTrigger.SLA_BREACH
    expected = deadlines_for(rules, Level.GROUP, Urgency.NORMAL, resolve_due)
    assert (escalated.respond_due, escalated.resolve_due) == (
        expected.respond_due,
        expected.resolve_due,
    )
    case = sim.service.get_case(case_id)
    assert case.unit == GROUP and case.status is Status.ROUTED


def test_breach_and_escalation_commit_in_one_transaction(sim: Simulation) -> None:
    case_id = file(sim)
    accept(sim, case_id)
    due = sim.service.get_case(case_id).resolve_due
    assert due is not None

    sim.run_until(due)

    log = sim.service.recorder.select_notifications(start=1, limit=1000)
    mine = [n for n in log if n.originator_id == case_id]
    breach, escalation = mine[-2:]
    assert breach.topic == SlaBreached.TOPIC and escalation.topic == CaseEscalated.TOPIC
    assert escalation.id == breach.id + 1  # one save: consecutive positions, one commit


def test_an_exhausted_ladder_breaches_and_supervises_without_moving(lite: Simulation) -> None:
    case_id = file(lite)
    for _ in range(3):  # household → group → village → township: the ladder runs out
        lite.service.escalate_case(case_id, c.EscalateCase(actor="a1"))
    accept(lite, case_id)
    case = lite.service.get_case(case_id)
    assert case.ladder == () and case.resolve_due is not None

    lite.run_until(case.resolve_due + timedelta(days=30))

    after = lite.service.get_case(case_id)
    assert after.unit == case.unit and after.supervised
    breaches = [e for e in lights(lite, case_id) if isinstance(e, SlaBreached)]
    assert [b.kind for b in breaches] == [RESOLVE]


# -- met, moved and paused deadlines -------------------------------------------------------------


def test_met_deadlines_never_fire(sim: Simulation) -> None:
    case_id = file(sim)
    accept(sim, case_id)
    sim.advance(hours=20)
    sim.service.resolve_case(
        case_id,
        c.ResolveCase(unit=HOUSEHOLD, actor="a1", outcome=Outcome.SOLVED, resolution="已协调"),
    )

    sim.advance(days=60)

    assert lights(sim, case_id) == []
    with sim.views.transaction() as cur:
        assert sim.timer.pending.pending(cur, case_id) == []


def test_accepting_after_the_warning_stops_the_breach(lite: Simulation, clock: FakeClock) -> None:
    case_id = file(lite)
    due = lite.service.get_case(case_id).respond_due
    assert due is not None
    lite.run_until(due - timedelta(hours=1))

    accept(lite, case_id)
    lite.run_until(due + timedelta(hours=1))

    assert [(type(e), e.kind) for e in lights(lite, case_id)] == [(SlaWarned, RESPOND)]  # type: ignore[attr-defined]


def test_an_extension_moves_the_resolve_breach(lite: Simulation, clock: FakeClock) -> None:
    case_id = file(lite)
    accept(lite, case_id)
    old = lite.service.get_case(case_id).resolve_due
    assert old is not None
    new = old + timedelta(days=2)

    lite.service.extend_deadline(
        case_id, c.ExtendDeadline(kind=RESOLVE, new_due=new, approver="站长", reason="需现场核实")
    )
    lite.run_until(new - timedelta(seconds=1))
    assert not any(isinstance(e, SlaBreached) for e in lights(lite, case_id))
    lite.run_until(new)

    breach = next(e for e in lights(lite, case_id) if isinstance(e, SlaBreached))
    assert breach.due == breach.timestamp == new


def test_an_extension_after_the_warning_warns_again_for_the_new_due(lite: Simulation) -> None:
    case_id = file(lite)
    accept(lite, case_id)
    old = lite.service.get_case(case_id).resolve_due
    assert old is not None
    lite.run_until(old - timedelta(minutes=1))
    assert [type(e) for e in lights(lite, case_id)] == [SlaWarned]

    new = old + timedelta(days=30)
    lite.service.extend_deadline(
        case_id, c.ExtendDeadline(kind=RESOLVE, new_due=new, approver="站长", reason="工程施工")
    )
    lite.run_until(new)

    warns = [e for e in lights(lite, case_id) if isinstance(e, SlaWarned)]
    assert [w.due for w in warns] == [old, new]


def test_suspension_pauses_the_clock_and_moves_the_due_time(
    sim: Simulation, clock: FakeClock
) -> None:
    case_id = file(sim)
    accept(sim, case_id)
    due = sim.service.get_case(case_id).resolve_due
    assert due is not None
    sim.advance(hours=2)

    suspended_at = clock.now()
    sim.service.suspend_case(case_id, c.SuspendCase(actor="a1", reason="等待居民补充材料"))
    sim.timer.catch_up()
    with sim.views.transaction() as cur:
        assert sim.timer.pending.pending(cur, case_id) == []  # a suspended case has no rows
    sim.run_until(due + timedelta(days=5))
    assert lights(sim, case_id) == []
    resumed_at = clock.now()
    sim.service.resume_case(case_id, c.ResumeCase(actor="a1"))
    moved = sim.service.get_case(case_id).resolve_due
    sim.run_until(due + timedelta(days=30))

    assert moved == due + (resumed_at - suspended_at)  # the time paused does not count
    breach = next(e for e in lights(sim, case_id) if isinstance(e, SlaBreached))
    assert breach.due == moved and breach.timestamp == moved


def test_a_returned_case_keeps_its_resolve_due_and_does_not_warn_twice(lite: Simulation) -> None:
    case_id = file(lite)
    accept(lite, case_id)
    due = lite.service.get_case(case_id).resolve_due
    assert due is not None
    lite.run_until(due - timedelta(minutes=1))  # yellow light fired

    lite.service.return_case(
        case_id,
        c.ReturnCase(unit=HOUSEHOLD, actor="a1", reason=ReturnReason.NOT_OUR_RESPONSIBILITY),
    )
    lite.run_until(due)

    kinds = [(type(e).__name__, getattr(e, "kind", None)) for e in lights(lite, case_id)]
    assert kinds[:2] == [("SlaWarned", RESOLVE), ("SlaBreached", RESOLVE)]
    breach = next(e for e in lights(lite, case_id) if isinstance(e, SlaBreached))
    assert breach.due == due, "bouncing a case does not buy time"


def test_three_returns_or_referrals_escalate_for_supervision(lite: Simulation) -> None:
    s = lite.service
    case_id = file(lite)
    dispatcher = s.get_case(case_id).dispatcher
    back = c.ReturnCase(unit=HOUSEHOLD, actor="a1", reason=ReturnReason.NOT_OUR_RESPONSIBILITY)

    s.return_case(case_id, back)  # 1
    s.refer_case(case_id, c.ReferCase(unit=dispatcher, to_unit=HOUSEHOLD, actor="d", summary="x"))
    assert s.get_case(case_id).unit == HOUSEHOLD  # 2: no escalation yet
    s.return_case(case_id, back)  # 3

    *_, returned, escalated = s.history(case_id)
    assert isinstance(returned, CaseReturned) and isinstance(escalated, CaseEscalated)
    assert escalated.trigger is EscalationTrigger.REPEATED_TRANSFER
    assert escalated.to_unit == GROUP
    case = s.get_case(case_id)
    assert case.unit == GROUP and case.supervised is False  # supervised via the escalation
    assert case.returns + case.referrals == 3


def test_a_working_day_window_skips_the_2026_national_day_holiday(
    tmp_path: Path, rules: RuleSet
) -> None:
    clock = FakeClock(datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI))
    service = CaseService(rules=rules, clock=clock, env=sqlite_env(str(tmp_path / "nd.db")))
    views = ViewStore(sqlite_path=str(tmp_path / "ndviews.db"))
    sim = Simulation(service, views, clock)
    case_id = file(sim)
    accept(sim, case_id)

    # 3 working days: 1-7 October are holidays, Saturday 10 October is a working day (调休)
    sim.run_until(datetime(2026, 10, 10, 9, 59, tzinfo=SHANGHAI))
    assert not any(isinstance(e, SlaBreached) for e in lights(sim, case_id))
    sim.run_until(datetime(2026, 10, 10, 10, 0, tzinfo=SHANGHAI))

    breach = next(e for e in lights(sim, case_id) if isinstance(e, SlaBreached))
    assert breach.due == datetime(2026, 10, 10, 10, 0, tzinfo=SHANGHAI)
    views.close()
    service.close()


# -- racing ---------------------------------------------------------------------------------------


def test_a_command_landing_before_the_fire_wins_and_nothing_fires(
    lite: Simulation, clock: FakeClock
) -> None:
    case_id = file(lite)
    due = lite.service.get_case(case_id).respond_due
    assert due is not None
    clock.set(due)
    lite.timer.catch_up()
    due_now = lite.timer.due()
    assert {(x.kind, x.light) for x in due_now} == {(RESPOND, Light.WARN), (RESPOND, Light.BREACH)}

    accept(lite, case_id)  # lands between the timer's look and its fire
    assert lite.service.fire_deadlines(due_now) == 0

    assert lights(lite, case_id) == []


def test_two_timers_firing_the_same_lights_record_each_once(
    sim: Simulation, clock: FakeClock
) -> None:
    ids = [file(sim) for _ in range(5)]
    other = Timer(sim.service, sim.views)
    clock.advance(days=10)
    sim.timer.catch_up()
    due_now = sim.timer.due()

    first = sim.service.fire_deadlines(due_now)
    second = other.service.fire_deadlines(due_now)
    other.fire_due()
    sim.timer.fire_due()

    assert first > 0 and second == 0
    for case_id in ids:
        fired = [(type(e).__name__, getattr(e, "kind", "")) for e in lights(sim, case_id)]
        assert len(fired) == len(set(fired)), fired


# -- the store itself --------------------------------------------------------------------------


def test_the_pending_store_rebuilt_from_zero_equals_the_live_one(
    lite: Simulation, tmp_path: Path
) -> None:
    tally = lite.play(days=7, cases_per_day=25, seed=3)
    assert tally.filed == 175 and tally.lights > 0

    fresh = ViewStore(sqlite_path=str(tmp_path / "rebuild.db"))
    model = PendingDeadlines(lite.service.rules.warn_share)
    Follower(lite.service.recorder, lite.service.mapper, fresh, model).catch_up()
    lite.timer.catch_up()
    with fresh.transaction() as cur:
        rebuilt = model.pending(cur)
    assert rebuilt == lite.timer.pending_lights()
    fresh.close()


def test_weeks_of_simulated_county_fire_every_light_at_its_moment(lite: Simulation) -> None:
    tally = lite.play(days=10, cases_per_day=20, seed=7)

    assert tally.filed == 200
    seen: set[tuple[UUID, str, str, datetime]] = set()
    breaches = 0
    for n in lite.service.recorder.select_notifications(start=1, limit=100_000):
        event = lite.service.mapper.to_domain_event(n)
        if isinstance(event, SlaBreached | SlaWarned):
            key = (event.originator_id, type(event).__name__, event.kind.value, event.due)
            assert key not in seen, f"fired twice: {key}"
            seen.add(key)
        if isinstance(event, SlaBreached):
            breaches += 1
            assert event.timestamp == event.due, "a breach is recorded at its due time"
    assert breaches > 10
    assert not lite.timer.due(), "nothing due is left unfired"


def test_the_run_loop_fires_on_its_own_and_stops_when_told(
    lite: Simulation, clock: FakeClock
) -> None:
    case_id = file(lite)
    due = lite.service.get_case(case_id).respond_due
    assert due is not None
    timer = Timer(lite.service, lite.views, max_sleep=0.02)
    stop = threading.Event()
    thread = threading.Thread(target=timer.run, args=(stop,))
    thread.start()

    clock.set(due)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(lights(lite, case_id)) < 2:
        time.sleep(0.02)
    stop.set()
    thread.join(5)

    assert not thread.is_alive()
    assert [type(e) for e in lights(lite, case_id)] == [SlaWarned, SlaBreached]

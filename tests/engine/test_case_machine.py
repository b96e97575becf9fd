"""The case lifecycle as a state machine, checked against an independent model.

Hypothesis drives random sequences of every command (legal and illegal) through
the real service and store. After every step:
- replaying the recorded events gives the live aggregate;
- the version equals the number of recorded events;
- a command was accepted exactly when the model's own table of transitions allows it,
  and a refused command recorded nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from engine import commands as c
from engine.case import Case
from engine.clock import FakeClock
from engine.errors import IllegalTransition
from engine.service import CaseService
from engine.values import CloseReason, DeadlineKind, Outcome, ReturnReason
from routing_rules import Level, RuleSet

ROUTED, ACCEPTED, RETURNED, SUSPENDED, RESOLVED, CLOSED = (
    "routed",
    "accepted",
    "returned",
    "suspended",
    "resolved",
    "closed",
)
ACTIVE = {ROUTED, ACCEPTED, RETURNED}


@dataclass
class Model:
    """What the case should be, kept by plain rules written independently of the aggregate."""

    status: str
    holder: str
    dispatcher: str
    ladder: list[str]
    respond_running: bool = True
    rated: bool = False
    suspended_from: str = ""
    suspended_at: datetime | None = None
    events: int = 2
    transfers: int = 0
    fired: set[str] = field(default_factory=set)
    log: list[str] = field(default_factory=list)

    def transferred(self) -> None:
        """The third return or referral escalates one rung (12345 practice), in the same save."""
        self.transfers += 1
        rung = next((u for u in self.ladder if u != self.holder), None)
        if self.transfers == 3 and rung is not None:
            self.holder, self.ladder = rung, self.ladder[self.ladder.index(rung) + 1 :]
            self.status, self.respond_running = ROUTED, True
            self.fired = set()
            self.events += 1
            self.log.append("escalate (three transfers)")


class CaseMachine(RuleBasedStateMachine):
    service: CaseService
    clock: FakeClock
    household: str
    targets: list[str]

    def __init__(self) -> None:
        super().__init__()
        filed = self.service.file_petition(
            c.FilePetition(
                household_unit=self.household,
                category="neighbour_dispute",
                title="邻居装修噪音",
                description="楼上邻居每天晚上十点以后装修，影响休息。",
            )
        )
        self.case_id: UUID = filed.case_id
        self.case: Case = self.service.get_case(self.case_id)
        self.model = Model(
            status=ROUTED,
            holder=self.case.unit,
            dispatcher=self.case.dispatcher,
            ladder=list(self.case.ladder),
        )

    # -- driving ------------------------------------------------------------------------

    def attempt(self, allowed: bool, act: object) -> bool:
        """Run one command; check it was accepted exactly when the model allows it."""
        before = self.service.get_case(self.case_id).version
        try:
            self.case = act()  # type: ignore[operator]
        except IllegalTransition:
            assert not allowed, f"refused a legal command after {self.model.log}"
            assert self.service.get_case(self.case_id).version == before, "refusal recorded"
            return False
        assert allowed, f"accepted an illegal command after {self.model.log}"
        self.model.events += 1
        return True

    @rule(minutes=st.integers(min_value=1, max_value=3 * 24 * 60))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule(own=st.booleans())
    def accept(self, own: bool) -> None:
        unit = self.model.holder if own else self.other_unit()
        m = self.model
        ok = m.status in {ROUTED, RETURNED} and unit == m.holder
        if self.attempt(
            ok, lambda: self.service.accept_case(self.case_id, c.AcceptCase(unit=unit, actor="a1"))
        ):
            m.status, m.respond_running = ACCEPTED, False
            m.log.append("accept")

    @rule(reason=st.sampled_from(ReturnReason))
    def return_case(self, reason: ReturnReason) -> None:
        m = self.model
        ok = m.status in {ROUTED, ACCEPTED} and m.holder != m.dispatcher
        if self.attempt(
            ok,
            lambda: self.service.return_case(
                self.case_id, c.ReturnCase(unit=m.holder, actor="a1", reason=reason)
            ),
        ):
            m.status, m.holder, m.respond_running = RETURNED, m.dispatcher, False
            m.fired = {f for f in m.fired if not f.endswith("respond")}  # same resolve deadline
            m.log.append("return")
            m.transferred()

    @rule(target_index=st.integers(min_value=0, max_value=50))
    def refer(self, target_index: int) -> None:
        m = self.model
        to = self.targets[target_index % len(self.targets)]
        ok = m.status in {ACCEPTED, RETURNED} and to != m.holder
        if self.attempt(
            ok,
            lambda: self.service.refer_case(
                self.case_id,
                c.ReferCase(unit=m.holder, to_unit=to, actor="a1", summary="邻居装修噪音扰民"),
            ),
        ):
            m.status, m.holder, m.respond_running = ROUTED, to, True
            m.fired = set()
            m.log.append(f"refer {to}")
            m.transferred()

    @rule()
    def escalate(self) -> None:
        m = self.model
        ok = m.status in ACTIVE and bool(m.ladder)
        if not m.ladder:
            # without a ladder the service refuses before the aggregate can
            ok = False
        if self.attempt(
            ok, lambda: self.service.escalate_case(self.case_id, c.EscalateCase(actor="a1"))
        ):
            m.holder, m.ladder = m.ladder[0], m.ladder[1:]
            m.status, m.respond_running = ROUTED, True
            m.fired = set()
            m.log.append("escalate")

    @rule(kind=st.sampled_from(DeadlineKind), hours=st.integers(min_value=-48, max_value=96))
    def extend(self, kind: DeadlineKind, hours: int) -> None:
        m = self.model
        current = self.case.due(kind)
        base = current or self.clock.now()
        new_due = base + timedelta(hours=hours)
        running = m.respond_running if kind is DeadlineKind.RESPOND else True
        ok = m.status in ACTIVE and running and current is not None and new_due > current
        if self.attempt(
            ok,
            lambda: self.service.extend_deadline(
                self.case_id,
                c.ExtendDeadline(kind=kind, new_due=new_due, approver="boss", reason="x"),
            ),
        ):
            m.fired = {f for f in m.fired if not f.endswith(kind.value)}
            m.log.append(f"extend {kind}")

    @rule()
    def suspend(self) -> None:
        m = self.model
        if self.attempt(
            m.status in ACTIVE,
            lambda: self.service.suspend_case(
                self.case_id, c.SuspendCase(actor="a1", reason="等待居民补充材料")
            ),
        ):
            m.suspended_from, m.status = m.status, SUSPENDED
            m.suspended_at = self.clock.now()
            m.log.append("suspend")

    @rule()
    def resume(self) -> None:
        m = self.model
        before = self.case
        if self.attempt(
            m.status == SUSPENDED,
            lambda: self.service.resume_case(self.case_id, c.ResumeCase(actor="a1")),
        ):
            m.status = m.suspended_from
            m.log.append("resume")
            # the time paused does not count: every running due time moves by exactly that
            assert m.suspended_at is not None
            paused = self.clock.now() - m.suspended_at
            assert before.resolve_due is not None
            assert self.case.resolve_due == before.resolve_due + paused
            if before.respond_due is not None:
                assert self.case.respond_due == before.respond_due + paused

    @rule(own=st.booleans(), outcome=st.sampled_from(Outcome))
    def resolve(self, own: bool, outcome: Outcome) -> None:
        m = self.model
        unit = m.holder if own else self.other_unit()
        ok = m.status == ACCEPTED and unit == m.holder
        if self.attempt(
            ok,
            lambda: self.service.resolve_case(
                self.case_id,
                c.ResolveCase(unit=unit, actor="a1", outcome=outcome, resolution="已协调"),
            ),
        ):
            m.status, m.rated = RESOLVED, False
            m.log.append("resolve")

    @rule()
    def reopen(self) -> None:
        m = self.model
        if self.attempt(
            m.status == RESOLVED,
            lambda: self.service.reopen_case(
                self.case_id, c.ReopenCase(actor="resident", reason="问题没有解决")
            ),
        ):
            m.status = ACCEPTED
            m.fired = set()
            m.log.append("reopen")

    @rule(score=st.integers(min_value=1, max_value=5), matched=st.booleans())
    def rate(self, score: int, matched: bool) -> None:
        m = self.model
        ok = m.status == RESOLVED and not m.rated
        if self.attempt(
            ok,
            lambda: self.service.rate_case(
                self.case_id, c.RateCase(score=score, request_matched=matched)
            ),
        ):
            m.rated = True
            m.log.append("rate")

    @rule(rated=st.booleans())
    def close(self, rated: bool) -> None:
        m = self.model
        reason = CloseReason.RATED if rated else CloseReason.AUTO
        ok = m.status == RESOLVED and (m.rated or not rated)
        if self.attempt(
            ok,
            lambda: self.service.close_case(self.case_id, c.CloseCase(actor="a1", reason=reason)),
        ):
            m.status = CLOSED
            m.log.append("close")

    @rule()
    def withdraw(self) -> None:
        m = self.model
        if self.attempt(
            m.status in ACTIVE | {SUSPENDED},
            lambda: self.service.withdraw_case(self.case_id, c.WithdrawCase(actor="resident")),
        ):
            m.status = CLOSED
            m.log.append("withdraw")

    @rule(kind=st.sampled_from(DeadlineKind), light=st.sampled_from(["warned", "breached"]))
    def deadline_light(self, kind: DeadlineKind, light: str) -> None:
        """What the SLA timer does: fire a light for the deadline it believes is running."""
        m = self.model
        due = self.case.due(kind)
        if due is None:
            return
        running = m.status in ACTIVE and (kind is DeadlineKind.RESOLVE or m.respond_running)
        fire = self.service.warn_deadline if light == "warned" else self.service.breach_deadline
        early = light == "breached" and self.clock.now() < due
        before = self.service.get_case(self.case_id).version
        try:
            fired = fire(self.case_id, kind, due)
        except IllegalTransition:
            assert early and running and f"{light}:{kind.value}" not in m.fired
            assert self.service.get_case(self.case_id).version == before
            return
        assert not (early and fired)
        assert fired == (running and f"{light}:{kind.value}" not in m.fired), m.log
        self.case = self.service.get_case(self.case_id)
        if fired:
            m.fired.add(f"{light}:{kind.value}")
            m.events += 1
            m.log.append(f"{light} {kind}")

    def other_unit(self) -> str:
        return next(t for t in self.targets if t != self.model.holder)

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def replay_gives_the_live_aggregate(self) -> None:
        replayed = self.service.get_case(self.case_id)
        assert replayed.__dict__ == self.case.__dict__

    @invariant()
    def version_counts_the_events(self) -> None:
        history = self.service.history(self.case_id)
        assert self.case.version == len(history) == self.model.events
        assert [e.originator_version for e in history] == list(range(1, len(history) + 1))

    @invariant()
    def state_matches_the_model(self) -> None:
        assert self.case.status.value == self.model.status
        assert self.case.unit == self.model.holder
        assert list(self.case.ladder) == self.model.ladder
        assert (self.case.respond_due is not None) == (
            self.model.respond_running and self.model.status in ACTIVE | {SUSPENDED}
        )


def test_case_lifecycle_state_machine(store: dict[str, str], rules: RuleSet) -> None:
    clock = FakeClock(datetime.fromisoformat("2026-03-02T09:00:00+08:00"))
    service = CaseService(rules=rules, clock=clock, env=store)
    households = [u for u in rules.jurisdiction.units() if u.level is Level.HOUSEHOLD]
    household = households[0].code
    ancestors = [u.code for u in rules.jurisdiction.ancestors(household)]
    departments = [d.code for d in rules.jurisdiction.departments()][:3]

    CaseMachine.service = service
    CaseMachine.clock = clock
    CaseMachine.household = household
    CaseMachine.targets = [household, *ancestors, *departments]
    machine = CaseMachine.TestCase
    machine.settings = settings(
        max_examples=60,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine().runTest()
    service.close()

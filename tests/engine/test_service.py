"""The application service: filing, routing, idempotency, numbers and conflicts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from eventsourcing.persistence import IntegrityError

from engine import commands as c
from engine.clock import FakeClock
from engine.errors import (
    CaseNotFound,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidPetition,
    UnknownReference,
    VersionConflict,
    WrongUnit,
)
from engine.events import CaseRouted, PetitionFiled
from engine.service import CaseService, Filed
from engine.values import DeadlineKind, Reporter, Status
from routing_rules import Level, RuleSet, Urgency, deadlines_for

HOUSEHOLD = "510123104201-01-01"
T = TypeVar("T")


def a_petition(**overrides: object) -> c.FilePetition:
    fields: dict[str, object] = {
        "household_unit": HOUSEHOLD,
        "category": "neighbour_dispute",
        "title": "邻居装修噪音",
        "description": "楼上邻居每天晚上十点以后装修，影响老人休息。",
        "reporter": Reporter(name="测试居民", phone="13800000000"),
    }
    fields.update(overrides)
    return c.FilePetition.model_validate(fields)


def events_recorded(service: CaseService) -> int:
    return service.recorder.max_notification_id() or 0


def test_filing_routes_at_once_with_rule_and_deadlines(
    any_service: CaseService, rules: RuleSet, clock: FakeClock
) -> None:
    filed = any_service.file_petition(a_petition())

    first, routed = any_service.history(filed.case_id)
    assert isinstance(first, PetitionFiled) and isinstance(routed, CaseRouted)
    assert first.reporter.name == "测试居民"
    assert routed.rule_set_hash == rules.hash
    assert routed.handler == HOUSEHOLD and routed.handler_level is Level.HOUSEHOLD
    assert routed.ladder == ("510123104201-01", "510123104201", "510123104")
    expected = deadlines_for(rules, Level.HOUSEHOLD, Urgency.NORMAL, clock.now())
    assert (routed.respond_due, routed.resolve_due) == (expected.respond_due, expected.resolve_due)
    case = any_service.get_case(filed.case_id)
    assert case.status is Status.ROUTED and case.version == filed.version == 2


def test_joint_handling_is_recorded(any_service: CaseService) -> None:
    filed = any_service.file_petition(
        a_petition(category="infrastructure", title="小区电梯故障", description="3号楼电梯停运一周")
    )

    case = any_service.get_case(filed.case_id)
    assert (case.unit, case.co_handlers) == ("dept:housing", ("dept:market_regulation",))


def test_a_retried_filing_returns_the_same_case_and_records_nothing(
    any_service: CaseService,
) -> None:
    first = any_service.file_petition(a_petition(), idempotency_key="leader-7/2026-03-02/1")
    before = events_recorded(any_service)

    again = any_service.file_petition(a_petition(), idempotency_key="leader-7/2026-03-02/1")

    assert (again.case_id, again.number, again.created) == (first.case_id, first.number, False)
    assert first.created
    assert events_recorded(any_service) == before


def test_an_idempotency_key_reused_for_another_petition_is_refused(
    any_service: CaseService,
) -> None:
    any_service.file_petition(a_petition(), idempotency_key="k1")
    before = events_recorded(any_service)

    with pytest.raises(IdempotencyKeyReused):
        any_service.file_petition(a_petition(title="别的事情"), idempotency_key="k1")
    assert events_recorded(any_service) == before


def test_concurrent_retries_of_one_filing_create_one_case(any_service: CaseService) -> None:
    results = run_concurrently(
        12, lambda: any_service.file_petition(a_petition(), idempotency_key="same")
    )

    assert len({r.case_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert events_recorded(any_service) == 3  # filed, routed, number


def test_concurrent_filings_share_transactions_and_all_succeed(any_service: CaseService) -> None:
    results = run_concurrently(
        40,
        lambda: any_service.file_petition(a_petition()),
    )

    assert len({r.case_id for r in results}) == 40
    assert len({r.number for r in results}) == 40
    for r in results:
        assert any_service.find_case(r.number) == r.case_id


def test_a_conflict_in_a_shared_transaction_fails_only_that_filing(
    any_service: CaseService,
) -> None:
    # half the callers retry one key, half file new cases; all in shared transactions
    def work(i: int) -> Filed:
        key = "dup" if i % 2 else None
        return any_service.file_petition(a_petition(), idempotency_key=key)

    results = run_concurrently(30, work, pass_index=True)

    created = [r for r in results if r.created]
    assert len(created) == 16  # 15 new cases and one of the 15 retries
    assert len({r.case_id for r in results}) == 16


def test_case_numbers_are_short_and_typed_forgivingly(any_service: CaseService) -> None:
    filed = any_service.file_petition(a_petition())

    date, code = filed.number.split("-")
    assert len(date) == 6 and len(code) == 5
    assert any_service.find_case(filed.number.lower().replace("-", " ")) == filed.case_id
    with pytest.raises(CaseNotFound):
        any_service.find_case("260101-00000")


def test_bad_petitions_record_nothing(any_service: CaseService, clock: FakeClock) -> None:
    before = events_recorded(any_service)

    with pytest.raises(UnknownReference):
        any_service.file_petition(a_petition(household_unit="510123999999-01-01"))
    with pytest.raises(UnknownReference):
        any_service.file_petition(a_petition(category="ufo_sighting"))
    with pytest.raises(InvalidPetition):
        any_service.file_petition(a_petition(household_unit="510123104201"))  # a village
    with pytest.raises(InvalidPetition):
        any_service.file_petition(a_petition(raised_at=clock.now() + timedelta(hours=1)))

    assert events_recorded(any_service) == before


def test_a_stale_version_is_a_conflict_and_records_nothing(any_service: CaseService) -> None:
    filed = any_service.file_petition(a_petition())
    any_service.accept_case(filed.case_id, c.AcceptCase(unit=HOUSEHOLD, actor="leader"))

    with pytest.raises(VersionConflict):
        any_service.resolve_case(
            filed.case_id,
            c.ResolveCase(unit=HOUSEHOLD, actor="leader", outcome="solved", resolution="已调解"),
            expected_version=2,
        )
    assert any_service.get_case(filed.case_id).version == 3


def test_two_writers_racing_on_one_case_never_merge(
    any_service: CaseService, rules: RuleSet, clock: FakeClock, store: dict[str, str]
) -> None:
    filed = any_service.file_petition(a_petition())
    other = CaseService(rules=rules, clock=clock, env=store)
    try:
        mine = any_service.get_case(filed.case_id)
        theirs = other.get_case(filed.case_id)
        mine.accept(at=clock.now(), unit=HOUSEHOLD, actor="me")
        theirs.accept(at=clock.now(), unit=HOUSEHOLD, actor="them")
        any_service.save(mine)

        with pytest.raises(IntegrityError):
            other.save(theirs)
        history = any_service.history(filed.case_id)
        assert [e.name for e in history][-1] == "CaseAccepted"
        assert history[-1].actor == "me"  # type: ignore[attr-defined]
    finally:
        other.close()


def test_only_the_holder_acts_and_resolve_needs_accept(any_service: CaseService) -> None:
    filed = any_service.file_petition(a_petition())

    with pytest.raises(WrongUnit):
        any_service.accept_case(filed.case_id, c.AcceptCase(unit="510123104201", actor="x"))
    with pytest.raises(IllegalTransition, match="accept"):
        any_service.resolve_case(
            filed.case_id,
            c.ResolveCase(unit=HOUSEHOLD, actor="leader", outcome="solved", resolution="好了"),
        )
    assert any_service.get_case(filed.case_id).version == 2


def test_a_returned_case_goes_to_the_dispatcher_and_keeps_its_resolve_due(
    any_service: CaseService, clock: FakeClock
) -> None:
    filed = any_service.file_petition(
        a_petition(category="infrastructure", title="小区电梯故障", description="电梯停运")
    )
    due = any_service.get_case(filed.case_id).resolve_due
    clock.advance(hours=5)

    case = any_service.return_case(
        filed.case_id,
        c.ReturnCase(unit="dept:housing", actor="clerk", reason="not_our_responsibility"),
    )

    assert (case.status, case.unit, case.resolve_due) == (Status.RETURNED, "510123104", due)


def test_referral_records_the_summary_as_passed_on(any_service: CaseService) -> None:
    filed = any_service.file_petition(
        a_petition(category="service_demand", title="增设健身器材", description="增设社区健身器材")
    )
    case = any_service.get_case(filed.case_id)
    any_service.accept_case(filed.case_id, c.AcceptCase(unit=case.unit, actor="a"))

    case = any_service.refer_case(
        filed.case_id,
        c.ReferCase(unit=case.unit, to_unit="510123104", actor="a", summary="优化绿化景观"),
    )

    referred = any_service.history(filed.case_id)[-1]
    assert referred.summary == "优化绿化景观" and referred.hop == 1  # type: ignore[attr-defined]
    assert case.description == "增设社区健身器材"  # the resident's words are kept


def run_concurrently(n: int, work: Callable[..., T], *, pass_index: bool = False) -> list[T]:
    results: list[T | None] = [None] * n
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i) if pass_index else work()
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return [r for r in results if r is not None]


def test_deadline_lights_fire_once_and_never_for_a_met_deadline(
    any_service: CaseService, clock: FakeClock
) -> None:
    filed = any_service.file_petition(a_petition())
    case = any_service.get_case(filed.case_id)
    assert case.respond_due is not None and case.resolve_due is not None
    respond_due, resolve_due = case.respond_due, case.resolve_due

    assert any_service.warn_deadline(filed.case_id, DeadlineKind.RESPOND, respond_due)
    assert not any_service.warn_deadline(filed.case_id, DeadlineKind.RESPOND, respond_due)
    with pytest.raises(IllegalTransition):  # not due yet
        any_service.breach_deadline(filed.case_id, DeadlineKind.RESPOND, respond_due)
    clock.set(respond_due)
    assert any_service.breach_deadline(filed.case_id, DeadlineKind.RESPOND, respond_due)
    assert not any_service.breach_deadline(filed.case_id, DeadlineKind.RESPOND, respond_due)
    assert any_service.get_case(filed.case_id).supervised

    any_service.accept_case(filed.case_id, c.AcceptCase(unit=HOUSEHOLD, actor="leader"))
    any_service.resolve_case(
        filed.case_id,
        c.ResolveCase(unit=HOUSEHOLD, actor="leader", outcome="solved", resolution="已调解"),
    )
    clock.set(resolve_due)
    # the resolve deadline was met: nothing fires for it
    assert not any_service.breach_deadline(filed.case_id, DeadlineKind.RESOLVE, resolve_due)
    names = [e.name for e in any_service.history(filed.case_id)]
    assert names.count("SlaWarned") == 1 and names.count("SlaBreached") == 1

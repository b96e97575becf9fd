"""The filing's shortcuts around library plumbing build exactly what the library builds."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from eventsourcing.domain import BaseAggregate

from bench.workload import petitions
from engine.clock import FakeClock
from engine.service import CaseService
from routing_rules import RuleSet


def state(aggregate: BaseAggregate[Any]) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def replayed(aggregate: BaseAggregate[Any]) -> BaseAggregate[Any]:
    """The aggregate as the library rebuilds it from its (pending) events."""
    rebuilt: Any = None
    for event in aggregate.pending_events:
        rebuilt = event.mutate(rebuilt)
    assert rebuilt is not None
    return rebuilt  # type: ignore[no-any-return]


def test_a_prepared_filing_is_what_its_events_rebuild(
    service: CaseService, rules: RuleSet, clock: FakeClock
) -> None:
    stream = petitions(rules, seed=11)
    for _ in range(200):
        case, index = service.prepare_filing(next(stream), uuid4(), clock.now(), "")

        assert [e.originator_version for e in case.pending_events] == [1, 2]
        assert state(replayed(case)) == state(case)
        assert len(index.pending_events) == 1
        assert state(replayed(index)) == state(index)
        assert type(replayed(case)) is type(case) and type(replayed(index)) is type(index)


def test_a_filed_case_reads_back_as_it_was_answered(
    service: CaseService, rules: RuleSet, clock: FakeClock
) -> None:
    stream = petitions(rules, seed=12)
    for _ in range(50):
        filed = service.file_petition(next(stream))

        assert state(service.get_case(filed.case_id)) == state(filed.case)
        assert service.find_case(filed.number) == filed.case_id

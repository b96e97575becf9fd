"""The filing's shortcuts around library plumbing build exactly what the library builds."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import BaseAggregate
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.workload import petitions
from engine.clock import FakeClock
from engine.numbering import ALPHABET, LOCAL_TZ, case_number
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


def reference_case_number(case_id: UUID, filed_at: datetime, attempt: int) -> str:
    """The number as first specified: strftime and a loop over the five characters."""
    digest = hashlib.sha256(case_id.bytes + attempt.to_bytes(4, "big")).digest()
    value = int.from_bytes(digest[:4], "big")
    chars = "".join(ALPHABET[(value >> (5 * i)) & 31] for i in range(5))
    return f"{filed_at.astimezone(LOCAL_TZ):%y%m%d}-{chars}"


@settings(max_examples=500, deadline=None)
@given(
    st.uuids(),
    st.datetimes(datetime(1990, 1, 1), datetime(2099, 12, 31), timezones=st.just(UTC)),
    st.integers(0, 7),
)
def test_case_numbers_are_spelled_as_first_specified(
    case_id: UUID, filed_at: datetime, attempt: int
) -> None:
    assert case_number(case_id, filed_at, attempt) == reference_case_number(
        case_id, filed_at, attempt
    )

"""The filing's shortcuts around library plumbing build exactly what the library builds."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4, uuid5

import orjson
from eventsourcing.application import Application
from eventsourcing.domain import BaseAggregate
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.workload import petitions
from engine import commands as c
from engine.case import Case
from engine.clock import FakeClock
from engine.events import CaseEvent, CaseRouted, PetitionFiled
from engine.numbering import (
    ALPHABET,
    LOCAL_TZ,
    NUMBER_NAMESPACE,
    CaseNumber,
    CaseNumbered,
    case_number,
    new_case_id,
    number_index_id,
)
from engine.persistence import OrjsonTranscoder, PydanticMapper, sqlite_env
from engine.service import CaseService
from engine.values import Reporter
from routing_rules import Level, RuleSet, Urgency, default_rule_set_path, load_rule_set


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


texts = st.text(st.characters(codec="utf-8"), max_size=40)
moments = st.datetimes(
    datetime(2000, 1, 1), datetime(2099, 12, 31), timezones=st.sampled_from([UTC, LOCAL_TZ])
)


@settings(max_examples=300, deadline=None)
@given(
    texts,
    texts,
    moments,
    st.sampled_from(list(Urgency)),
    st.lists(st.sampled_from(["510123104", "dept:police", "510123"]), max_size=3),
)
def test_stored_json_is_the_bytes_of_orjson_over_model_dump(
    title: str, text: str, at: datetime, urgency: Urgency, ladder: list[str]
) -> None:
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    case_id = uuid4()
    events: list[CaseEvent] = [
        PetitionFiled(
            originator_id=case_id,
            originator_version=1,
            timestamp=at,
            originator_topic=Case.TOPIC,
            number="261203-7KQ2M",
            household_unit=text,
            channel="visit",
            category="neighbour_dispute",
            urgency=urgency,
            title=title,
            description=text + title,
            location=title,
            reporter=Reporter(name=title, phone="139", address=text),
            raised_at=at,
            fingerprint="",
        ),
        CaseRouted(
            originator_id=case_id,
            originator_version=2,
            timestamp=at,
            rule_id=title,
            rule_set_hash="ab",
            handler=text,
            handler_level=Level.VILLAGE,
            co_handlers=tuple(ladder),
            ladder=tuple(ladder),
            dispatcher=title,
            respond_due=at,
            resolve_due=at,
        ),
        CaseNumbered(
            originator_id=case_id,
            originator_version=1,
            timestamp=at,
            originator_topic=CaseNumber.TOPIC,
            number=text,
            case_id=case_id,
        ),
    ]
    for event in events:
        stored = mapper.to_stored_event(event)
        dumped = event.model_dump(mode="json", exclude={"originator_id", "originator_version"})

        assert stored.state == orjson.dumps(dumped)
        assert mapper.to_domain_event(stored) == event


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=20) | st.from_regex(r"[0-9]{6}-[0-9A-Z]{5}", fullmatch=True))
def test_number_index_ids_are_uuid5_of_the_number(number: str) -> None:
    assert number_index_id(number) == uuid5(NUMBER_NAMESPACE, number)
    assert number_index_id(number).version == 5


def test_filings_skip_only_what_this_application_does_not_use(service: CaseService) -> None:
    # _record_new records filings without save()'s Recording objects (handed to _notify)
    # and repository cache: if either comes into use, filings must go through save().
    assert CaseService._notify is Application._notify
    assert service.repository.cache is None


def test_with_the_aggregate_cache_on_filings_go_through_save(tmp_path: Path) -> None:
    rules = load_rule_set(default_rule_set_path())
    env = sqlite_env(str(tmp_path / "cached.db")) | {"AGGREGATE_CACHE_MAXSIZE": "100"}
    cached = CaseService(rules=rules, clock=FakeClock(), env=env)
    try:
        assert cached.repository.cache is not None
        filed = cached.file_petition(
            c.FilePetition(
                household_unit="510123001001-01-01",
                category="neighbour_dispute",
                title="噪音",
                description="楼上邻居深夜装修，影响休息。",
            )
        )
        assert cached.get_case(filed.case_id).number == filed.number
        assert cached.repository.cache.get(filed.case_id).version == filed.version
        cached.accept_case(filed.case_id, c.AcceptCase(unit="510123001001-01-01", actor="leader"))
        assert cached.get_case(filed.case_id).version == filed.version + 1
    finally:
        cached.close()


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=1, max_value=10**9),
)
def test_new_case_ids_are_uuid7_of_the_filing_time_and_sort_by_it(at: datetime, ms: int) -> None:
    first, later = new_case_id(at), new_case_id(at + timedelta(milliseconds=ms))
    for case_id, when in ((first, at), (later, at + timedelta(milliseconds=ms))):
        assert case_id.version == 7 and case_id.variant == "specified in RFC 4122"
        assert case_id.int >> 80 == int(when.timestamp() * 1000)  # RFC 9562's unix_ts_ms
    assert first < later and str(first) < str(later)  # the views key cases by str(id)
    assert len({new_case_id(at) for _ in range(50)}) == 50  # 74 random bits each


def test_filings_without_a_key_get_time_ordered_ids(service: CaseService, clock: FakeClock) -> None:
    ids = []
    for cmd in itertools.islice(petitions(load_rule_set(default_rule_set_path()), seed=3), 20):
        ids.append(service.file_petition(cmd).case_id)
        clock.advance(seconds=1)
    assert ids == sorted(ids) and all(i.version == 7 for i in ids)
    keyed = service.file_petition(next(petitions(load_rule_set(default_rule_set_path()), seed=4)),
                                  idempotency_key="k-1")  # fmt: skip
    assert keyed.case_id.version == 5  # a retry must find it: derived from the key

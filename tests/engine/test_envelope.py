"""The wire format: every event type's envelope fits the published schema; subjects map back."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import jsonschema
import orjson
import pytest

from engine import commands as c
from engine.clock import FakeClock
from engine.envelope import envelope_schema, event_id, event_id_str, stored_data
from engine.events import EVENT_TYPES
from engine.outbox import Outbox
from engine.service import CaseService
from engine.subjects import unit_of_token, unit_token
from engine.values import DeadlineKind, Outcome, ReturnReason
from engine.viewstore import ViewStore
from routing_rules import Level

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "envelope.schema.json"
PHONE = "13812345678"


def every_event_type(service: CaseService, clock: FakeClock) -> None:
    """One history per path, together recording each event type at least once."""
    household = next(
        u.code for u in service.rules.jurisdiction.units() if u.level is Level.HOUSEHOLD
    )
    group = service.rules.jurisdiction.ancestor_at(household, Level.GROUP)
    assert group is not None

    def file(n: int) -> UUID:
        petition = c.FilePetition(
            household_unit=household,
            category="neighbour_dispute",
            title=f"噪音 {n}",
            description="楼上邻居深夜装修。",
            reporter={"name": "张三丰", "phone": PHONE, "address": "城关镇文庙路1号"},
        )
        return service.file_petition(petition, idempotency_key=f"key-{n}").case_id

    a = file(1)
    service.accept_case(a, c.AcceptCase(unit=household, actor="wang"))
    due = service.get_case(a).resolve_due
    assert due is not None
    service.extend_deadline(
        a, c.ExtendDeadline(new_due=due.replace(year=due.year + 1), approver="li", reason="等")
    )
    service.suspend_case(a, c.SuspendCase(actor="wang", reason="等待住户"))
    service.resume_case(a, c.ResumeCase(actor="wang"))
    service.refer_case(
        a, c.ReferCase(unit=household, to_unit=group.code, actor="wang", summary="装修噪音")
    )
    held = service.get_case(a)
    assert held.respond_due is not None
    clock.set(held.respond_due)
    assert service.warn_deadline(a, DeadlineKind.RESPOND, held.respond_due)
    assert service.breach_deadline(a, DeadlineKind.RESPOND, held.respond_due)
    service.escalate_case(a, c.EscalateCase(actor="li"))
    holder = service.get_case(a).unit
    reason = ReturnReason.NOT_OUR_RESPONSIBILITY
    service.return_case(a, c.ReturnCase(unit=holder, actor="li", reason=reason))

    b = file(2)
    service.accept_case(b, c.AcceptCase(unit=household, actor="wang"))
    solved = c.ResolveCase(unit=household, actor="wang", outcome=Outcome.SOLVED, resolution="好了")
    service.resolve_case(b, solved)
    service.reopen_case(b, c.ReopenCase(actor="resident", reason="还在装修"))
    service.resolve_case(b, solved)
    service.rate_case(b, c.RateCase(score=5, request_matched=True))
    service.close_case(b, c.CloseCase(actor="wang"))


@pytest.fixture
def envelopes(service: CaseService, clock: FakeClock, tmp_path: Path) -> list[dict[str, Any]]:
    every_event_type(service, clock)
    views = ViewStore(sqlite_path=str(tmp_path / "views.db"))
    batch = Outbox(service, views).read(0, 1000)
    views.close()
    return [json.loads(m.payload) for m in batch.messages]


def test_the_published_schema_is_the_one_the_code_generates() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == envelope_schema()


def test_every_event_type_fits_the_envelope_schema(envelopes: list[dict[str, Any]]) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )

    for envelope in envelopes:
        validator.validate(envelope)

    assert {e["type"] for e in envelopes} == set(EVENT_TYPES)


def test_the_schema_refuses_what_it_should(envelopes: list[dict[str, Any]]) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    filed = next(e for e in envelopes if e["type"] == "PetitionFiled")

    assert not validator.is_valid({**filed, "data": {**filed["data"], "fingerprint": "x"}})
    assert not validator.is_valid({**filed, "type": "CaseAccepted"})
    assert not validator.is_valid({k: v for k, v in filed.items() if k != "case_number"})


def test_the_wire_masks_the_reporter_and_leaves_the_fingerprint_out(
    envelopes: list[dict[str, Any]],
) -> None:
    filed = next(e for e in envelopes if e["type"] == "PetitionFiled")

    assert filed["data"]["reporter"] == {
        "name": "张**",
        "phone": "138****5678",
        "address": "城关镇文庙路**",
    }
    assert "fingerprint" not in filed["data"]
    assert all(PHONE not in json.dumps(e, ensure_ascii=False) for e in envelopes)


def test_each_envelope_names_its_case_number_and_a_stable_event_id(
    envelopes: list[dict[str, Any]],
) -> None:
    numbers = {e["case_id"]: e["data"]["number"] for e in envelopes if e["type"] == "PetitionFiled"}

    for e in envelopes:
        assert e["case_number"] == numbers[e["case_id"]]
        assert e["event_id"] == str(event_id(UUID(e["case_id"]), e["aggregate_version"]))


@pytest.mark.parametrize(
    ("unit", "level", "token"),
    [
        ("dept:market_regulation", Level.DEPARTMENT, "market_regulation"),
        ("510123104201-03-07", Level.HOUSEHOLD, "510123104201-03-07"),
        ("510123104201", Level.VILLAGE, "510123104201"),
        ("a:b.c *>~", Level.GROUP, "a~3Ab~2Ec~20~2A~3E~7E"),
        ("文庙", Level.VILLAGE, "~E6~96~87~E5~BA~99"),
    ],
)
def test_unit_codes_become_valid_subject_tokens_and_back(
    unit: str, level: Level, token: str
) -> None:
    assert unit_token(unit, level) == token
    assert unit_of_token(token, level) == unit


NASTY = [
    '"',
    "\\",
    "\n",
    "\t",
    "\r",
    "\x01",
    "\x1f",
    "\x7f",
    "\u2028",
    "/",
    "😀",
    "文庙",
    "é",
    " ",
    "a",
]


def test_the_fast_path_makes_the_same_bytes_as_pydantic(
    service: CaseService, clock: FakeClock, tmp_path: Path
) -> None:
    """Envelopes, subjects and ids from the stored JSON equal the pydantic path's, byte for
    byte, for every event type over a random history with awkward strings."""
    every_event_type(service, clock)
    rng = random.Random(5)
    households = [u.code for u in service.rules.jurisdiction.units() if u.level is Level.HOUSEHOLD]

    def text(n: int) -> str:
        return "x" + "".join(rng.choice(NASTY) for _ in range(n)) + "y"

    for _ in range(40):
        petition = c.FilePetition(
            household_unit=rng.choice(households),
            category=rng.choice(["neighbour_dispute", "infrastructure"]),
            title=text(8),
            description=text(30),
            reporter={"name": text(3), "phone": text(11), "address": text(rng.randint(0, 12))},
        )
        case_id = service.file_petition(petition).case_id
        case = service.get_case(case_id)
        if rng.random() < 0.5:
            service.accept_case(case_id, c.AcceptCase(unit=case.unit, actor=text(4)))
        if rng.random() < 0.3:
            service.suspend_case(case_id, c.SuspendCase(actor=text(2), reason=text(20)))
    views = ViewStore(sqlite_path=str(tmp_path / "views.db"))
    fast = Outbox(service, views).read(0, 10_000)
    slow = Outbox(service, views).read(0, 10_000, fast=False)
    views.close()

    assert fast == slow
    stored = service.recorder.select_notifications(start=0, limit=10_000)
    case_events = [n for n in stored if n.topic in {t.TOPIC for t in EVENT_TYPES.values()}]
    assert all(stored_data(n.topic, n.state, orjson.loads(n.state)) for n in case_events)
    assert {orjson.loads(m.payload)["type"] for m in fast.messages} == set(EVENT_TYPES)


def test_the_fast_event_id_is_the_uuid5() -> None:
    for _ in range(100):
        case_id, version = uuid4(), random.randint(1, 10_000)
        assert event_id_str(str(case_id), version) == str(event_id(case_id, version))

"""Helpers for the relay tests: varied case histories, reading a stream, an independent oracle."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import nats
import orjson
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from engine import commands as c
from engine.case import Case
from engine.errors import CaseError
from engine.events import CaseEscalated, CaseEvent, CaseReferred, CaseReturned, CaseRouted
from engine.service import CaseService
from engine.values import Outcome, ReturnReason
from routing_rules import Level, RuleSet

TEXTS = ("楼上邻居深夜装修，影响休息。", "小区电梯坏了三天，老人下不了楼。", "路灯不亮。")


def households(rules: RuleSet) -> list[str]:
    return [u.code for u in rules.jurisdiction.units() if u.level is Level.HOUSEHOLD]


def file_one(service: CaseService, n: int, units: list[str]) -> UUID:
    """File petition `n`; one in three is a lift fault (housing, market regulation jointly)."""
    category = ("neighbour_dispute", "infrastructure", "infrastructure")[n % 3]
    filed = service.file_petition(
        c.FilePetition(
            household_unit=units[(n * 7919) % len(units)],
            category=category,
            title=f"诉求 {n}",
            description=TEXTS[n % 3],
            reporter={"name": "张三丰", "phone": "13812345678", "address": "城关镇文庙路1号"},
        ),
        idempotency_key=f"k{n}" if n % 5 == 0 else None,
    )
    return filed.case_id


def act_on(service: CaseService, case_id: UUID, n: int) -> None:
    """Move some cases on: accept, then return, refer or resolve."""
    case = service.get_case(case_id)
    try:
        if n % 4 == 1:
            reason = ReturnReason.NOT_OUR_RESPONSIBILITY
            service.return_case(case_id, c.ReturnCase(unit=case.unit, actor="a", reason=reason))
            return
        service.accept_case(case_id, c.AcceptCase(unit=case.unit, actor="a"))
        if n % 4 == 2:
            resolve = c.ResolveCase(
                unit=case.unit, actor="a", outcome=Outcome.SOLVED, resolution="已处理"
            )
            service.resolve_case(case_id, resolve)
    except CaseError:
        pass  # a transition the case does not allow: nothing recorded


def file_varied(service: CaseService, count: int, start: int = 0) -> list[UUID]:
    units = households(service.rules)
    ids = []
    for n in range(start, start + count):
        case_id = file_one(service, n, units)
        if n % 2:
            act_on(service, case_id, n)
        ids.append(case_id)
    return ids


# -- the stream ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    seq: int
    subject: str
    msg_id: str
    envelope: dict[str, Any]


async def _read_stream(url: str, stream: str, subjects: str) -> list[Received]:
    nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    try:
        js = nc.jetstream(timeout=10)
        total = (await js.stream_info(stream)).state.messages
        durable = f"reader_{time.monotonic_ns()}"
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=subjects,
        )
        sub = await js.pull_subscribe(subjects, durable=durable, stream=stream, config=config)
        out: list[Received] = []
        while len(out) < total:
            for msg in await sub.fetch(min(1000, total - len(out)), timeout=10):
                assert msg.headers is not None
                out.append(
                    Received(
                        msg.metadata.sequence.stream,
                        msg.subject,
                        msg.headers["Nats-Msg-Id"],
                        orjson.loads(msg.data),
                    )
                )
        await js.delete_consumer(stream, durable)
        return out
    finally:
        await nc.close()


def read_stream(url: str, stream: str, prefix: str) -> list[Received]:
    return asyncio.run(_read_stream(url, stream, f"{prefix}.>"))


async def _stream_last_seq(url: str, stream: str) -> int:
    nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    try:
        return (await nc.jetstream().stream_info(stream)).state.last_seq
    except nats.js.errors.NotFoundError:
        return 0
    finally:
        await nc.close()


def stream_last_seq(url: str, stream: str) -> int:
    return asyncio.run(_stream_last_seq(url, stream))


# -- the oracle: subjects from the aggregate itself ------------------------------------------


def expected_messages(service: CaseService, prefix: str) -> dict[tuple[int, str], tuple[UUID, int]]:
    """(position, subject) -> (case, version) for every case event in the store.

    Computed from the Case aggregate replayed event by event (not from engine.subjects'
    fold): the holder after the event, the holder before it for hand-overs, co-handlers.
    """
    head = service.recorder.max_notification_id() or 0
    cases: dict[UUID, Case] = {}
    out: dict[tuple[int, str], tuple[UUID, int]] = {}
    start = 0
    while start < head:
        batch = service.recorder.select_notifications(
            start=start, limit=5000, inclusive_of_start=False
        )
        for n in batch:
            event = service.mapper.to_domain_event(n)
            if not isinstance(event, CaseEvent) or event.INDEX:
                continue
            before = cases.get(event.originator_id)
            # before routing, a petition is with its household unit
            held_before = (before.unit or before.household_unit, before.level) if before else None
            case = event.mutate(before)
            assert isinstance(case, Case)
            cases[event.originator_id] = case
            units = {(case.unit or case.household_unit, case.level)}
            handover = (CaseRouted, CaseReturned, CaseReferred, CaseEscalated)
            if held_before is not None and isinstance(event, handover):
                units.add(held_before)
            for co in case.co_handlers:
                units.add((co, service.rules.jurisdiction.unit(co).level))
            for unit, level in units:
                token = unit.removeprefix("dept:") if level is Level.DEPARTMENT else unit
                subject = f"{prefix}.{level.value}.{token}.{event.name}"
                out[(n.id, subject)] = (event.originator_id, event.originator_version)
        start = batch[-1].id if batch else head
    return out


def check_delivery(service: CaseService, received: list[Received], prefix: str) -> int:
    """Every event once per subject, nothing else, and per case and subject in version order."""
    expected = expected_messages(service, prefix)
    got = [(r.envelope["position"], r.subject) for r in received]
    assert len(got) == len(set(got)), "a message was delivered twice"
    missing, extra = set(expected) - set(got), set(got) - set(expected)
    assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])
    assert all(r.msg_id == f"{r.envelope['position']}:{r.subject}" for r in received)
    last: dict[tuple[str, str], int] = defaultdict(int)
    for r in sorted(received, key=lambda r: r.seq):
        key = (r.envelope["case_id"], r.subject.rsplit(".", 1)[0])
        version = r.envelope["aggregate_version"]
        assert version > last[key], f"case {key[0]} out of order on {key[1]}"
        last[key] = version
    return len(got)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)

"""The event store as the relay's outbox: what to publish next, and how far it got.

The relay (engine.bus) asks `Outbox.read(after, limit)` for the next stretch of the
notification log turned into messages, publishes them, and only when every one is
acknowledged calls `commit(start, last)`, which moves its tracked position in the view
store (`lianhu_positions`, name `nats_relay`). Everything here is synchronous: the relay
calls it from a thread executor.

Each message carries a `Nats-Msg-Id` of `<position>:<subject>`: one log position, one id
per subject it goes to, the same every time the log is re-read.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple
from uuid import UUID

import orjson

from engine.envelope import envelope, stored_data, stored_envelope
from engine.events import EVENT_TYPES, CaseEvent, PetitionFiled
from engine.service import CaseService
from engine.subjects import HANDOVER_NAMES, Holding, concerned, concerned_units, subject
from engine.viewstore import ViewStore, locked_position, set_position
from routing_rules import Level, RuleSetError

log = logging.getLogger(__name__)

RELAY_NAME = "nats_relay"
_CASE_TOPICS: dict[str, type[CaseEvent]] = {cls.TOPIC: cls for cls in EVENT_TYPES.values()}


class Outgoing(NamedTuple):
    """One message to publish: an event's envelope on one subject."""

    position: int
    case_id: UUID
    version: int
    subject: str
    msg_id: str
    payload: bytes


def msg_id(position: int, subject: str) -> str:
    return f"{position}:{subject}"


def position_of(msg_id: str) -> int | None:
    """The log position a relay message id names (None for an id the relay did not make)."""
    head, sep, _ = msg_id.partition(":")
    return int(head) if sep and head.isdigit() else None


@dataclass(frozen=True)
class Batch:
    messages: list[Outgoing]
    events: int  # case events in it
    last: int  # the last log position read (0: nothing new)


@dataclass(frozen=True)
class Lag:
    """How far the relay is behind the log."""

    position: int
    head: int
    seconds: float  # age of the oldest event not yet published (0 when caught up)

    @property
    def events(self) -> int:
        """Log positions not yet published (case-number index entries included)."""
        return max(self.head - self.position, 0)


class Outbox:
    """Reads the log for the relay; tracks its position. Use one per relay."""

    def __init__(
        self,
        service: CaseService,
        views: ViewStore,
        *,
        prefix: str = "cases",
        name: str = RELAY_NAME,
        cache_size: int = 100_000,
    ) -> None:
        self.service = service
        self.views = views
        self.prefix = prefix
        self.name = name
        self.cache_size = cache_size
        self._holdings: OrderedDict[UUID, tuple[int, Holding]] = OrderedDict()

    # -- position -----------------------------------------------------------------------------

    def position(self) -> int:
        return self.views.position(self.name)

    def head(self) -> int:
        return self.service.recorder.max_notification_id() or 0

    def commit(self, start: int, last: int) -> None:
        """Move the tracked position from `start` to `last` (every message up to it acked)."""
        with self.views.transaction() as cur:
            current = locked_position(cur, self.name)
            if current != start:
                raise RuntimeError(
                    f"{self.name} position moved from {start} to {current} meanwhile: "
                    "is a second relay running on this store?"
                )
            set_position(cur, self.name, last)

    def reset(self, position: int) -> None:
        """Set the position by hand (`lianhu relay --from-position`): re-publish after it."""
        with self.views.transaction() as cur:
            set_position(cur, self.name, position)

    # -- reading ------------------------------------------------------------------------------

    def read(self, after: int, limit: int, *, fast: bool = True) -> Batch:
        """The messages of up to `limit` log positions after `after`, in log order.

        `fast`: envelopes from the stored JSON (engine.envelope.stored_data) where it can;
        False decodes every event through pydantic (the reference the tests compare with)."""
        notifications = self.service.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        if not notifications:
            return Batch([], 0, 0)
        messages: list[Outgoing] = []
        events = 0
        mapper = self.service.mapper
        fast = fast and mapper.compressor is None and mapper.cipher is None
        for n in notifications:
            cls = _CASE_TOPICS.get(n.topic)
            if cls is None:
                continue  # case-number index entries: not case history, not decoded
            events += 1
            if fast:
                state = orjson.loads(n.state)
                data = stored_data(n.topic, n.state, state)
                if data is not None:
                    oid = n.originator_id
                    case_id = oid if isinstance(oid, UUID) else UUID(oid)
                    messages += self._stored_messages(
                        n.id, n.topic, cls.__name__, case_id, n.originator_version, state, data
                    )
                    continue
            event = mapper.to_domain_event(n)
            assert isinstance(event, CaseEvent)
            messages += self._messages(n.id, event)
        return Batch(messages, events, notifications[-1].id)

    def _stored_messages(
        self,
        position: int,
        topic: str,
        name: str,
        case_id: UUID,
        version: int,
        state: dict[str, Any],
        data: bytes,
    ) -> list[Outgoing]:
        """`_messages` from the stored JSON (`stored_data`): no pydantic model."""
        if name == "PetitionFiled":
            before = None
            after = Holding.filed_stored(state)
        else:
            before = self._before_version(case_id, version)
            if before is None:
                raise RuntimeError(f"no holding for {case_id} before {name}")
            after = before.after_stored(name, state)
        self._remember(case_id, version, after)
        payload = stored_envelope(
            position, topic, str(case_id), version, state["timestamp"], data, after.number
        )
        units = concerned_units(before, after, name in HANDOVER_NAMES, self._level_of)
        prefix = self.prefix
        out = []
        for level, unit in units:
            subj = subject(prefix, level, unit, name)
            out.append(Outgoing(position, case_id, version, subj, f"{position}:{subj}", payload))
        return out

    def _messages(self, position: int, event: CaseEvent) -> list[Outgoing]:
        before = self._before(event)
        if isinstance(event, PetitionFiled):
            after = Holding.filed(event)
        elif before is None:
            raise RuntimeError(f"no holding for {event.originator_id} before {event.name}")
        else:
            after = before.after(event)
        self._remember(event.originator_id, event.originator_version, after)
        payload = envelope(position, event, after.number)
        out = []
        for level, unit in concerned(before, after, event, self._level_of):
            subj = subject(self.prefix, level, unit, event.name)
            out.append(
                Outgoing(
                    position,
                    event.originator_id,
                    event.originator_version,
                    subj,
                    msg_id(position, subj),
                    payload,
                )
            )
        return out

    def _before(self, event: CaseEvent) -> Holding | None:
        return self._before_version(event.originator_id, event.originator_version)

    def _before_version(self, case_id: UUID, version: int) -> Holding | None:
        if version == 1:
            return None
        cached = self._holdings.get(case_id)
        if cached is not None and cached[0] == version - 1:
            return cached[1]
        case = self.service.get_case(case_id, version=version - 1)
        return Holding(case.number, case.unit, case.level, case.co_handlers)

    def _remember(self, case_id: UUID, version: int, holding: Holding) -> None:
        self._holdings[case_id] = (version, holding)
        self._holdings.move_to_end(case_id)
        while len(self._holdings) > self.cache_size:
            self._holdings.popitem(last=False)

    def _level_of(self, unit: str) -> Level:
        try:
            return self.service.rules.jurisdiction.unit(unit).level
        except RuleSetError:
            # a unit the rule set in force no longer knows: departments say so by their code
            return Level.DEPARTMENT if unit.startswith("dept:") else Level.VILLAGE

    # -- lag ------------------------------------------------------------------------------------

    def lag(self, now: Callable[[], datetime] | None = None) -> Lag:
        position, head = self.position(), self.head()
        seconds = 0.0
        if head > position:
            oldest = self.service.recorder.select_notifications(
                start=position, limit=1, inclusive_of_start=False
            )
            if oldest:
                event = self.service.mapper.to_domain_event(oldest[0])
                moment = (now or (lambda: datetime.now(tz=UTC)))()
                if isinstance(event, CaseEvent):
                    seconds = max((moment - event.timestamp).total_seconds(), 0.0)
        return Lag(position, head, seconds)

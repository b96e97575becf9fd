"""The event catalogue of a case (DESIGN §4): immutable facts, in the past tense.

Every event is a frozen pydantic model with an explicit, stable topic
(`lianhu.<Name>.v<N>`), so moving or renaming a module never breaks stored
history. A changed event gets a new `class_version` and an `upcast_vN_vN+1`
static method, never an edited field (see docs/events.md).

Each event's `apply` only assigns: it reads no clock, rule set or settings, so
replaying the log rebuilds exactly the case that was recorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.domain import BaseAggregate, CanInitAggregate, CanMutateAggregate
from eventsourcing.utils import register_topic
from pydantic import BaseModel, ConfigDict

from engine.values import (
    CloseReason,
    DeadlineKind,
    EscalationTrigger,
    Outcome,
    Reporter,
    ReturnReason,
    Status,
)
from routing_rules import Level, Urgency

if TYPE_CHECKING:
    from engine.case import Case


class CaseEvent(BaseModel, CanMutateAggregate[UUID]):
    """Base of every case event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TOPIC: ClassVar[str] = ""
    class_version: ClassVar[int] = 1
    INDEX: ClassVar[bool] = False  # index events (case numbers) are not case history

    originator_id: UUID
    originator_version: int
    timestamp: datetime

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        topic = f"lianhu.{cls.__name__}.v1"
        cls.TOPIC = topic
        register_topic(topic, cls)
        if not cls.INDEX:
            EVENT_TYPES[cls.__name__] = cls

    def apply(self, aggregate: Any) -> None:
        self.evolve(aggregate)

    def evolve(self, case: Case) -> None:
        """Assign this fact's consequences to the case. Overridden per event."""

    @property
    def name(self) -> str:
        return type(self).__name__


EVENT_TYPES: dict[str, type[CaseEvent]] = {}

A = TypeVar("A", bound=BaseAggregate[UUID])


def started(aggregate_class: type[A], created: CanInitAggregate[UUID]) -> A:
    """A new aggregate from its first event, which stays pending (to be saved).

    What the library's `BaseAggregate._create` ends with, and `created.mutate(None)`
    does when the aggregate is read back, minus the library's generic argument
    plumbing (a tenth of a filing's CPU): our aggregates' `__init__` takes no
    arguments, and the event's `apply` assigns everything it carries.
    """
    aggregate = aggregate_class.__new__(aggregate_class)
    aggregate.__base_init__(created.originator_id, created.originator_version, created.timestamp)
    aggregate.__init__()  # type: ignore[misc]
    created.apply(aggregate)
    aggregate.pending_events.append(created)
    return aggregate


class PetitionFiled(CaseEvent, CanInitAggregate[UUID]):
    """A resident's petition was recorded, in their own words."""

    originator_topic: str
    number: str
    household_unit: str
    channel: str
    category: str
    urgency: Urgency
    title: str
    description: str
    location: str
    reporter: Reporter
    raised_at: datetime
    fingerprint: str

    def evolve(self, case: Case) -> None:
        case.number = self.number
        case.household_unit = self.household_unit
        case.channel = self.channel
        case.category = self.category
        case.urgency = self.urgency
        case.title = self.title
        case.description = self.description
        case.location = self.location
        case.reporter = self.reporter
        case.raised_at = self.raised_at
        case.fingerprint = self.fingerprint


class CaseRouted(CaseEvent):
    """The routing rules gave the case an owner, co-handlers, a ladder and deadlines."""

    rule_id: str
    rule_set_hash: str
    handler: str
    handler_level: Level
    co_handlers: tuple[str, ...]
    ladder: tuple[str, ...]
    dispatcher: str
    respond_due: datetime
    resolve_due: datetime

    def evolve(self, case: Case) -> None:
        case.rule_id = self.rule_id
        case.rule_set_hash = self.rule_set_hash
        case.co_handlers = self.co_handlers
        case.ladder = self.ladder
        case.dispatcher = self.dispatcher
        case.assign(
            self.handler, self.handler_level, self.respond_due, self.resolve_due, self.timestamp
        )


class CaseAccepted(CaseEvent):
    """The unit holding the case signed for it (受理)."""

    unit: str
    actor: str

    def evolve(self, case: Case) -> None:
        case.status = Status.ACCEPTED
        case.respond_due = None
        case.accepted_at = self.timestamp


class CaseReturned(CaseEvent):
    """The unit holding the case returned it to the dispatcher (退回)."""

    unit: str
    actor: str
    reason: ReturnReason
    note: str
    to_unit: str
    to_level: Level

    def evolve(self, case: Case) -> None:
        case.returns += 1
        # the dispatcher must act on it, but the resolve clock keeps running:
        # bouncing a case does not buy time.
        case.status = Status.RETURNED
        case.unit, case.level = self.to_unit, self.to_level
        case.respond_due = None
        # the resolve deadline is the same one, so its lights stay fired
        case.sla_fired = frozenset(f for f in case.sla_fired if not f.endswith(":respond"))


class CaseReferred(CaseEvent):
    """The case was passed to another unit, retold in the sender's words."""

    from_unit: str
    to_unit: str
    to_level: Level
    actor: str
    summary: str
    category: str
    urgency: Urgency
    hop: int
    respond_due: datetime
    resolve_due: datetime

    def evolve(self, case: Case) -> None:
        case.hops = self.hop
        case.referrals += 1
        case.category, case.urgency = self.category, self.urgency
        case.summary = self.summary
        case.assign(self.to_unit, self.to_level, self.respond_due, self.resolve_due, self.timestamp)


class SlaWarned(CaseEvent):
    """A deadline of the current assignment is near (yellow light)."""

    unit: str
    kind: DeadlineKind
    due: datetime

    def evolve(self, case: Case) -> None:
        case.sla_fired = case.sla_fired | {f"warned:{self.kind}"}


class SlaBreached(CaseEvent):
    """A deadline of the current assignment passed unmet (red light)."""

    unit: str
    kind: DeadlineKind
    due: datetime

    def evolve(self, case: Case) -> None:
        case.sla_fired = case.sla_fired | {f"breached:{self.kind}"}
        case.breaches += 1
        case.supervised = True  # every breach puts the case under supervision (督办)


class CaseEscalated(CaseEvent):
    """The case moved one or more rungs up its ladder."""

    from_unit: str
    to_unit: str
    to_level: Level
    trigger: EscalationTrigger
    actor: str
    summary: str
    hop: int
    ladder: tuple[str, ...]
    respond_due: datetime
    resolve_due: datetime

    def evolve(self, case: Case) -> None:
        case.hops = self.hop
        case.ladder = self.ladder
        case.supervised = case.supervised or self.trigger is EscalationTrigger.SLA_BREACH
        if self.summary:
            case.summary = self.summary
        case.assign(self.to_unit, self.to_level, self.respond_due, self.resolve_due, self.timestamp)


class DeadlineExtended(CaseEvent):
    """An approver moved a deadline of the current assignment (延期)."""

    kind: DeadlineKind
    approver: str
    reason: str
    new_due: datetime

    def evolve(self, case: Case) -> None:
        if self.kind is DeadlineKind.RESPOND:
            case.respond_due = self.new_due
        else:
            case.resolve_due = self.new_due
        case.sla_fired = frozenset(f for f in case.sla_fired if not f.endswith(f":{self.kind}"))


class CaseSuspended(CaseEvent):
    """The clock stopped while the unit waits for the resident."""

    actor: str
    reason: str

    def evolve(self, case: Case) -> None:
        case.suspended_from = case.status
        case.suspended_at = self.timestamp
        case.status = Status.SUSPENDED


class CaseResumed(CaseEvent):
    """The clock restarted; due times moved by the time paused."""

    actor: str
    reason: str
    respond_due: datetime | None
    resolve_due: datetime | None

    def evolve(self, case: Case) -> None:
        case.status = case.suspended_from or Status.ROUTED
        case.suspended_from = None
        case.suspended_at = None
        case.respond_due, case.resolve_due = self.respond_due, self.resolve_due


class CaseResolved(CaseEvent):
    """The unit holding the case says it is done, and how."""

    unit: str
    actor: str
    outcome: Outcome
    resolution: str

    def evolve(self, case: Case) -> None:
        case.status = Status.RESOLVED
        case.outcome = self.outcome
        case.resolved_at = self.timestamp
        case.resolve_due_at_resolution = case.resolve_due
        case.respond_due = None
        case.resolve_due = None
        case.rating = None


class CaseReopened(CaseEvent):
    """The resident was not satisfied; the same unit works on it again."""

    actor: str
    reason: str
    resolve_due: datetime

    def evolve(self, case: Case) -> None:
        case.status = Status.ACCEPTED
        case.reopened += 1
        case.outcome = None
        case.resolved_at = None
        case.resolve_due = self.resolve_due
        case.sla_fired = frozenset()


class SatisfactionRated(CaseEvent):
    """The resident rated the resolution (群众评议)."""

    score: int
    request_matched: bool
    comment: str

    def evolve(self, case: Case) -> None:
        case.rating = self.score
        case.request_matched = self.request_matched


class CaseClosed(CaseEvent):
    """The case ended: rated, closed automatically, or withdrawn."""

    reason: CloseReason
    actor: str
    note: str

    def evolve(self, case: Case) -> None:
        case.close_reason = self.reason
        case.status = Status.CLOSED
        case.respond_due = None
        case.resolve_due = None

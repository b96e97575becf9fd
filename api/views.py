"""What the API shows of a case and its history. Personal data is always masked here."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from engine.case import Case
from engine.events import CaseEvent, PetitionFiled
from engine.values import CloseReason, Outcome, Reporter, Status
from routing_rules import Level, Urgency

# Recorded for the engine's own use, never shown: `fingerprint` hashes the whole petition,
# reporter included, so with the rest of the petition visible it would let anyone test
# guesses of the masked phone number.
_HIDDEN_EVENT_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic", "fingerprint"}
)


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class CaseView(View):
    """A case as it stands now (the ETag header carries `version`)."""

    id: UUID
    number: str = Field(description="short number residents read over the phone")
    version: int
    status: Status
    # where it is
    unit: str = Field(description="the unit holding the case now")
    level: Level
    dispatcher: str
    co_handlers: tuple[str, ...]
    ladder: tuple[str, ...] = Field(description="escalation rungs still above the case")
    rule_id: str
    rule_set_hash: str
    # what it is
    household_unit: str
    channel: str
    category: str
    urgency: Urgency
    title: str
    description: str = Field(description="the resident's own words")
    summary: str = Field(description="the case as last passed on (empty if never referred)")
    location: str
    reporter: Reporter = Field(description="masked")
    # how it went
    hops: int
    referrals: int
    returns: int
    breaches: int
    reopened: int
    supervised: bool
    outcome: Outcome | None
    rating: int | None
    request_matched: bool | None
    close_reason: CloseReason | None
    # when
    raised_at: datetime | None
    created_at: datetime
    modified_at: datetime
    assigned_at: datetime | None
    accepted_at: datetime | None
    respond_due: datetime | None
    resolve_due: datetime | None
    suspended_at: datetime | None
    resolved_at: datetime | None

    @classmethod
    def of(cls, case: Case) -> CaseView:
        return cls(
            id=case.id,
            number=case.number,
            version=case.version,
            status=case.status,
            unit=case.unit,
            level=case.level,
            dispatcher=case.dispatcher,
            co_handlers=case.co_handlers,
            ladder=case.ladder,
            rule_id=case.rule_id,
            rule_set_hash=case.rule_set_hash,
            household_unit=case.household_unit,
            channel=case.channel,
            category=case.category,
            urgency=case.urgency,
            title=case.title,
            description=case.description,
            summary=case.summary,
            location=case.location,
            reporter=case.reporter.masked(),
            hops=case.hops,
            referrals=case.referrals,
            returns=case.returns,
            breaches=case.breaches,
            reopened=case.reopened,
            supervised=case.supervised,
            outcome=case.outcome,
            rating=case.rating,
            request_matched=case.request_matched,
            close_reason=case.close_reason,
            raised_at=case.raised_at,
            created_at=case.created_on,
            modified_at=case.modified_on,
            assigned_at=case.assigned_at,
            accepted_at=case.accepted_at,
            respond_due=case.respond_due,
            resolve_due=case.resolve_due,
            suspended_at=case.suspended_at,
            resolved_at=case.resolved_at,
        )


class EventView(View):
    """One recorded fact about a case."""

    name: str = Field(description="the event type, e.g. CaseAccepted")
    version: int = Field(description="the case's version after this event")
    timestamp: datetime
    data: dict[str, Any]

    @classmethod
    def of(cls, event: CaseEvent) -> EventView:
        data = event.model_dump(mode="json", exclude=set(_HIDDEN_EVENT_FIELDS))
        if isinstance(event, PetitionFiled):
            data["reporter"] = event.reporter.masked().model_dump(mode="json")
        return cls(
            name=event.name,
            version=event.originator_version,
            timestamp=event.timestamp,
            data=data,
        )


class HistoryView(View):
    """Every event of a case, oldest first."""

    case_id: UUID
    version: int
    events: list[EventView]

    @classmethod
    def of(cls, case_id: UUID, events: list[CaseEvent]) -> HistoryView:
        return cls(
            case_id=case_id,
            version=events[-1].originator_version,
            events=[EventView.of(e) for e in events],
        )

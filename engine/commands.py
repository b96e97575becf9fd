"""Commands: frozen pydantic models with imperative names, validated on construction.

The HTTP API takes these as request bodies and the CLI builds them from its
options, so both edges validate exactly alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, field_validator

from engine.values import (
    ActorId,
    Channel,
    CloseReason,
    DeadlineKind,
    EscalationTrigger,
    Immutable,
    LongText,
    Note,
    Outcome,
    Reporter,
    ReturnReason,
    ShortText,
    UnitCode,
)
from routing_rules import Urgency

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

Summary = Annotated[str, Field(min_length=1, max_length=5000)]


class Command(Immutable):
    """Base of every command."""


class FilePetition(Command):
    """Record a resident's petition and route it at once."""

    household_unit: UnitCode = Field(description="household unit code, e.g. 510123104201-03-07")
    channel: Channel = Channel.VISIT
    category: Annotated[str, Field(min_length=1, max_length=64)]
    urgency: Urgency = Urgency.NORMAL
    title: ShortText
    description: LongText = Field(description="the resident's own words")
    location: Annotated[str, Field(max_length=200)] = ""
    reporter: Reporter = Reporter()
    raised_at: AwareDatetime | None = Field(
        default=None, description="when the resident raised it; defaults to now"
    )

    @field_validator("raised_at")
    @classmethod
    def _not_ancient(cls, value: datetime | None) -> datetime | None:
        if value is not None and value < EARLIEST:
            raise ValueError("raised_at is before 2000-01-01; check the date")
        return value


class AcceptCase(Command):
    """The unit holding the case signs for it."""

    unit: UnitCode
    actor: ActorId


class ReturnCase(Command):
    """The unit holding the case gives it back to the dispatcher, with a reason."""

    unit: UnitCode
    actor: ActorId
    reason: ReturnReason
    note: Note = ""


class ReferCase(Command):
    """The unit holding the case passes it on, retold in its own words."""

    unit: UnitCode
    to_unit: UnitCode
    actor: ActorId
    summary: Summary = Field(description="the case as passed on, in the sender's words")
    category: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="category as passed on; defaults to the current one"
    )
    urgency: Urgency | None = Field(default=None, description="defaults to the current one")


class EscalateCase(Command):
    """Move the case up its ladder (by default one rung)."""

    actor: ActorId
    to_unit: UnitCode | None = Field(default=None, description="defaults to the next rung")
    trigger: EscalationTrigger = EscalationTrigger.MANUAL
    summary: Annotated[str, Field(max_length=5000)] = ""


class ExtendDeadline(Command):
    """Move a running deadline later, with an approver and a reason (延期)."""

    kind: DeadlineKind = DeadlineKind.RESOLVE
    new_due: AwareDatetime
    approver: ActorId
    reason: ShortText


class SuspendCase(Command):
    """Stop the clock while waiting for the resident."""

    actor: ActorId
    reason: ShortText


class ResumeCase(Command):
    """Restart the clock; the time paused does not count."""

    actor: ActorId
    reason: Note = ""


class ResolveCase(Command):
    """The unit holding the case says it is done."""

    unit: UnitCode
    actor: ActorId
    outcome: Outcome
    resolution: LongText


class ReopenCase(Command):
    """The resident is not satisfied with the resolution."""

    actor: ActorId
    reason: ShortText


class RateCase(Command):
    """The resident's rating of the resolution (群众评议)."""

    score: Annotated[int, Field(ge=1, le=5)]
    request_matched: bool = Field(description="was what was done what the resident asked for")
    comment: Note = ""


class CloseCase(Command):
    """Close a resolved case."""

    actor: ActorId
    reason: Literal[CloseReason.RATED, CloseReason.AUTO] = CloseReason.RATED


class WithdrawCase(Command):
    """The resident withdraws an open case."""

    actor: ActorId
    reason: Note = ""

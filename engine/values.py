"""Value types shared by events, commands and the API."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints


class Immutable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Status(StrEnum):
    ROUTED = "routed"  # assigned to a unit, waiting for it to sign (受理)
    ACCEPTED = "accepted"  # the unit signed for it and works on it
    RETURNED = "returned"  # a unit returned it (退回); back with the dispatcher
    SUSPENDED = "suspended"  # clock paused, waiting for the resident
    RESOLVED = "resolved"  # the unit says it is done; the resident may rate or reopen
    CLOSED = "closed"  # final


OPEN_STATUSES = frozenset({Status.ROUTED, Status.ACCEPTED, Status.RETURNED, Status.SUSPENDED})


class Channel(StrEnum):
    VISIT = "visit"
    PHONE = "phone"
    APP = "app"
    MEETING = "meeting"
    HOTLINE = "hotline"


class ReturnReason(StrEnum):
    NOT_OUR_RESPONSIBILITY = "not_our_responsibility"
    INSUFFICIENT_INFORMATION = "insufficient_information"
    DUPLICATE = "duplicate"


class Outcome(StrEnum):
    SOLVED = "solved"
    MEDIATED_SUCCESS = "mediated_success"
    MEDIATED_FAILURE = "mediated_failure"
    EXPLAINED = "explained"
    NOT_ACTIONABLE = "not_actionable"


class DeadlineKind(StrEnum):
    RESPOND = "respond"
    RESOLVE = "resolve"


class EscalationTrigger(StrEnum):
    SLA_BREACH = "sla_breach"
    MANUAL = "manual"
    RESIDENT_REQUEST = "resident_request"
    REPEATED_TRANSFER = "repeated_transfer"  # returned or referred three times (12345 practice)


class CloseReason(StrEnum):
    RATED = "rated"
    AUTO = "auto"
    WITHDRAWN = "withdrawn"


ActorId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
UnitCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class Reporter(Immutable):
    """Personal data of the resident who raised the case (PIPL).

    Kept in this one group so that masking and encryption touch one place.
    """

    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)] = ""
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=30)] = ""
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""

    def masked(self) -> Reporter:
        """The same reporter with every field masked (for the wire and for auditors)."""
        return Reporter(
            name=_mask(self.name, keep_start=1, keep_end=0),
            phone=_mask(self.phone, keep_start=3, keep_end=4),
            address=_mask(self.address, keep_start=6, keep_end=0),
        )


def _mask(text: str, *, keep_start: int, keep_end: int) -> str:
    if not text:
        return ""
    if len(text) <= keep_start + keep_end:
        return "*" * len(text)
    end = text[len(text) - keep_end :] if keep_end else ""
    return text[:keep_start] + "*" * (len(text) - keep_start - keep_end) + end

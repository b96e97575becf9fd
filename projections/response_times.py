"""Response times (DESIGN §7): assignment response, first response, resolution, on time.

- assignment response = accepted − assigned, for each assignment (routing, referral or
  escalation) that its unit accepted; a case returned and then accepted by its dispatcher
  is not an assignment (kind `assignment`);
- first response = first CaseAccepted − raised_at (kind `first`);
- resolution = CaseResolved − raised_at, only the final one: a reopening cancels the
  previous resolution (kind `resolution`, flag = on time: resolved at or before the
  resolve due time in force, extensions and suspensions included).

Facts carry the unit that acted, its level and area (township or department), and the
case's category and urgency as they stood then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from engine.events import (
    CaseAccepted,
    CaseEscalated,
    CaseEvent,
    CaseReferred,
    CaseReopened,
    CaseResolved,
    CaseResumed,
    CaseReturned,
    CaseRouted,
    DeadlineExtended,
    PetitionFiled,
)
from engine.values import DeadlineKind
from projections.fold import (
    area_of,
    case_key,
    changed,
    epoch,
)
from projections.measures import (
    Fact,
    FactModel,
    bucket_of,
    fact_from,
)

KINDS = ("assignment", "first", "resolution")


@dataclass(frozen=True)
class CaseTimes:
    raised: float
    category: str
    urgency: str
    unit: str = ""
    level: str = ""
    assigned_at: float | None = None  # the open assignment, None once accepted or returned
    first_done: bool = False
    resolve_due: float | None = None
    resolution: dict[str, Any] | None = None  # the fact of the standing resolution

    @classmethod
    def decode(cls, data: dict[str, Any]) -> CaseTimes:
        return cls(**data)


def _duration_fact(
    kind: str, s: CaseTimes, event: CaseEvent, unit: str, start: float, flag: int = 0
) -> Fact:
    t = epoch(event.timestamp)
    ms = round((t - start) * 1000)
    return Fact(
        kind=kind, case_id=case_key(event.originator_id), at=t, recorded=t, unit=unit,
        area=area_of(unit), level=s.level, category=s.category, urgency=s.urgency,
        bucket=bucket_of(ms), value=ms, flag=flag,
    )  # fmt: skip


def evolve(s: CaseTimes | None, event: CaseEvent) -> tuple[CaseTimes | None, list[Fact]]:
    """The pure fold: a case's timing state, and the facts this event adds."""
    if isinstance(event, PetitionFiled):
        return CaseTimes(epoch(event.raised_at), event.category, event.urgency.value), []
    if s is None:
        return None, []
    t = epoch(event.timestamp)
    match event:
        case CaseRouted() | CaseEscalated():
            unit = event.handler if isinstance(event, CaseRouted) else event.to_unit
            level = event.handler_level if isinstance(event, CaseRouted) else event.to_level
            return changed(
                s, unit=unit, level=level.value, assigned_at=t, resolve_due=epoch(event.resolve_due)
            ), []
        case CaseReferred():
            return changed(
                s, unit=event.to_unit, level=event.to_level.value, assigned_at=t,
                category=event.category, urgency=event.urgency.value,
                resolve_due=epoch(event.resolve_due),
            ), []  # fmt: skip
        case CaseReturned():
            return changed(s, unit=event.to_unit, level=event.to_level.value, assigned_at=None), []
        case CaseAccepted():
            facts = []
            if s.assigned_at is not None:
                facts.append(_duration_fact("assignment", s, event, event.unit, s.assigned_at))
            if not s.first_done:
                facts.append(_duration_fact("first", s, event, event.unit, s.raised))
            return changed(s, assigned_at=None, first_done=True), facts
        case DeadlineExtended() if event.kind is DeadlineKind.RESOLVE:
            return changed(s, resolve_due=epoch(event.new_due)), []
        case CaseResumed():
            due = epoch(event.resolve_due) if event.resolve_due else None
            return changed(s, resolve_due=due), []
        case CaseResolved():
            on_time = int(s.resolve_due is not None and t <= s.resolve_due)
            fact = _duration_fact("resolution", s, event, event.unit, s.raised, on_time)
            return changed(s, resolution=fact.__dict__.copy()), [fact]
        case CaseReopened():
            facts = [fact_from(s.resolution).cancelled(t)] if s.resolution else []
            return changed(s, resolution=None, resolve_due=epoch(event.resolve_due)), facts
        case _:
            return s, []


class ResponseTimes(FactModel[CaseTimes]):
    """How long units take to accept, to first respond, and to resolve."""

    base_name: ClassVar[str] = "response_times"
    name: ClassVar[str] = "response_times.g1"
    prefix: ClassVar[str] = "rt"
    state_type: ClassVar[Any] = CaseTimes
    kinds: ClassVar[tuple[str, ...]] = KINDS

    def evolve(
        self, state: CaseTimes | None, event: CaseEvent
    ) -> tuple[CaseTimes | None, list[Any]]:
        return evolve(state, event)

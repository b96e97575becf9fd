"""The plan's indicators (DOMAIN §4), as facts (projections.measures):

- `filed`: one per petition, at its recording time; flag = collection timely
  (recorded − raised ≤ 24 h); area = the village (the heat map counts these
  per village × category × week);
- `local`: one per final resolution; flag = resolved at household or group level;
- `mediation`: one per final resolution with a mediated outcome; flag = success;
- `satisfaction`: one per rated case (its latest rating); flag = score ≥ 4;
- `assignment`: one per assignment (routing, referral, escalation) of a unit;
  flag = the unit returned it (退回) — the return rate per unit or department;
  value = returned as "not our responsibility" (unclear responsibility).

A reopening cancels the `local` and `mediation` facts of the resolution it undoes.
Cases without an owner (open, returned to the dispatcher, not yet re-routed) are
read from the board at the moment asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from engine.events import (
    CaseEscalated,
    CaseEvent,
    CaseReferred,
    CaseReopened,
    CaseResolved,
    CaseReturned,
    CaseRouted,
    PetitionFiled,
    SatisfactionRated,
)
from engine.values import Outcome, ReturnReason
from engine.viewstore import ViewCursor
from projections.fold import (
    area_of,
    case_key,
    changed,
    epoch,
    village_of,
)
from projections.measures import (
    Agg,
    Fact,
    FactModel,
    Filters,
    fact_from,
)

TIMELY_SECONDS = 24 * 3600
LOCAL_LEVELS = frozenset({"household", "group"})
MEDIATED = frozenset({Outcome.MEDIATED_SUCCESS, Outcome.MEDIATED_FAILURE})
KINDS = ("filed", "local", "mediation", "satisfaction", "assignment")


@dataclass(frozen=True)
class CaseFacts:
    category: str
    urgency: str
    unit: str = ""
    level: str = ""
    resolution: tuple[dict[str, Any], ...] = ()  # standing facts of the last resolution
    rating: dict[str, Any] | None = None

    @classmethod
    def decode(cls, data: dict[str, Any]) -> CaseFacts:
        data["resolution"] = tuple(data["resolution"])
        return cls(**data)


def _fact(kind: str, s: CaseFacts, event: CaseEvent, unit: str, level: str, flag: int) -> Fact:
    t = epoch(event.timestamp)
    return Fact(
        kind=kind, case_id=case_key(event.originator_id), at=t, recorded=t, unit=unit,
        area=area_of(unit), level=level, category=s.category, urgency=s.urgency, flag=flag,
    )  # fmt: skip


def evolve(s: CaseFacts | None, event: CaseEvent) -> tuple[CaseFacts | None, list[Fact]]:
    """The pure fold: what a case needs remembered, and the facts this event adds."""
    t = epoch(event.timestamp)
    if isinstance(event, PetitionFiled):
        s = CaseFacts(event.category, event.urgency.value, event.household_unit, "household")
        timely = int(t - epoch(event.raised_at) <= TIMELY_SECONDS)
        filed = changed(
            _fact("filed", s, event, event.household_unit, "household", timely),
            area=village_of(event.household_unit),
            urgency="",
        )
        return s, [filed]
    if s is None:
        return None, []
    match event:
        case CaseRouted() | CaseReferred() | CaseEscalated():
            unit = event.handler if isinstance(event, CaseRouted) else event.to_unit
            level = (event.handler_level if isinstance(event, CaseRouted) else event.to_level).value
            if isinstance(event, CaseReferred):
                s = changed(s, category=event.category, urgency=event.urgency.value)
            s = changed(s, unit=unit, level=level)
            return s, [_fact("assignment", s, event, unit, level, 0)]
        case CaseReturned():
            back = _fact("assignment", s, event, event.unit, s.level, 1)
            unclear = int(event.reason is ReturnReason.NOT_OUR_RESPONSIBILITY)
            s = changed(s, unit=event.to_unit, level=event.to_level.value)
            return s, [changed(back, n=0, value=unclear)]
        case CaseResolved():
            facts = [_fact("local", s, event, event.unit, s.level, int(s.level in LOCAL_LEVELS))]
            if event.outcome in MEDIATED:
                success = int(event.outcome is Outcome.MEDIATED_SUCCESS)
                facts.append(_fact("mediation", s, event, event.unit, s.level, success))
            return changed(s, resolution=tuple(f.__dict__.copy() for f in facts)), facts
        case CaseReopened():
            undo = [fact_from(f).cancelled(t) for f in s.resolution]
            return changed(s, resolution=()), undo
        case SatisfactionRated():
            undo = [fact_from(s.rating).cancelled(t)] if s.rating else []
            fact = _fact("satisfaction", s, event, s.unit, s.level, int(event.score >= 4))
            return changed(s, rating=fact.__dict__.copy()), [*undo, fact]
        case _:
            return s, []


class Indicators(FactModel[CaseFacts]):
    """Collection timeliness, mediation, satisfaction, local resolution, returns, heat map."""

    base_name: ClassVar[str] = "indicators"
    name: ClassVar[str] = "indicators.g1"
    prefix: ClassVar[str] = "in"
    state_type: ClassVar[Any] = CaseFacts
    kinds: ClassVar[tuple[str, ...]] = KINDS

    def evolve(
        self, state: CaseFacts | None, event: CaseEvent
    ) -> tuple[CaseFacts | None, list[Any]]:
        return evolve(state, event)

    def query(
        self,
        cur: ViewCursor,
        kind: str,
        filters: Filters,
        group_by: str | tuple[str, ...] | None = None,
        *,
        area_length: int = 9,
    ) -> dict[Any, Agg]:
        """Filings are counted per village (12-digit area), the rest per township."""
        area = 12 if kind == "filed" else area_length
        return super().query(cur, kind, filters, group_by, area_length=area)

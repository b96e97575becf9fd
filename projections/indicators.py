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

from collections.abc import Callable
from typing import Any, ClassVar

from engine.values import Outcome, ReturnReason
from projections.fold import Rec, area_of, ts, village_of
from projections.measures import (
    FactModel,
    FactRow,
    cancelled,
    fact,
    legacy_fact,
)

TIMELY_SECONDS = 24 * 3600
LOCAL_LEVELS = frozenset({"household", "group"})
MEDIATED = frozenset({Outcome.MEDIATED_SUCCESS.value, Outcome.MEDIATED_FAILURE.value})
SUCCESS = Outcome.MEDIATED_SUCCESS.value
UNCLEAR = ReturnReason.NOT_OUR_RESPONSIBILITY.value
KINDS = ("filed", "local", "mediation", "satisfaction", "assignment")

# What a case needs remembered, a tuple: (category, urgency, unit, level, resolution — the
# standing facts of the last resolution —, rating — the standing satisfaction fact or None)
CaseFacts = tuple[Any, ...]
CATEGORY, URGENCY, UNIT, LEVEL, RESOLUTION, RATING = range(6)


def _fact(kind: str, s: CaseFacts, rec: Rec, unit: str, level: str, flag: int) -> FactRow:
    return fact(
        kind, rec.key, rec.t, unit, area_of(unit), level, s[CATEGORY], s[URGENCY], flag=flag
    )


Step = Callable[[CaseFacts, Rec], tuple[CaseFacts, list[FactRow]]]


def _assigned(unit_field: str, level_field: str, retold: bool) -> Step:
    def step(s: CaseFacts, rec: Rec) -> tuple[CaseFacts, list[FactRow]]:
        d, r = rec.d, list(s)
        if retold:
            r[CATEGORY], r[URGENCY] = d["category"], d["urgency"]
        unit, level = d[unit_field], d[level_field]
        r[UNIT], r[LEVEL] = unit, level
        s = tuple(r)
        return s, [_fact("assignment", s, rec, unit, level, 0)]

    return step


def _returned(s: CaseFacts, rec: Rec) -> tuple[CaseFacts, list[FactRow]]:
    d = rec.d
    unit = d["unit"]
    back = fact(
        "assignment", rec.key, rec.t, unit, area_of(unit), s[LEVEL], s[CATEGORY], s[URGENCY],
        n=0, value=int(d["reason"] == UNCLEAR), flag=1,
    )  # fmt: skip
    r = list(s)
    r[UNIT], r[LEVEL] = d["to_unit"], d["to_level"]
    return tuple(r), [back]


def _resolved(s: CaseFacts, rec: Rec) -> tuple[CaseFacts, list[FactRow]]:
    unit, level, outcome = rec.d["unit"], s[LEVEL], rec.d["outcome"]
    facts = [_fact("local", s, rec, unit, level, int(level in LOCAL_LEVELS))]
    if outcome in MEDIATED:
        facts.append(_fact("mediation", s, rec, unit, level, int(outcome == SUCCESS)))
    r = list(s)
    r[RESOLUTION] = tuple(facts)
    return tuple(r), facts


def _reopened(s: CaseFacts, rec: Rec) -> tuple[CaseFacts, list[FactRow]]:
    undo = [cancelled(f, rec.t) for f in s[RESOLUTION]]
    r = list(s)
    r[RESOLUTION] = ()
    return tuple(r), undo


def _rated(s: CaseFacts, rec: Rec) -> tuple[CaseFacts, list[FactRow]]:
    undo = [cancelled(s[RATING], rec.t)] if s[RATING] else []
    rated = _fact("satisfaction", s, rec, s[UNIT], s[LEVEL], int(rec.d["score"] >= 4))
    r = list(s)
    r[RATING] = rated
    return tuple(r), [*undo, rated]


STEPS: dict[str, Step] = {
    "CaseRouted": _assigned("handler", "handler_level", retold=False),
    "CaseReferred": _assigned("to_unit", "to_level", retold=True),
    "CaseEscalated": _assigned("to_unit", "to_level", retold=False),
    "CaseReturned": _returned,
    "CaseResolved": _resolved,
    "CaseReopened": _reopened,
    "SatisfactionRated": _rated,
}  # other events change nothing here


def evolve(s: CaseFacts | None, rec: Rec) -> tuple[CaseFacts | None, list[FactRow]]:
    """The pure fold: what a case needs remembered, and the facts this event adds."""
    if rec.type == "PetitionFiled":
        d = rec.d
        unit = d["household_unit"]
        s = (d["category"], d["urgency"], unit, "household", (), None)
        timely = int(rec.t - ts(d["raised_at"]) <= TIMELY_SECONDS)
        filed = fact(
            "filed", rec.key, rec.t, unit, village_of(unit), "household", d["category"], "",
            flag=timely,
        )  # fmt: skip
        return s, [filed]
    step = STEPS.get(rec.type)
    if s is None or step is None:
        return s, []
    return step(s, rec)


class Indicators(FactModel[CaseFacts]):
    """Collection timeliness, mediation, satisfaction, local resolution, returns, heat map."""

    base_name: ClassVar[str] = "indicators"
    name: ClassVar[str] = "indicators.g1"
    prefix: ClassVar[str] = "in"
    kinds: ClassVar[tuple[str, ...]] = KINDS
    area_lengths: ClassVar[dict[str, int]] = {"filed": 12}  # filings per village
    heat_kinds: ClassVar[tuple[str, ...]] = ("filed",)  # the demand heat map

    @staticmethod
    def decode(data: Any) -> CaseFacts:
        if isinstance(data, dict):  # stored before states were arrays
            data = list(data.values())
        category, urgency, unit, level, resolution, rating = data
        facts = tuple(legacy_fact(f) for f in resolution)
        return (category, urgency, unit, level, facts, legacy_fact(rating))

    evolve = staticmethod(evolve)  # the pure fold itself: one call per event, not two
    reads: ClassVar[frozenset[str] | None] = frozenset({"PetitionFiled", *STEPS})

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

from collections.abc import Callable
from typing import Any, ClassVar

from engine.values import DeadlineKind
from projections.fold import Rec, area_of, ts, ts_or_none
from projections.measures import FactModel, FactRow, bucket_of, cancelled, fact, legacy_fact

KINDS = ("assignment", "first", "resolution")

# A case's timing state, a tuple: (raised, category, urgency, unit, level, assigned_at — the
# open assignment, None once accepted or returned —, first_done, resolve_due, resolution —
# the fact of the standing resolution, or None)
CaseTimes = tuple[Any, ...]
RAISED, CATEGORY, URGENCY, UNIT, LEVEL, ASSIGNED_AT, FIRST_DONE, RESOLVE_DUE, RESOLUTION = range(9)
RESOLVE = DeadlineKind.RESOLVE.value


def _duration_fact(
    kind: str, s: CaseTimes, rec: Rec, unit: str, start: float, flag: int = 0
) -> FactRow:
    ms = round((rec.t - start) * 1000)
    return fact(
        kind, rec.key, rec.t, unit, area_of(unit), s[LEVEL], s[CATEGORY], s[URGENCY],
        bucket=bucket_of(ms), value=ms, flag=flag,
    )  # fmt: skip


Step = Callable[[CaseTimes, Rec], tuple[CaseTimes, list[FactRow]]]


def _assigned(unit_field: str, level_field: str, retold: bool) -> Step:
    def step(s: CaseTimes, rec: Rec) -> tuple[CaseTimes, list[FactRow]]:
        d, r = rec.d, list(s)
        r[UNIT], r[LEVEL], r[ASSIGNED_AT] = d[unit_field], d[level_field], rec.t
        r[RESOLVE_DUE] = ts(d["resolve_due"])
        if retold:
            r[CATEGORY], r[URGENCY] = d["category"], d["urgency"]
        return tuple(r), []

    return step


def _returned(s: CaseTimes, rec: Rec) -> tuple[CaseTimes, list[FactRow]]:
    r = list(s)
    r[UNIT], r[LEVEL], r[ASSIGNED_AT] = rec.d["to_unit"], rec.d["to_level"], None
    return tuple(r), []


def _accepted(s: CaseTimes, rec: Rec) -> tuple[CaseTimes, list[FactRow]]:
    facts = []
    unit = rec.d["unit"]
    if s[ASSIGNED_AT] is not None:
        facts.append(_duration_fact("assignment", s, rec, unit, s[ASSIGNED_AT]))
    if not s[FIRST_DONE]:
        facts.append(_duration_fact("first", s, rec, unit, s[RAISED]))
    r = list(s)
    r[ASSIGNED_AT], r[FIRST_DONE] = None, True
    return tuple(r), facts


def _extended(s: CaseTimes, rec: Rec) -> tuple[CaseTimes, list[FactRow]]:
    if rec.d["kind"] != RESOLVE:
        return s, []
    r = list(s)
    r[RESOLVE_DUE] = ts(rec.d["new_due"])
    return tuple(r), []


def _resumed(s: CaseTimes, rec: Rec) -> tuple[CaseTimes, list[FactRow]]:
    r = list(s)
    r[RESOLVE_DUE] = ts_or_none(rec.d["resolve_due"])
    return tuple(r), []


def _resolved(s: CaseTimes, rec: Rec) -> tuple[CaseTimes, list[FactRow]]:
    due = s[RESOLVE_DUE]
    on_time = int(due is not None and rec.t <= due)
    done = _duration_fact("resolution", s, rec, rec.d["unit"], s[RAISED], on_time)
    r = list(s)
    r[RESOLUTION] = done
    return tuple(r), [done]


def _reopened(s: CaseTimes, rec: Rec) -> tuple[CaseTimes, list[FactRow]]:
    facts = [cancelled(s[RESOLUTION], rec.t)] if s[RESOLUTION] else []
    r = list(s)
    r[RESOLUTION], r[RESOLVE_DUE] = None, ts(rec.d["resolve_due"])
    return tuple(r), facts


STEPS: dict[str, Step] = {
    "CaseRouted": _assigned("handler", "handler_level", retold=False),
    "CaseEscalated": _assigned("to_unit", "to_level", retold=False),
    "CaseReferred": _assigned("to_unit", "to_level", retold=True),
    "CaseReturned": _returned,
    "CaseAccepted": _accepted,
    "DeadlineExtended": _extended,
    "CaseResumed": _resumed,
    "CaseResolved": _resolved,
    "CaseReopened": _reopened,
}  # other events change nothing here


def evolve(s: CaseTimes | None, rec: Rec) -> tuple[CaseTimes | None, list[FactRow]]:
    """The pure fold: a case's timing state, and the facts this event adds."""
    if rec.type == "PetitionFiled":
        d = rec.d
        return (ts(d["raised_at"]), d["category"], d["urgency"], "", "", None, False, None,
                None), []  # fmt: skip
    step = STEPS.get(rec.type)
    if s is None or step is None:
        return s, []
    return step(s, rec)


class ResponseTimes(FactModel[CaseTimes]):
    """How long units take to accept, to first respond, and to resolve."""

    base_name: ClassVar[str] = "response_times"
    name: ClassVar[str] = "response_times.g1"
    prefix: ClassVar[str] = "rt"
    kinds: ClassVar[tuple[str, ...]] = KINDS
    # per acting unit too: "which units are slow" over a county-year, from ~2,400 rows
    marginal_dims: ClassVar[tuple[str, ...]] = ("level", "area", "category", "urgency", "unit")

    @staticmethod
    def decode(data: Any) -> CaseTimes:
        if isinstance(data, dict):  # stored before states were arrays
            data = [*list(data.values())[:8], legacy_fact(data["resolution"])]
        return tuple(data)

    evolve = staticmethod(evolve)  # the pure fold itself: one call per event, not two
    reads: ClassVar[frozenset[str] | None] = frozenset({"PetitionFiled", *STEPS})

"""Plain, independent computations of the figures from case histories (lists of events).

No folds, no tables: loops over each case's events, written from DESIGN §7 directly.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from uuid import UUID

from engine.events import (
    CaseAccepted,
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
from engine.service import CaseService
from engine.values import Outcome, ReturnReason
from projections.similarity import similarity
from routing_rules import Urgency


def histories(
    service: CaseService, ids: list[UUID], as_of: float | None = None
) -> list[list[CaseEvent]]:
    out = []
    for case_id in ids:
        events = service.history(case_id)
        if as_of is not None:
            events = [e for e in events if e.timestamp.timestamp() <= as_of]
        if events:
            out.append(events)
    return out


def ms(seconds: float) -> int:
    return round(seconds * 1000)


@dataclass
class Times:
    assignment: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    first: list[int] = field(default_factory=list)
    resolution: list[tuple[int, bool]] = field(default_factory=list)


def response_times(cases: list[list[CaseEvent]]) -> Times:
    out = Times()
    for events in cases:
        filed = events[0]
        assert isinstance(filed, PetitionFiled)
        raised = filed.raised_at.timestamp()
        # assignments: every routing/referral/escalation, answered by the next accept before
        # any other move of the case
        for i, e in enumerate(events):
            if isinstance(e, CaseRouted | CaseReferred | CaseEscalated):
                level = e.handler_level if isinstance(e, CaseRouted) else e.to_level
                for later in events[i + 1 :]:
                    if isinstance(later, CaseAccepted):
                        secs = later.timestamp.timestamp() - e.timestamp.timestamp()
                        out.assignment[level.value].append(ms(secs))
                        break
                    if isinstance(later, CaseRouted | CaseReferred | CaseEscalated | CaseReturned):
                        break
        accepts = [e for e in events if isinstance(e, CaseAccepted)]
        if accepts:
            out.first.append(ms(accepts[0].timestamp.timestamp() - raised))
        resolved = [i for i, e in enumerate(events) if isinstance(e, CaseResolved)]
        reopened = [i for i, e in enumerate(events) if isinstance(e, CaseReopened)]
        if resolved and (not reopened or resolved[-1] > reopened[-1]):
            i = resolved[-1]
            due = _resolve_due_before(events[:i])
            at = events[i].timestamp.timestamp()
            out.resolution.append((ms(at - raised), due is not None and at <= due))
    return out


def _resolve_due_before(events: list[CaseEvent]) -> float | None:
    due = None
    for e in events:
        new = getattr(e, "resolve_due", None)
        if isinstance(e, CaseReopened | CaseRouted | CaseReferred | CaseEscalated):
            due = e.resolve_due.timestamp()
        elif type(e).__name__ == "CaseResumed":
            due = new.timestamp() if new else None
        elif type(e).__name__ == "DeadlineExtended" and getattr(e, "kind", "") == "resolve":
            due = e.new_due.timestamp()  # type: ignore[attr-defined]
    return due


@dataclass
class Hops:
    by_depth: dict[int, list[tuple[float, bool, bool, bool]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    matched: list[bool] = field(default_factory=list)


def distortion(cases: list[list[CaseEvent]]) -> Hops:
    out = Hops()
    for events in cases:
        filed = events[0]
        assert isinstance(filed, PetitionFiled)
        category, urgency = filed.category, filed.urgency
        for e in events:
            if isinstance(e, CaseReferred):
                category, urgency = e.category, e.urgency
            if isinstance(e, CaseReferred) or (isinstance(e, CaseEscalated) and e.summary):
                sim = similarity(filed.description, e.summary)
                changed = category != filed.category
                lowered = urgency.rank < Urgency(filed.urgency).rank
                distorted = sim < 0.5 or changed or lowered
                out.by_depth[e.hop].append((sim, distorted, changed, lowered))
        ratings = [e for e in events if isinstance(e, SatisfactionRated)]
        if ratings:
            out.matched.append(ratings[-1].request_matched)
    return out


@dataclass
class Indicators:
    timely: list[bool] = field(default_factory=list)
    local: list[bool] = field(default_factory=list)
    mediation: list[bool] = field(default_factory=list)
    satisfied: list[bool] = field(default_factory=list)
    assignments: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    returns: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unclear: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def indicators(cases: list[list[CaseEvent]]) -> Indicators:
    out = Indicators()
    for events in cases:
        filed = events[0]
        assert isinstance(filed, PetitionFiled)
        out.timely.append(filed.timestamp.timestamp() - filed.raised_at.timestamp() <= 86400)
        level = "household"
        last_resolution: tuple[str, Outcome] | None = None
        for e in events:
            if isinstance(e, CaseRouted):
                level = e.handler_level.value
                out.assignments[e.handler] += 1
            elif isinstance(e, CaseReferred | CaseEscalated):
                level = e.to_level.value
                out.assignments[e.to_unit] += 1
            elif isinstance(e, CaseReturned):
                out.returns[e.unit] += 1
                out.unclear[e.unit] += e.reason is ReturnReason.NOT_OUR_RESPONSIBILITY
                level = e.to_level.value
            elif isinstance(e, CaseResolved):
                last_resolution = (level, e.outcome)
            elif isinstance(e, CaseReopened):
                last_resolution = None
        if last_resolution is not None:
            out.local.append(last_resolution[0] in ("household", "group"))
            if last_resolution[1] in (Outcome.MEDIATED_SUCCESS, Outcome.MEDIATED_FAILURE):
                out.mediation.append(last_resolution[1] is Outcome.MEDIATED_SUCCESS)
        ratings = [e for e in events if isinstance(e, SatisfactionRated)]
        if ratings:
            out.satisfied.append(ratings[-1].score >= 4)
    return out

"""/v1/metrics/...: the plan's figures from the read models; GET /v1/cases: the case list.

Every metric takes `as_of` (only events recorded up to that moment count; default:
now, the live view), a unit subtree (`unit`: a unit code, its subtree included, or a
department) and, where it sums over time, a range `since` ≤ t < `until`. The
figures are defined in docs/metrics.md (DESIGN §7).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from api.auth import Principal, current_principal
from api.deps import ServiceDep
from api.problems import ApiProblem, documented
from api.responses import OrjsonResponse, report
from api.routes import V1
from engine.settings import Settings
from engine.viewstore import ViewStore
from projections import reports
from projections.case_list import BadCursor, decode_cursor
from projections.measures import Filters
from projections.registry import Projections

router = APIRouter(
    prefix=f"{V1}/metrics",
    tags=["metrics"],
    dependencies=[Depends(current_principal)],
    responses=documented(404, 422, 503),
)
cases_router = APIRouter(
    prefix=f"{V1}/cases",
    tags=["cases"],
    dependencies=[Depends(current_principal)],
    responses=documented(422, 503),
)


def get_projections(request: Request) -> Projections:
    """The read models (built on first use from the settings' view store)."""
    state = request.app.state
    found: Projections | None = getattr(state, "projections", None)
    if found is None:
        settings: Settings = state.settings
        found = state.projections = Projections(ViewStore.for_settings(settings))
    return found


ProjectionsDep = Annotated[Projections, Depends(get_projections)]
AsOf = Annotated[
    datetime | None,
    Query(description="count only events recorded up to this moment (ISO 8601); default now"),
]
Since = Annotated[datetime | None, Query(description="from this moment on (inclusive)")]
Until = Annotated[datetime | None, Query(description="before this moment (exclusive)")]
Unit = Annotated[
    str | None,
    Query(max_length=64, description="a unit code (its subtree included) or dept:<code>"),
]
Category = Annotated[str | None, Query(max_length=64)]
UrgencyQ = Annotated[Literal["normal", "urgent", "emergency"] | None, Query()]
LevelQ = Annotated[
    Literal["household", "group", "village", "township", "county", "department"] | None, Query()
]
GroupBy = Annotated[
    Literal["level", "area", "unit", "category", "urgency", "week"] | None,
    Query(
        description="area = township or department; unit = the exact unit (with a level, "
        "category or urgency filter too, slower: counted from the facts)"
    ),
]


def check_cursor(cursor: str) -> None:
    try:
        decode_cursor(cursor)
    except BadCursor as e:
        raise ApiProblem("bad-request", str(e), hint="Pass back a next_cursor as given.") from None


def _t(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


def _scope(unit: str | None, principal: Principal) -> str | None:
    return unit if unit is not None else principal.unit_scope


def _filters(
    principal: Principal,
    unit: str | None,
    since: datetime | None,
    until: datetime | None,
    as_of: datetime | None,
    **dims: Any,
) -> Filters:
    return Filters(
        since=_t(since), until=_t(until), as_of=_t(as_of), scope=_scope(unit, principal), **dims
    )


PrincipalDep = Annotated[Principal, Depends(current_principal)]


@router.get(
    "/response-times", summary="Response and resolution times", response_model=dict[str, Any]
)
def response_times(
    projections: ProjectionsDep,
    principal: PrincipalDep,
    kind: Literal["assignment", "first", "resolution"] = "first",
    group_by: GroupBy = None,
    unit: Unit = None,
    level: LevelQ = None,
    category: Category = None,
    urgency: UrgencyQ = None,
    since: Since = None,
    until: Until = None,
    as_of: AsOf = None,
) -> OrjsonResponse:
    """Counts, exact means and p50/p90/p99 (±2.5 %) in seconds; `on_time_share` for
    resolutions."""
    f = _filters(
        principal, unit, since, until, as_of, level=level, category=category, urgency=urgency
    )
    return report({**reports.response_times(projections, kind, f, group_by), "as_of": as_of})


@router.get(
    "/distortion",
    summary="Distortion per hop depth, reporting accuracy",
    response_model=dict[str, Any],
)
def distortion(
    projections: ProjectionsDep,
    principal: PrincipalDep,
    group_by: Literal["depth", "level", "area", "category", "week"] = "depth",
    unit: Unit = None,
    category: Category = None,
    since: Since = None,
    until: Until = None,
    as_of: AsOf = None,
) -> OrjsonResponse:
    """Distortion rate and mean similarity per depth, drift, downgrades, request match."""
    f = _filters(principal, unit, since, until, as_of, category=category)
    return report({**reports.distortion(projections, f, group_by), "as_of": as_of})


@router.get(
    "/distortion/cases/{case_id}",
    summary="A case's chain of retellings",
    response_model=dict[str, Any],
)
def distortion_chain(
    projections: ProjectionsDep,
    case_id: Annotated[str, Path(max_length=64)],
    as_of: AsOf = None,
) -> OrjsonResponse:
    """The resident's words (hop 0), then each summary as passed on, with its similarity."""
    return report({"case_id": case_id, "chain": reports.chain(projections, case_id, _t(as_of))})


@router.get(
    "/board", summary="Open cases per unit by light (红黄绿灯)", response_model=dict[str, Any]
)
def board(
    projections: ProjectionsDep,
    service: ServiceDep,
    principal: PrincipalDep,
    unit: Unit = None,
    as_of: AsOf = None,
) -> OrjsonResponse:
    """Green / yellow / red, overdue, supervised and returned open cases per unit at `as_of`."""
    at = _t(as_of) or service.clock.now().timestamp()
    return report(reports.board(projections, at, service.rules.warn_share, _scope(unit, principal)))


@router.get("/indicators", summary="The plan's indicators", response_model=dict[str, Any])
def indicators(
    projections: ProjectionsDep,
    service: ServiceDep,
    principal: PrincipalDep,
    unit: Unit = None,
    since: Since = None,
    until: Until = None,
    as_of: AsOf = None,
) -> OrjsonResponse:
    """Collection timeliness, mediation success, satisfaction, local resolution, returns."""
    f = _filters(principal, unit, since, until, as_of)
    at = _t(as_of) or service.clock.now().timestamp()
    return report(
        {**reports.indicators(projections, f, at, service.rules.warn_share), "as_of": as_of}
    )


@router.get(
    "/heatmap",
    summary="Demand per village × category × week (需求热力图)",
    response_model=dict[str, Any],
)
def heatmap(
    projections: ProjectionsDep,
    principal: PrincipalDep,
    unit: Unit = None,
    category: Category = None,
    since: Since = None,
    until: Until = None,
    as_of: AsOf = None,
) -> OrjsonResponse:
    """Petitions filed, per village, category and week (weeks start Monday, Beijing time):
    `weeks` (each from the first to the last with a petition, by its Monday's date) and a
    row per village and category with its count in each of those weeks."""
    f = _filters(principal, unit, since, until, as_of, category=category)
    return report({**reports.heatmap(projections, f), "as_of": as_of})


@cases_router.get("", summary="List cases", response_model=dict[str, Any])
def list_cases(
    projections: ProjectionsDep,
    service: ServiceDep,
    principal: PrincipalDep,
    unit: Unit = None,
    status: Annotated[
        Literal["routed", "accepted", "returned", "suspended", "resolved", "closed"] | None,
        Query(),
    ] = None,
    category: Category = None,
    light: Annotated[Literal["green", "yellow", "red"] | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="filed at or after")] = None,
    until: Annotated[datetime | None, Query(description="filed before")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> OrjsonResponse:
    """Cases newest first; pass `next_cursor` back as `cursor` for the next page."""
    if cursor is not None:
        check_cursor(cursor)
    return report(
        reports.cases(
            projections,
            service.clock.now().timestamp(),
            service.rules.warn_share,
            scope=_scope(unit, principal),
            status=status,
            category=category,
            light=light,
            since=_t(since),
            until=_t(until),
            cursor=cursor,
            limit=limit,
        )
    )

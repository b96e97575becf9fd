"""The figures as plain dicts (JSON-ready): what `GET /v1/metrics/...` and `lianhu metrics`
both show. Each report reads one read model at its current generation, in one transaction.

Times in and out are epoch seconds here; the edges convert. `as_of` = T counts only
events recorded up to T; None means now (the live view).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from projections.board import Board
from projections.case_list import CaseList
from projections.distortion import SCALE, Distortion
from projections.fold import no_cyclic_gc, week_label
from projections.indicators import Indicators
from projections.measures import RELATIVE_ERROR, Agg, Filters, group_key, summarise_durations
from projections.registry import Projections
from projections.response_times import ResponseTimes

TARGETS = {
    "first_response_s": 24 * 3600,
    "reporting_accuracy": 0.95,
    "collection_timeliness": 0.95,
    "mediation_success": 0.85,
    "satisfaction": 0.90,
    "request_match": 0.90,
    "unowned": 0,
}


P = ParamSpec("P")
R = TypeVar("R")


def paused_gc(report: Callable[P, R]) -> Callable[P, R]:
    """Run a report with the cyclic GC paused (projections.fold.no_cyclic_gc): it builds
    thousands of short-lived rows and no cycles."""

    @functools.wraps(report)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with no_cyclic_gc():
            return report(*args, **kwargs)

    return run


def _share(agg: Agg | None) -> dict[str, Any]:
    if agg is None:
        return {"count": 0, "yes": 0, "share": None}
    return {"count": agg.n, "yes": agg.flag, "share": agg.share}


@paused_gc
def response_times(
    p: Projections, kind: str, filters: Filters, group_by: str | None = None
) -> dict[str, Any]:
    with p.views.reading() as cur:
        model = p.model("response_times", cur)
        assert isinstance(model, ResponseTimes)
        groups = model.query(cur, kind, filters, group_by)
    return {
        "kind": kind,
        "group_by": group_by,
        "percentile_relative_error": round(RELATIVE_ERROR, 4),
        "groups": [
            {"group": group_key(group_by, g), **summarise_durations(a)}
            for g, a in sorted(groups.items(), key=lambda kv: str(kv[0]))
        ],
    }


@paused_gc
def distortion(p: Projections, filters: Filters, group_by: str = "depth") -> dict[str, Any]:
    with p.views.reading() as cur:
        model = p.model("distortion", cur)
        assert isinstance(model, Distortion)
        hops = model.query(cur, "hop", filters, group_by)
        drift = model.query(cur, "drift", filters, group_by)
        down = model.query(cur, "downgrade", filters, group_by)
        overall = model.query(cur, "hop", filters).get(None, Agg())
        match = model.query(cur, "match", filters).get(None)
    rows = []
    for g in sorted(hops, key=lambda k: (k is None, str(k))):
        a = hops[g]
        rows.append(
            {
                "group": group_key(group_by, g),
                "hops": a.n,
                "distorted": a.flag,
                "distortion_rate": a.share,
                "mean_similarity": None if a.mean is None else a.mean / SCALE,
                "category_changed": drift[g].flag if g in drift else 0,
                "urgency_lowered": down[g].flag if g in down else 0,
            }
        )
    rate = overall.share
    return {
        "group_by": group_by,
        "groups": rows,
        "hops": overall.n,
        "distorted": overall.flag,
        "distortion_rate": rate,
        "reporting_accuracy": None if rate is None else 1 - rate,
        "request_match": _share(match),
        "targets": {"reporting_accuracy": TARGETS["reporting_accuracy"]},
    }


@paused_gc
def chain(p: Projections, case_id: str, as_of: float | None = None) -> list[dict[str, Any]]:
    with p.views.reading() as cur:
        model = p.model("distortion", cur)
        assert isinstance(model, Distortion)
        return [link._asdict() for link in model.chain(cur, case_id, as_of)]


@paused_gc
def board(p: Projections, at: float, warn_share: float, scope: str | None) -> dict[str, Any]:
    with p.views.reading() as cur:
        model = p.model("board", cur)
        assert isinstance(model, Board)
        units = model.board(cur, at=at, warn_share=warn_share, scope=scope)
    rows = [{**u.__dict__, "open": u.open} for u in units]
    totals = {
        k: sum(r[k] for r in rows)
        for k in ("green", "yellow", "red", "overdue", "supervised", "returned", "open")
    }
    return {"at": at, "warn_share": warn_share, "units": rows, "totals": totals}


@paused_gc
def indicators(p: Projections, filters: Filters, at: float, warn_share: float) -> dict[str, Any]:
    with p.views.reading() as cur:
        model = p.model("indicators", cur)
        assert isinstance(model, Indicators)
        one = {k: model.query(cur, k, filters).get(None) for k in ("filed", "local", "mediation")}
        sat = model.query(cur, "satisfaction", filters).get(None)
        per_unit = model.query(cur, "assignment", filters, "area")
    returns = [
        {
            "unit": unit,
            "assignments": a.n,
            "returned": a.flag,
            "return_rate": a.share,
            "returned_not_our_responsibility": a.value,
        }
        for unit, a in sorted(per_unit.items())
        if unit.startswith("dept:")
    ]
    with p.views.reading() as cur:
        bd = p.model("board", cur)
        assert isinstance(bd, Board)
        unowned = bd.returned(cur, at=at, scope=filters.scope)
    return {
        "collection_timeliness": _share(one["filed"]),
        "mediation_success": _share(one["mediation"]),
        "satisfaction": _share(sat),
        "local_resolution": _share(one["local"]),
        "return_rate_by_department": returns,
        "unowned_open_cases": unowned,
        "targets": TARGETS,
    }


@paused_gc
def heatmap(p: Projections, filters: Filters) -> dict[str, Any]:
    """Petitions per village × category × week (the demand heat map), as a matrix: `weeks`
    (each week from the first to the last with a petition, by its Monday) and one row per
    village and category with a count per week. A county-year is ~16,500 cells: as a list
    of cell objects 1.4 MB of JSON, as rows of counts ~69 KB."""
    with p.views.reading() as cur:
        model = p.model("indicators", cur)
        assert isinstance(model, Indicators)
        counted = model.heat(cur, "filed", filters)
    if not counted:
        return {"weeks": [], "rows": [], "total": 0}
    first = min(min(weeks) for weeks in counted.values())
    size = max(max(weeks) for weeks in counted.values()) - first + 1
    rows, total = [], 0
    for (village, category), weeks in sorted(counted.items()):
        counts = [0] * size
        for week, n in weeks.items():
            counts[week - first] = n
        row_total = sum(counts)
        total += row_total
        rows.append({"village": village, "category": category, "counts": counts,
                     "total": row_total})  # fmt: skip
    return {"weeks": [week_label(first + i) for i in range(size)], "rows": rows, "total": total}


@paused_gc
def cases(p: Projections, now: float, warn_share: float, **filters: Any) -> dict[str, Any]:
    with p.views.reading() as cur:
        model = p.model("case_list", cur)
        assert isinstance(model, CaseList)
        page = model.page(cur, now=now, warn_share=warn_share, **filters)
    return {"cases": page.rows, "next_cursor": page.next_cursor}

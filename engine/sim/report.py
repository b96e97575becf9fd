"""The figures of a played simulation, read from the projections (never counted here).

`figures` catches the five read models up from the simulation's log, then asks them
the same questions `GET /v1/metrics/…` answers, over the whole simulated period and
as of its end. `table` prints designs side by side with the plan's baselines and
targets (DOMAIN §1, §4).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.sim.run import Design, Played, Scenario, play
from projections import reports
from projections.measures import Filters
from projections.registry import Projections, catch_up_all

Progress = Callable[[str, int, int], None]

HOUR = 3600.0


def figures(played: Played, progress: Progress | None = None) -> dict[str, Any]:
    """Catch the projections up, then read every figure of the comparison from them."""
    projections = Projections(played.views)
    service = played.service
    label = f"{played.design.name}: projections"
    catch_up_all(
        projections,
        service.recorder,
        service.mapper,
        None if progress is None else (lambda done, head: progress(label, done, head)),
    )
    end = played.scenario.end.timestamp()
    whole = Filters(as_of=end)
    first = reports.response_times(projections, "first", whole)["groups"]
    resolution = reports.response_times(projections, "resolution", whole)["groups"]
    assignment = reports.response_times(projections, "assignment", whole, "level")["groups"]
    distortion = reports.distortion(projections, whole, "depth")
    warn_share = service.rules.warn_share
    indicators = reports.indicators(projections, whole, end, warn_share)
    board = reports.board(projections, end, warn_share, None)["totals"]
    returns = indicators["return_rate_by_department"]
    assignments = sum(r["assignments"] for r in returns)
    returned = sum(r["returned"] for r in returns)
    filed = indicators["collection_timeliness"]["count"]
    return {
        "design": played.design.name,
        "rules": str(played.design.rules_dir),
        "rule_set_hash": service.rules.hash,
        "behaviour": played.design.behaviour.name,
        "seed": played.scenario.seed,
        "weeks": played.scenario.weeks,
        "settle_days": played.scenario.settle_days,
        "county": played.county.describe(),
        "cases": filed,
        "events": service.recorder.max_notification_id() or 0,
        "first_response": _durations(first),
        "resolution": _durations(resolution),
        "assignment_response_by_level": {
            g["group"]: _hours(g) for g in assignment if g["group"] is not None
        },
        "on_time_share": resolution[0]["on_time_share"] if resolution else None,
        "reporting_accuracy": distortion["reporting_accuracy"],
        "hops": distortion["hops"],
        "distortion_by_depth": {
            str(g["group"]): {"hops": g["hops"], "rate": g["distortion_rate"]}
            for g in distortion["groups"]
            if g["group"] is not None
        },
        "request_match": distortion["request_match"]["share"],
        "department_assignments": assignments,
        "department_returns": returned,
        "return_rate": returned / assignments if assignments else None,
        "unowned_open_cases": indicators["unowned_open_cases"],
        "open_cases": board["open"],
        "supervised_open_cases": board["supervised"],
        "local_resolution": indicators["local_resolution"]["share"],
        "mediation_success": indicators["mediation_success"]["share"],
        "satisfaction": indicators["satisfaction"]["share"],
        "collection_timeliness": indicators["collection_timeliness"]["share"],
        "actions": dict(sorted(played.tally.actions.items())),
        "refused": played.tally.refused,
    }


def measure(
    design: Design, scenario: Scenario, workdir: Path, progress: Progress | None = None
) -> dict[str, Any]:
    """Play `design` in `workdir`, then read its figures from the projections."""
    played = play(design, scenario, workdir, progress)
    try:
        return figures(played, progress)
    finally:
        played.close()


def _durations(groups: list[dict[str, Any]]) -> dict[str, Any]:
    return _hours(groups[0]) if groups else {"count": 0}


def _hours(g: dict[str, Any]) -> dict[str, Any]:
    def h(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds / HOUR, 1)

    return {
        "count": g["count"],
        "mean_h": h(g["mean_s"]),
        "p50_h": h(g["p50"]),
        "p90_h": h(g["p90"]),
    }


# (label, how to read it from figures, format, the plan's baseline, the plan's target)
Row = tuple[str, Callable[[dict[str, Any]], Any], str, str, str]


def _depth(d: int) -> Callable[[dict[str, Any]], Any]:
    return lambda f: f["distortion_by_depth"].get(str(d), {}).get("rate")


ROWS: tuple[Row, ...] = (
    ("cases filed", lambda f: f["cases"], "int", "", ""),
    ("first response, mean (h)", lambda f: f["first_response"].get("mean_h"), "h", "72", "≤ 24"),
    ("first response, p50 (h)", lambda f: f["first_response"].get("p50_h"), "h", "", ""),
    ("first response, p90 (h)", lambda f: f["first_response"].get("p90_h"), "h", "", ""),
    ("resolution, p50 (h)", lambda f: f["resolution"].get("p50_h"), "h", "", ""),
    ("resolution, p90 (h)", lambda f: f["resolution"].get("p90_h"), "h", "", ""),
    ("resolved on time", lambda f: f["on_time_share"], "%", "", ""),
    ("reporting accuracy (all hops)", lambda f: f["reporting_accuracy"], "%", "70 %", "≥ 95 %"),
    ("hops retold (referrals, escalations)", lambda f: f["hops"], "int", "", ""),
    ("distortion at depth 1", _depth(1), "%", "", ""),
    ("distortion at depth 2", _depth(2), "%", "", ""),
    ("distortion at depth 3", _depth(3), "%", "30 %", ""),
    ("department return rate", lambda f: f["return_rate"], "%", "18 %", "→ 0"),
    ("cases unowned at the end", lambda f: f["unowned_open_cases"], "int", "", "0"),
    ("cases still open at the end", lambda f: f["open_cases"], "int", "", ""),
    ("resolved at household/group", lambda f: f["local_resolution"], "%", "", "high"),
    ("mediation success", lambda f: f["mediation_success"], "%", "68 %", "≥ 85 %"),
    ("satisfaction", lambda f: f["satisfaction"], "%", "", "≥ 90 %"),
    ("request matched", lambda f: f["request_match"], "%", "", "≥ 90 %"),
    ("collection timeliness", lambda f: f["collection_timeliness"], "%", "", "≥ 95 %"),
)


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "%":
        return f"{100 * value:.1f} %"
    if kind == "h":
        return f"{value:,.1f}"
    return f"{value:,}"


def table(results: Sequence[dict[str, Any]]) -> str:
    """Designs side by side, with the plan's baseline and target for each figure."""
    header = ["figure", *(r["design"] for r in results), "plan baseline", "plan target"]
    rows = [header]
    for label, get, kind, baseline, target in ROWS:
        rows.append([label, *(_fmt(get(r), kind) for r in results), baseline, target])
    widths = [max(_width(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell + " " * (widths[i] - _width(cell))
            if i == 0
            else " " * (widths[i] - _width(cell)) + cell
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _width(text: str) -> int:
    """Display width: CJK and full-width characters take two columns."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)

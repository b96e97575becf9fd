"""`lianhu metrics ...`: the plan's figures as tables (the same reports as /v1/metrics).

Each command first brings the read models up to the head of the log (cheap when a
server keeps them live), unless `--no-catch-up`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from api.cli.errors import reports_errors
from api.wiring import build_service
from engine.service import CaseService
from engine.settings import Settings
from engine.viewstore import ViewStore
from projections import reports
from projections.measures import Filters
from projections.registry import Projections, catch_up_all

app = typer.Typer(help="The plan's figures, computed from the events alone.", no_args_is_help=True)

Unit = Annotated[str | None, typer.Option(help="unit code (its subtree) or dept:<code>")]
When = Annotated[
    datetime | None, typer.Option(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"], help="ISO time")
]
Json = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
CatchUp = Annotated[bool, typer.Option(help="bring the views up to the log head first")]


@contextmanager
def _open(catch_up: bool) -> Iterator[tuple[Projections, CaseService]]:
    settings = Settings()
    service = build_service(settings)
    views = ViewStore.for_settings(settings)
    try:
        projections = Projections(views)
        if catch_up:
            catch_up_all(projections, service.recorder, service.mapper)
        yield projections, service
    finally:
        views.close()
        service.close()


def _t(at: datetime | None) -> float | None:
    if at is None:
        return None
    return at.timestamp() if at.tzinfo else at.astimezone().timestamp()


def _filters(unit: str | None, since: datetime | None, until: datetime | None,
             as_of: datetime | None, **dims: Any) -> Filters:  # fmt: skip
    return Filters(since=_t(since), until=_t(until), as_of=_t(as_of), scope=unit, **dims)


def _print(data: dict[str, Any], as_json: bool, table: Callable[[], Table]) -> None:
    if as_json:
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode())
    else:
        Console().print(table())


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _rows(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Callable[[], Table]:
    def build() -> Table:
        table = Table(*columns, title=title)
        for r in rows:
            table.add_row(*(_fmt(r.get(c)) for c in columns))
        return table

    return build


@app.command("response-times")
@reports_errors
def response_times(
    kind: Annotated[str, typer.Option(help="assignment, first or resolution")] = "first",
    group_by: Annotated[
        str | None, typer.Option(help="level, area, unit, category, urgency, week")
    ] = None,
    unit: Unit = None, since: When = None, until: When = None, as_of: When = None,
    as_json: Json = False, catch_up: CatchUp = True,
) -> None:  # fmt: skip
    """Counts, means and p50/p90/p99 (seconds, ±2.5 %) of a response time."""
    with _open(catch_up) as (p, _):
        data = reports.response_times(p, kind, _filters(unit, since, until, as_of), group_by)
    cols = ["group", "count", "mean_s", "p50", "p90", "p99", "on_time_share"]
    _print(data, as_json, _rows(f"{kind} response times (s)", data["groups"], cols))


@app.command("distortion")
@reports_errors
def distortion(
    group_by: Annotated[str, typer.Option(help="depth, level, area, category, week")] = "depth",
    unit: Unit = None, since: When = None, until: When = None, as_of: When = None,
    as_json: Json = False, catch_up: CatchUp = True,
) -> None:  # fmt: skip
    """Distortion rate and mean similarity per hop depth; reporting accuracy."""
    with _open(catch_up) as (p, _):
        data = reports.distortion(p, _filters(unit, since, until, as_of), group_by)
    cols = ["group", "hops", "distorted", "distortion_rate", "mean_similarity",
            "category_changed", "urgency_lowered"]  # fmt: skip
    title = (
        f"distortion — reporting accuracy {_fmt(data['reporting_accuracy'])}, "
        f"request match {_fmt(data['request_match']['share'])}"
    )
    _print(data, as_json, _rows(title, data["groups"], cols))


@app.command("board")
@reports_errors
def board(
    unit: Unit = None, as_of: When = None, as_json: Json = False, catch_up: CatchUp = True
) -> None:
    """Open cases per unit by light (green / yellow / red), overdue, supervised."""
    with _open(catch_up) as (p, service):
        at = _t(as_of) or service.clock.now().timestamp()
        data = reports.board(p, at, service.rules.warn_share, unit)
    cols = ["unit", "open", "green", "yellow", "red", "overdue", "supervised", "returned"]
    _print(data, as_json, _rows(f"board ({data['totals']['open']} open)", data["units"], cols))


@app.command("indicators")
@reports_errors
def indicators(
    unit: Unit = None, since: When = None, until: When = None, as_of: When = None,
    as_json: Json = False, catch_up: CatchUp = True,
) -> None:  # fmt: skip
    """The plan's indicators against their targets."""
    with _open(catch_up) as (p, service):
        at = _t(as_of) or service.clock.now().timestamp()
        data = reports.indicators(
            p, _filters(unit, since, until, as_of), at, service.rules.warn_share
        )
    rows = [
        {"indicator": k, **data[k], "target": data["targets"].get(k)}
        for k in ("collection_timeliness", "mediation_success", "satisfaction", "local_resolution")
    ]
    rows.append({"indicator": "unowned_open_cases", "count": data["unowned_open_cases"],
                 "target": 0})  # fmt: skip
    rows += [
        {"indicator": f"return rate {r['unit']}", "count": r["assignments"],
         "yes": r["returned"], "share": r["return_rate"]}
        for r in data["return_rate_by_department"]
    ]  # fmt: skip
    cols = ["indicator", "count", "yes", "share", "target"]
    _print(data, as_json, _rows("indicators", rows, cols))


@app.command("heatmap")
@reports_errors
def heatmap(
    unit: Unit = None, since: When = None, until: When = None, as_of: When = None,
    as_json: Json = False, catch_up: CatchUp = True,
) -> None:  # fmt: skip
    """Petitions per village × category × week (the weeks with any, one line each)."""
    with _open(catch_up) as (p, _):
        data = reports.heatmap(p, _filters(unit, since, until, as_of))
    cells = [
        {"village": r["village"], "category": r["category"], "week": week, "count": n}
        for r in data["rows"]
        for week, n in zip(data["weeks"], r["counts"], strict=True)
        if n
    ]
    cols = ["village", "category", "week", "count"]
    _print(data, as_json, _rows(f"demand ({data['total']} petitions)", cells, cols))

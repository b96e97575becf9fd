"""`lianhu projections`: rebuild read models from the log, follow it, see where they are."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from api.cli.errors import reports_errors
from api.cli.signals import stop_on_signals
from api.wiring import build_service, describe_store
from engine.settings import Settings
from engine.viewstore import ViewStore
from projections.fold import week_label
from projections.measures import FactModel, sealed_week
from projections.registry import (
    CATCH_UP_BATCH,
    CATCH_UP_BATCH_POSTGRES,
    LIVE_BATCH,
    MODELS,
    Projections,
    catch_up_all,
    rebuild_all,
    run_live,
)

app = typer.Typer(
    help="Read models: rebuild them from position 0, follow the log, show their positions.",
    no_args_is_help=True,
)


@app.command("rebuild", epilog="Examples:\n\n    lianhu projections rebuild\n\n"
             "    lianhu projections rebuild board")  # fmt: skip
@reports_errors
def rebuild_command(
    name: Annotated[
        str | None, typer.Argument(help=f"one of {', '.join(MODELS)}; default: all")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=f"events per transaction (default: {CATCH_UP_BATCH:,} on SQLite, "
            f"{CATCH_UP_BATCH_POSTGRES:,} on PostgreSQL; larger: more memory)",
        ),
    ] = None,
) -> None:
    """Replay the log from position 0 into fresh tables, then switch to them atomically.

    All read models are rebuilt together in one pass over the log unless NAME is given;
    the old tables answer queries until the switch."""
    if name is not None and name not in MODELS:
        raise typer.BadParameter(f"unknown read model {name!r}; use one of {', '.join(MODELS)}")
    settings = Settings()
    service = build_service(settings)
    views = ViewStore.for_settings(settings)
    try:
        projections = Projections(views)
        head = service.recorder.max_notification_id() or 0
        typer.echo(f"store: {describe_store(settings)}; log head {head}")
        names = [name] if name else list(MODELS)
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=Console(stderr=True),
        ) as bar:  # fmt: skip
            label = name or "all read models"
            task = bar.add_task(label, total=max(head, 1))

            folded = False

            def advance(done: int, total: int) -> None:
                nonlocal folded
                bar.update(task, completed=done, total=total)
                if done >= total and not folded:
                    # what is left: one pass per query index, ~5 s per 10^6 events
                    folded = True
                    bar.update(task, description=f"{label}: building the query indexes")
                    bar.console.print("every event folded in; building the query indexes")

            generations = rebuild_all(
                projections, service.recorder, service.mapper, names, advance,
                batch_size=batch_size,
            )  # fmt: skip
            bar.update(task, completed=max(head, 1), description=f"{label}: done")
        for model, generation in generations.items():
            typer.echo(f"{model}: switched to generation {generation}")
    finally:
        views.close()
        service.close()


@app.command("status")
@reports_errors
def status() -> None:
    """Each read model's generation and log position, against the log head, and whether
    its roll-ups are whole."""
    settings = Settings()
    service = build_service(settings)
    views = ViewStore.for_settings(settings)
    try:
        projections = Projections(views)
        head = service.recorder.max_notification_id() or 0
        positions = views.positions()
        generations = projections.generations()
        table = Table("read model", "generation", "position", "behind", "roll-ups")
        held = False
        with views.reading() as cur:
            for name, gen in generations.items():
                pos = positions.get(f"{name}.g{gen}", 0)
                model = projections.bound(name, gen)
                rollups = "-"
                if isinstance(model, FactModel):
                    week = sealed_week(cur, model.t(f"{model.prefix}_facts"))
                    rollups = "whole" if week is None else f"held from {week_label(week)}"
                    held = held or week is not None
                table.add_row(name, str(gen), str(pos), str(head - pos), rollups)
        Console().print(table)
        if held:
            Console().print(
                "roll-ups held from a week: a catch-up is filling them, or was stopped; "
                "answers stay exact (the facts from that week on are read instead), and the "
                "follower finishes them with the next batch it writes"
            )
    finally:
        views.close()
        service.close()


@app.command("run")
@reports_errors
def run(
    once: Annotated[bool, typer.Option(help="catch up to the head, then exit")] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=f"most events per transaction (default with --once: {CATCH_UP_BATCH:,} on "
            f"SQLite, {CATCH_UP_BATCH_POSTGRES:,} on PostgreSQL; live: {LIVE_BATCH:,})",
        ),
    ] = None,
) -> None:
    """Keep every read model live (the scaled-out shape; `lianhu serve` runs this too)."""
    settings = Settings()
    service = build_service(settings)
    views = ViewStore.for_settings(settings)
    try:
        projections = Projections(views)
        if once:
            n = catch_up_all(
                projections, service.recorder, service.mapper,
                batch_size=batch_size,
            )  # fmt: skip
            typer.echo(f"caught up over {n} log positions")
            return
        stop = stop_on_signals()
        typer.echo("projections following the log (Ctrl-C stops)")
        run_live(
            projections, service.recorder, service.mapper, stop,
            batch_size=batch_size or LIVE_BATCH,
        )  # fmt: skip
    finally:
        views.close()
        service.close()

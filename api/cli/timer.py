"""`lianhu timer`: run the SLA timer alone (the scaled-out shape), or look at what is pending."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from api.cli.errors import reports_errors
from api.cli.signals import stop_on_signals
from api.wiring import build_service, build_timer, describe_store
from engine.settings import Settings

app = typer.Typer(
    help="Run the SLA timer alone: yellow and red lights, escalation on a breached resolve "
    "deadline. `lianhu serve` already runs one; on PostgreSQL only one timer fires at a time.",
    invoke_without_command=True,
)


@app.callback(
    epilog="Examples:\n\n"
    "    lianhu timer\n\n"
    "    lianhu timer --once\n\n"
    "    LIANHU_DATABASE_URL=postgresql://lianhu@db/lianhu lianhu timer\n\n"
    "    lianhu timer pending --limit 50"
)
@reports_errors
def timer(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option(help="fire what is due now, then exit")] = False,
) -> None:
    """Fire SLA lights as they come due, until interrupted (Ctrl-C or SIGTERM)."""
    if ctx.invoked_subcommand is not None:
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    service = build_service(settings)
    sla_timer = build_timer(settings, service)
    typer.echo(f"store: {describe_store(settings)}")
    try:
        if once:
            typer.echo(f"recorded {sla_timer.fire_due()} lights")
            return
        stop = stop_on_signals()
        typer.echo("SLA timer running (Ctrl-C stops it)")
        sla_timer.run(stop)
    finally:
        sla_timer.views.close()
        service.close()


@app.command("pending")
@reports_errors
def pending(
    limit: Annotated[int, typer.Option(help="how many lights to show")] = 20,
) -> None:
    """The next lights to fire, earliest first (after catching up with the log)."""
    settings = Settings()
    service = build_service(settings)
    sla_timer = build_timer(settings, service)
    try:
        sla_timer.catch_up()
        lights = sla_timer.pending_lights()
        typer.echo(f"{len(lights)} lights pending")
        for light in lights[:limit]:
            typer.echo(
                f"{light.fire_at.isoformat()}  {light.light.value:<6} {light.kind.value:<7} "
                f"case {light.case_id}  due {light.due.isoformat()}"
            )
    finally:
        sla_timer.views.close()
        service.close()

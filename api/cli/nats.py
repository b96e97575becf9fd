"""`lianhu relay`, `lianhu consume`, `lianhu status`: delivery to departments over NATS."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from api.cli.errors import fail, reports_errors
from api.nats_wiring import build_outbox, relay_config, stream_spec
from api.wiring import build_service, describe_store
from engine import bus
from engine.outbox import Outbox
from engine.settings import Settings
from engine.subjects import unit_token
from routing_rules import Level


def register(app: typer.Typer) -> None:
    app.command(
        "relay", epilog="Example:\n\n    LIANHU_NATS_URL=nats://127.0.0.1:4222 lianhu relay"
    )(relay)
    app.command(
        "consume",
        epilog="Examples:\n\n    lianhu consume --department housing\n\n"
        "    lianhu consume --department dept:housing --forward http://127.0.0.1:9000/events",
    )(consume)
    app.command("status", epilog="Example:\n\n    lianhu status --json")(status)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _nats_url(settings: Settings) -> str:
    if not settings.nats_url:
        fail("no NATS URL configured", "Set LIANHU_NATS_URL, e.g. nats://127.0.0.1:4222.", 2)
    return settings.nats_url


@contextmanager
def _outbox(settings: Settings) -> Iterator[Outbox]:
    service = build_service(settings)
    outbox = build_outbox(settings, service)
    try:
        yield outbox
    finally:
        outbox.views.close()
        service.close()


@reports_errors
def relay(
    from_position: Annotated[
        int | None,
        typer.Option(
            help="publish again everything after this log position (after NATS lost messages)"
        ),
    ] = None,
) -> None:
    """Publish case events to JetStream, from the tracked position on, until stopped."""
    settings = Settings()
    config = relay_config(settings.model_copy(update={"nats_url": _nats_url(settings)}))
    stop = _stop_on_signals()
    with _outbox(settings) as outbox:
        if from_position is not None:
            outbox.reset(from_position)
        typer.echo(
            f"relay: {describe_store(settings)} -> {config.url} stream {config.stream.name}, "
            f"from position {outbox.position()}",
            err=True,
        )
        done = bus.run_relay(outbox, config, stop)
    typer.echo(f"relay stopped at position {done.stats.position}", err=True)


@reports_errors
def consume(
    department: Annotated[str, typer.Option(help="department code: housing or dept:housing")],
    durable: Annotated[
        str | None, typer.Option(help="consumer name [default: dept_<code>]")
    ] = None,
    forward: Annotated[
        str | None,
        typer.Option(help="POST each envelope to this URL (acked on 2xx) instead of printing"),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="stop after this many messages")] = None,
    batch: Annotated[int, typer.Option(min=1, max=1000, help="messages fetched at once")] = 100,
    ack_wait: Annotated[
        float, typer.Option(help="seconds before an unacknowledged message comes again")
    ] = 30.0,
) -> None:
    """Follow a department's case events with a durable pull consumer (ack after handling).

    Prints one envelope per line (JSON) on stdout, or forwards it; a message is
    acknowledged only once printed or forwarded, so after a crash it comes again.
    """
    settings = Settings()
    url = _nats_url(settings)
    code = department.removeprefix("dept:")
    if not code:
        fail("empty department code", "Give a code like housing (see `lianhu rules units`).", 2)
    token = unit_token(code, Level.DEPARTMENT)
    filter_subject = f"{settings.nats_subject_prefix}.department.{token}.>"
    name = durable or f"dept_{token}".replace("~", "_")

    def handle(delivery: bus.Delivery) -> None:
        if forward is None:
            sys.stdout.write(delivery.data.decode() + "\n")
            sys.stdout.flush()
            return
        req = urllib.request.Request(
            forward,
            data=delivery.data,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as response:  # raises on 4xx/5xx
            response.read()

    typer.echo(f"consuming {filter_subject} as {name} from {url}", err=True)
    handled = asyncio.run(
        bus.consume(
            url,
            stream_spec(settings),
            filter_subject=filter_subject,
            durable=name,
            handle=handle,
            stop=_stop_on_signals(),
            batch=batch,
            ack_wait=ack_wait,
            limit=limit,
        )
    )
    typer.echo(f"handled {handled} messages", err=True)


@reports_errors
def status(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The event log, the relay's lag (events and seconds) and each read model's position."""
    settings = Settings()
    with _outbox(settings) as outbox:
        lag = outbox.lag()
        positions = outbox.views.positions()
    report: dict[str, Any] = {
        "store": describe_store(settings),
        "log_head": lag.head,
        "relay": {
            "position": lag.position,
            "lag_events": lag.events,
            "lag_seconds": round(lag.seconds, 3),
        },
        "positions": positions,
        "nats": _stream(settings),
        "at": datetime.now(tz=UTC).isoformat(),
    }
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    typer.echo(f"store      {report['store']}")
    typer.echo(f"log head   {lag.head}")
    typer.echo(
        f"relay      position {lag.position}, {lag.events} events behind, "
        f"oldest unpublished {lag.seconds:.1f} s old"
    )
    nats = report["nats"]
    typer.echo(f"nats       {nats.get('url') or 'not configured'}  {nats.get('state', '')}")
    for name, position in sorted(positions.items()):
        typer.echo(f"  {name:<24} {position}")


def _stream(settings: Settings) -> dict[str, Any]:
    if not settings.nats_url:
        return {"url": None}
    try:
        state = asyncio.run(bus.stream_state(settings.nats_url, settings.nats_stream))
    except Exception as e:  # noqa: BLE001 (status reports an unreachable NATS, never fails on it)
        return {"url": settings.nats_url, "state": f"unreachable: {type(e).__name__}"}
    return {"url": settings.nats_url, "stream": settings.nats_stream, "state": state}

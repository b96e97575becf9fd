"""The `lianhu` command: serve the API, check rule sets, file and act on cases.

Thin like the routes: each command builds the same command model the HTTP API
takes and calls the same CaseService, on the store configured by `Settings`
(LIANHU_DATA_DIR, LIANHU_DATABASE_URL, LIANHU_RULES_DIR, ...). Engine errors
print `error:` and `hint:` lines on stderr and exit 2 (invalid input) or 1.
"""

from __future__ import annotations

import json
import shlex
import sys
from typing import Annotated

import typer

from api.cli import case, metrics, nats, projections, rules, sim, timer
from api.cli.errors import reports_errors
from api.nats_wiring import describe_nats, start_embedded_nats
from api.wiring import describe_store, load_rules
from engine.settings import Settings
from routing_rules import Level, RuleSet

app = typer.Typer(
    name="lianhu",
    help="Event-sourced case routing for grassroots governance (联户长制度).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
app.add_typer(rules.app, name="rules")
app.add_typer(case.app, name="case")
app.add_typer(timer.app, name="timer")
app.add_typer(metrics.app, name="metrics")
app.add_typer(projections.app, name="projections")
nats.register(app)  # lianhu relay, consume, status
sim.register(app)  # lianhu demo, simulate


# -- serve ----------------------------------------------------------------------------------


@app.command(
    epilog="Examples:\n\n"
    "    lianhu serve\n\n"
    "    LIANHU_DATA_DIR=/srv/lianhu lianhu serve --host 0.0.0.0 --port 8080\n\n"
    "    LIANHU_DATABASE_URL=postgresql://lianhu@db/lianhu lianhu serve"
)
@reports_errors
def serve(
    host: Annotated[str | None, typer.Option(help="interface to bind [LIANHU_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="port to bind [LIANHU_PORT]")] = None,
    reload: Annotated[bool, typer.Option(help="restart on code changes (development)")] = False,
) -> None:
    """Run the HTTP API (docs at /docs) on the configured store."""
    import uvicorn

    from api.app import create_app

    settings = Settings()
    host = host or settings.host
    port = port if port is not None else settings.port
    rules = load_rules(settings)
    settings, embedded = (settings, None) if reload else start_embedded_nats(settings)
    base = f"http://{_url_host(host)}:{port}"
    typer.echo(f"lianhu listening on {base}  (API docs {base}/docs)")
    typer.echo(f"store:    {describe_store(settings)}")
    typer.echo(f"nats:     {describe_nats(settings, embedded)}")
    typer.echo(f"rule set: {rules.name} {rules.hash}")
    typer.echo("file a first petition:")
    typer.echo(f"  {first_petition_curl(base, rules)}")
    sys.stdout.flush()
    if reload:
        uvicorn.run("api.app:serve_app", factory=True, host=host, port=port, reload=True)
    else:
        try:
            uvicorn.run(create_app(settings=settings, workers=None), host=host, port=port)
        finally:
            if embedded is not None:
                embedded.stop()


def _url_host(host: str) -> str:
    if host in {"0.0.0.0", "::", ""}:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def first_petition_curl(base: str, rules: RuleSet) -> str:
    """A ready-to-paste curl filing a petition at a real household unit of `rules`."""
    household = next(u.code for u in rules.jurisdiction.units() if u.level is Level.HOUSEHOLD)
    category = (
        "neighbour_dispute"
        if "neighbour_dispute" in rules.categories
        else next(iter(rules.categories))
    )
    body = {
        "household_unit": household,
        "category": category,
        "title": "楼上噪音",
        "description": "楼上邻居每晚十一点后装修，影响休息。",
    }
    return (
        f"curl -sS -X POST {base}/v1/cases -H 'Content-Type: application/json' "
        f"-H 'Idempotency-Key: first-petition' "
        f"-d {shlex.quote(json.dumps(body, ensure_ascii=False))}"
    )


def main() -> None:
    """Entry point of the `lianhu` console script."""
    app(prog_name="lianhu")

"""`lianhu rules`: check a rule set and see how it routes a petition."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli.errors import EXIT_FAILED, EXIT_INVALID, fail
from engine.settings import Settings
from routing_rules import (
    Level,
    PetitionFacts,
    RuleSet,
    RuleSetError,
    Urgency,
    default_rule_set_path,
    explain,
    lint,
    load_rule_set,
)

app = typer.Typer(help="Check a rule set and see how it routes a petition.", no_args_is_help=True)

RulesDir = Annotated[
    Path | None,
    typer.Argument(
        help="rule-set folder [default: LIANHU_RULES_DIR, else the shipped default]",
        show_default=False,
    ),
]


def _load_orfail(directory: Path | None) -> RuleSet:
    folder = directory or Settings().rules_dir or default_rule_set_path()
    try:
        return load_rule_set(folder)
    except RuleSetError as e:
        fail(f"{folder}: {e}", "Fix the file and field named, then run `lianhu rules lint`.", 1)


@app.command(
    "lint",
    epilog="Examples:\n\n    lianhu rules lint\n\n    lianhu rules lint ./my-county-rules",
)
def rules_lint(directory: RulesDir = None) -> None:
    """Check a rule set: unowned categories, unreachable routes, missing SLA rows, unknown units.

    Exits 1 if the set does not load or has any error (warnings alone exit 0).
    """
    rule_set = _load_orfail(directory)
    findings = lint(rule_set)
    for finding in findings:
        typer.echo(str(finding))
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    typer.echo(f"{rule_set.name} {rule_set.hash}: {errors} errors, {warnings} warnings")
    if errors:
        raise typer.Exit(EXIT_FAILED)


@app.command(
    "explain",
    epilog="Example:\n\n"
    "    lianhu rules explain --category neighbour_dispute --urgency normal "
    "--text '楼上漏水' --unit 510123001001-01-01\n\n"
    "List unit codes with `lianhu rules units`, categories with `lianhu rules categories`.",
)
def rules_explain(
    category: Annotated[str, typer.Option(help="category code, e.g. neighbour_dispute")],
    unit: Annotated[str, typer.Option(help="household unit code, e.g. 510123001001-01-01")],
    text: Annotated[str, typer.Option(help="the petition's title and description")] = "",
    urgency: Annotated[Urgency, typer.Option(help="how urgent")] = Urgency.NORMAL,
    directory: RulesDir = None,
) -> None:
    """Show which route a petition would take, and why every route before it did not."""
    rule_set = _load_orfail(directory)
    facts = PetitionFacts(category=category, urgency=urgency, text=text, unit=unit)
    try:
        explanation = explain(rule_set, facts)
    except RuleSetError as e:
        fail(str(e), "See `lianhu rules units` and `lianhu rules categories`.", EXIT_INVALID)
    typer.echo(explanation.render())


@app.command("units", epilog="Example:\n\n    lianhu rules units --under 510123001001")
def rules_units(
    under: Annotated[str, typer.Option(help="only codes starting with this prefix")] = "",
    level: Annotated[Level | None, typer.Option(help="only units at this level")] = None,
    directory: RulesDir = None,
) -> None:
    """List the units of a rule set: code, level, name."""
    for u in _load_orfail(directory).jurisdiction.units():
        if u.code.startswith(under) and (level is None or u.level is level):
            typer.echo(f"{u.code}\t{u.level}\t{u.name}")


@app.command("categories")
def rules_categories(directory: RulesDir = None) -> None:
    """List the categories of a rule set: code, name, description."""
    for category in _load_orfail(directory).categories.values():
        typer.echo(f"{category.code}\t{category.name}\t{category.description}")

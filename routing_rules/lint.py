"""Checks for mistakes that loading cannot see, or that a rule set built in code may have."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from routing_rules.evaluate import PetitionFacts, normalise, route_matches
from routing_rules.model import Route, Urgency, When, target_level
from routing_rules.ruleset import RuleSet
from routing_rules.units import Jurisdiction, Level

Kind = Literal[
    "unowned_category",
    "unreachable_route",
    "missing_sla",
    "unknown_unit",
    "no_catch_all",
    "calendar_fallback",
]


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    severity: Literal["error", "warning"]
    kind: Kind
    file: str
    rule_id: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: " + (f"{self.rule_id}: " if self.rule_id else "")
        return f"{self.severity}: {where}{self.message} [{self.kind}]"


def lint(rule_set: RuleSet) -> list[Finding]:
    """All findings, errors and warnings, in a stable order."""
    return [
        *unknown_units(rule_set),
        *unreachable_routes(rule_set),
        *missing_catch_all(rule_set),
        *unowned_categories(rule_set),
        *missing_sla(rule_set),
        *calendar_fallback(rule_set),
    ]


def calendar_fallback(rule_set: RuleSet) -> list[Finding]:
    """Years past the holiday data are counted Monday-Friday when calendar.toml allows it."""
    calendar = rule_set.calendar
    if calendar.fallback != "weekends":
        return []
    last = max(calendar.covered_years)
    message = (
        f"holiday data ends with {last}; later years count Monday-Friday as working days, "
        f"without holidays or adjusted weekends, until the State Council's schedule for "
        f"{last + 1} is declared as a [[year]] in calendar.toml"
    )
    return [_warning("calendar_fallback", "calendar.toml", None, message)]


def unknown_units(rule_set: RuleSet) -> list[Finding]:
    found: list[Finding] = []
    for route in rule_set.routes:
        for field, target in route.targets():
            if target.startswith("dept:") and target not in rule_set.jurisdiction:
                message = f"{field} names unknown department '{target}'"
                found.append(_error("unknown_unit", "routes.toml", route.id, message))
        for scope in route.when.units or ():
            if scope not in rule_set.jurisdiction:
                message = f"when.units names '{scope}', which is not in units.csv; it never matches"
                found.append(_error("unknown_unit", "routes.toml", route.id, message))
    return found


def unreachable_routes(rule_set: RuleSet) -> list[Finding]:
    """Routes that an earlier route always takes first (its conditions are a superset)."""
    found: list[Finding] = []
    routes = rule_set.routes
    for index, later in enumerate(routes):
        for earlier in routes[:index]:
            if covers(earlier.when, later.when, rule_set.jurisdiction):
                message = f"never reached: route '{earlier.id}' before it takes all its petitions"
                found.append(_error("unreachable_route", "routes.toml", later.id, message))
                break
    return found


def covers(first: When, second: When, jurisdiction: Jurisdiction) -> bool:
    """Does every petition matching `second` also match `first`?"""

    def subset(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> bool:
        return a is None or (b is not None and set(b) <= set(a))

    keywords_covered = first.keywords_any is None or (
        second.keywords_any is not None
        and all(
            any(normalise(a) in normalise(b) for a in first.keywords_any)
            for b in second.keywords_any
        )
    )
    units_covered = first.units is None or (
        second.units is not None
        and all(any(jurisdiction.in_subtree(b, a) for a in first.units) for b in second.units)
    )
    return (
        subset(first.categories, second.categories)
        and subset(first.urgencies, second.urgencies)
        and keywords_covered
        and units_covered
    )


def missing_catch_all(rule_set: RuleSet) -> list[Finding]:
    if any(route.is_catch_all for route in rule_set.routes):
        return []
    message = "no catch-all route (a route without conditions) at the end; petitions may go unowned"
    return [_warning("no_catch_all", "routes.toml", None, message)]


def unowned_categories(rule_set: RuleSet) -> list[Finding]:
    """Errors for categories some petition of which matches no route; warnings for catch-all only.

    Exact: a text without keywords avoids every keyword route, so trying the empty text at every
    urgency and at one household per distinct combination of route scopes finds any gap.
    """
    found: list[Finding] = []
    households = _representative_households(rule_set)
    named = {code for route in rule_set.routes for code in route.when.categories or ()}
    for code in rule_set.categories:
        gap = _first_gap(rule_set, code, households)
        if gap is not None:
            urgency, unit = gap
            message = (
                f"category '{code}' is unowned: e.g. an {urgency} petition at {unit} "
                f"without keywords matches no route"
            )
            found.append(_error("unowned_category", "categories.toml", code, message))
        elif code not in named:
            message = (
                f"category '{code}' has no route of its own (none lists it in when.categories); "
                f"only routes for every category, such as the catch-all, take it"
            )
            found.append(_warning("unowned_category", "categories.toml", code, message))
    return found


def missing_sla(rule_set: RuleSet) -> list[Finding]:
    """Level × urgency pairs a handler, co-handler or ladder rung can reach without an SLA row."""
    found: list[Finding] = []
    reported: set[tuple[Level, Urgency]] = set()
    for route in rule_set.routes:
        for urgency in route.when.urgencies or tuple(Urgency):
            for _, target in route.targets():
                key = (target_level(target), urgency)
                if key in rule_set.sla or key in reported:
                    continue
                reported.add(key)
                message = (
                    f"no SLA row for level '{key[0]}' and urgency '{urgency}', "
                    f"which route '{route.id}' can reach"
                )
                found.append(_error("missing_sla", "sla.toml", route.id, message))
    return found


def _first_gap(
    rule_set: RuleSet, category: str, households: list[str]
) -> tuple[Urgency, str] | None:
    for urgency in Urgency:
        for unit in households:
            facts = PetitionFacts(category=category, urgency=urgency, text="", unit=unit)
            if not any(_matches(route, facts, rule_set) for route in rule_set.routes):
                return urgency, unit
    return None


def _matches(route: Route, facts: PetitionFacts, rule_set: RuleSet) -> bool:
    return route_matches(route.when, facts, rule_set.jurisdiction)


def _representative_households(rule_set: RuleSet) -> list[str]:
    """One household for each distinct set of route scopes it falls in."""
    jurisdiction = rule_set.jurisdiction
    scopes = sorted({scope for route in rule_set.routes for scope in route.when.units or ()})
    chosen: dict[tuple[bool, ...], str] = {}
    for unit in jurisdiction.units():
        if unit.level is Level.HOUSEHOLD:
            key = tuple(jurisdiction.in_subtree(unit.code, scope) for scope in scopes)
            chosen.setdefault(key, unit.code)
    return sorted(chosen.values())


def _error(kind: Kind, file: str, rule_id: str | None, message: str) -> Finding:
    return Finding(severity="error", kind=kind, file=file, rule_id=rule_id, message=message)


def _warning(kind: Kind, file: str, rule_id: str | None, message: str) -> Finding:
    return Finding(severity="warning", kind=kind, file=file, rule_id=rule_id, message=message)

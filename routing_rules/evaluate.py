"""Routing a petition: the first route whose conditions all hold decides."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from routing_rules.errors import InvalidUnitCode, RuleSetError, UnknownCategory
from routing_rules.model import Route, Urgency, When, target_level
from routing_rules.ruleset import RuleSet
from routing_rules.units import Jurisdiction, Level


class PetitionFacts(BaseModel):
    """What routing looks at. `unit` is the household unit where the petition was filed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    category: str
    urgency: Urgency
    text: str
    unit: str


class Decision(BaseModel):
    """Where a petition goes; unit codes resolved for this petition."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule_id: str
    rule_set_hash: str
    handler: str
    handler_level: Level
    co_handlers: tuple[str, ...]
    ladder: tuple[str, ...]


def evaluate(rule_set: RuleSet, facts: PetitionFacts) -> Decision:
    """Pure and deterministic; raises UnknownUnit / UnknownCategory / InvalidUnitCode."""
    check_facts(rule_set, facts)
    text = normalise(facts.text)
    for route in rule_set.routes:
        if route_matches(route.when, facts, rule_set.jurisdiction, text=text):
            return decide(rule_set, route, facts.unit)
    raise no_route_matches()


def no_route_matches() -> RuleSetError:
    return RuleSetError(
        "no route matches and the rule set has no catch-all", file="routes.toml", field="route"
    )


def check_facts(rule_set: RuleSet, facts: PetitionFacts) -> None:
    if facts.category not in rule_set.categories:
        raise UnknownCategory(facts.category, known=tuple(rule_set.categories))
    unit = rule_set.jurisdiction.unit(facts.unit)
    if unit.level is not Level.HOUSEHOLD:
        raise InvalidUnitCode(
            facts.unit, reason=f"petitions are filed at a household unit, this is a {unit.level}"
        )


def decide(rule_set: RuleSet, route: Route, filing_unit: str) -> Decision:
    handler = resolve_target(rule_set, route.handle_at, filing_unit)
    co_handlers = _distinct(resolve_target(rule_set, t, filing_unit) for t in route.co_handlers)
    ladder = _distinct(resolve_target(rule_set, t, filing_unit) for t in route.escalate)
    return Decision(
        rule_id=route.id,
        rule_set_hash=rule_set.hash,
        handler=handler,
        handler_level=target_level(route.handle_at),
        co_handlers=tuple(c for c in co_handlers if c != handler),
        ladder=tuple(rung for rung in ladder if rung != handler),
    )


def resolve_target(rule_set: RuleSet, target: str, filing_unit: str) -> str:
    """'village' → the filing unit's village code; 'dept:x' → 'dept:x' (must exist)."""
    jurisdiction = rule_set.jurisdiction
    if target.startswith("dept:"):
        return jurisdiction.unit(target).code
    ancestor = jurisdiction.ancestor_at(filing_unit, Level(target))
    if ancestor is None:
        raise InvalidUnitCode(filing_unit, reason=f"has no {target} at or above it")
    return ancestor.code


def route_matches(
    when: When, facts: PetitionFacts, jurisdiction: Jurisdiction, *, text: str | None = None
) -> bool:
    """Do all the route's conditions hold? `text`: facts.text already normalised, if at hand."""
    if when.categories is not None and facts.category not in when.categories:
        return False
    if when.urgencies is not None and facts.urgency not in when.urgencies:
        return False
    if when.keywords_any is not None:
        text = normalise(facts.text) if text is None else text
        if not any(_keyword(k) in text for k in when.keywords_any):
            return False
    return when.units is None or any(jurisdiction.in_subtree(facts.unit, s) for s in when.units)


def check_conditions(
    when: When, facts: PetitionFacts, jurisdiction: Jurisdiction
) -> list[tuple[bool, str]]:
    """Each condition the route gives, whether it holds, and why (for explain)."""
    results: list[tuple[bool, str]] = []
    if when.categories is not None:
        held = facts.category in when.categories
        results.append((held, f"category '{facts.category}' {_in(held)} {_list(when.categories)}"))
    if when.urgencies is not None:
        held = facts.urgency in when.urgencies
        results.append((held, f"urgency '{facts.urgency}' {_in(held)} {_list(when.urgencies)}"))
    if when.keywords_any is not None:
        text = normalise(facts.text)
        found = [k for k in when.keywords_any if _keyword(k) in text]
        if found:
            results.append((True, f"keyword '{found[0]}' found"))
        else:
            results.append((False, f"none of the keywords {_list(when.keywords_any)} found"))
    if when.units is not None:
        scopes = [s for s in when.units if jurisdiction.in_subtree(facts.unit, s)]
        if scopes:
            results.append((True, f"unit {facts.unit} within {scopes[0]}"))
        else:
            results.append((False, f"unit {facts.unit} not within {_list(when.units)}"))
    return results


def normalise(text: str) -> str:
    """Keyword matching ignores case and full-width / half-width differences."""
    return unicodedata.normalize("NFKC", text).casefold()


@functools.lru_cache(maxsize=4096)
def _keyword(keyword: str) -> str:
    return normalise(keyword)


def _distinct(codes: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for code in codes:
        if code not in seen:
            seen.append(code)
    return seen


def _in(held: bool) -> str:
    return "in" if held else "not in"


def _list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(items) + "]"

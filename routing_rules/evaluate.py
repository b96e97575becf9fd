"""Routing a petition: the first route whose conditions all hold decides."""

from __future__ import annotations

import functools
import unicodedata
import weakref
from collections.abc import Callable, Iterable
from typing import ClassVar, TypeVar

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
    """Pure and deterministic; raises UnknownUnit / UnknownCategory / InvalidUnitCode.

    Memoised per rule set (see `_Router`); gives exactly what `evaluate_uncached` gives.
    """
    return _router(rule_set).evaluate(
        rule_set, facts.category, facts.urgency, facts.text, facts.unit
    )


def evaluate_fields(
    rule_set: RuleSet, *, category: str, urgency: Urgency, text: str, unit: str
) -> Decision:
    """`evaluate(rule_set, PetitionFacts(...))` for facts a caller has already validated
    (the engine's FilePetition), without building the model on every filing."""
    return _router(rule_set).evaluate(rule_set, category, urgency, text, unit)


def evaluate_uncached(rule_set: RuleSet, facts: PetitionFacts) -> Decision:
    """The plain first-match walk over the routes: the reference `evaluate` must agree with."""
    check_facts(rule_set, facts)
    text = normalise(facts.text)
    for route in rule_set.routes:
        if route_matches(route.when, facts, rule_set.jurisdiction, text=text):
            return decide(rule_set, route, facts.unit)
    raise no_route_matches()


class _Router:
    """`evaluate` for one rule set, memoised by what a decision depends on.

    Which routes a petition can take depends on its category and urgency alone, up to
    unit scopes and keywords: for each (category, urgency) the routes whose category and
    urgency conditions hold are listed once, in order, up to the first with neither a
    unit scope nor keywords (which then always matches). A petition walks only that
    list, checking scopes and keywords as the plain walk does, so the first match is
    the plain walk's. The decision for (route, filing unit), and every target resolved
    for a filing unit, are computed on first use and kept. Errors are never kept: a
    failing petition fails again, the same way, through `check_facts` or `decide`.

    A rule set is never changed in place (changing rules means loading a new one), so
    nothing here goes stale. The router holds no reference to its rule set, so that the
    rule set (and with it the router, see `_router`) can be dropped.
    """

    memo_limit: ClassVar[int] = 100_000  # entries per memo; a full memo starts over

    def __init__(self, rule_set: RuleSet) -> None:
        routes = rule_set.routes
        self.keywords: tuple[tuple[str, ...] | None, ...] = tuple(
            None if r.when.keywords_any is None else tuple(_keyword(k) for k in r.when.keywords_any)
            for r in routes
        )
        self.scopes: tuple[tuple[str, ...] | None, ...] = tuple(r.when.units for r in routes)
        # (category, urgency) -> indexes of the routes that can match, in order
        self.candidates: dict[tuple[str, Urgency], tuple[int, ...]] = {}
        self.households: dict[str, None] = {}  # units check_facts accepted
        self.targets: dict[tuple[str, str], str] = {}  # (target, filing unit) -> unit code
        self.decisions: dict[tuple[int, str], Decision] = {}  # (route index, filing unit)

    def evaluate(
        self, rule_set: RuleSet, category: str, urgency: Urgency, text: str, unit: str
    ) -> Decision:
        if unit not in self.households or category not in rule_set.categories:
            facts = PetitionFacts(category=category, urgency=urgency, text=text, unit=unit)
            check_facts(rule_set, facts)
            self._keep(self.households, unit, None)
        candidates = self.candidates.get((category, urgency))
        if candidates is None:
            candidates = self._candidates(rule_set, category, urgency)
            self.candidates[(category, urgency)] = candidates
        normalised: str | None = None
        for index in candidates:
            scopes = self.scopes[index]
            if scopes is not None and not any(
                rule_set.jurisdiction.in_subtree(unit, scope) for scope in scopes
            ):
                continue
            keywords = self.keywords[index]
            if keywords is not None:
                if normalised is None:
                    normalised = normalise(text)
                for keyword in keywords:
                    if keyword in normalised:
                        break
                else:
                    continue
            decision = self.decisions.get((index, unit))
            if decision is None:
                decision = decide(rule_set, rule_set.routes[index], unit, self._resolve)
                self._keep(self.decisions, (index, unit), decision)
            return decision
        raise no_route_matches()

    def _candidates(self, rule_set: RuleSet, category: str, urgency: Urgency) -> tuple[int, ...]:
        found: list[int] = []
        for index, route in enumerate(rule_set.routes):
            when = route.when
            if when.categories is not None and category not in when.categories:
                continue
            if when.urgencies is not None and urgency not in when.urgencies:
                continue
            found.append(index)
            if when.keywords_any is None and when.units is None:
                break  # matches every petition that reaches it: no later route is reached
        return tuple(found)

    def _resolve(self, rule_set: RuleSet, target: str, filing_unit: str) -> str:
        code = self.targets.get((target, filing_unit))
        if code is None:
            code = resolve_target(rule_set, target, filing_unit)
            self._keep(self.targets, (target, filing_unit), code)
        return code

    def _keep(self, memo: dict[K, V], key: K, value: V) -> None:
        """memo[key] = value, starting the memo over when it is full (bounded memory)."""
        if len(memo) >= self.memo_limit:
            memo.clear()
        memo[key] = value


K = TypeVar("K")
V = TypeVar("V")


_ROUTERS: dict[int, tuple[weakref.ref[RuleSet], _Router]] = {}


def _router(rule_set: RuleSet) -> _Router:
    """The rule set's router, made on first use and dropped with the rule set."""
    key = id(rule_set)
    found = _ROUTERS.get(key)
    if found is not None and found[0]() is rule_set:
        return found[1]
    router = _Router(rule_set)
    routers = _ROUTERS  # still at hand in `forget` while the interpreter shuts down

    def forget(ref: weakref.ref[RuleSet]) -> None:
        entry = routers.get(key)
        if entry is not None and entry[0] is ref:
            del routers[key]

    routers[key] = (weakref.ref(rule_set, forget), router)
    return router


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


def decide(
    rule_set: RuleSet,
    route: Route,
    filing_unit: str,
    resolve: Callable[[RuleSet, str, str], str] | None = None,
) -> Decision:
    """The route's decision for a petition filed at `filing_unit`; `resolve` (default
    `resolve_target`) turns a target into a unit code."""
    resolve = resolve or resolve_target
    handler = resolve(rule_set, route.handle_at, filing_unit)
    co_handlers = _distinct(resolve(rule_set, t, filing_unit) for t in route.co_handlers)
    ladder = _distinct(resolve(rule_set, t, filing_unit) for t in route.escalate)
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


# Full-width ASCII (U+FF01-FF5E) and the ideographic space: each one's NFKC decomposition is
# the one plain ASCII character it maps to here, a starter like itself, so mapping them first
# leaves NFKC's result unchanged, while Chinese text with full-width punctuation then passes
# NFKC's quick check instead of being decomposed and recomposed (twice as fast).
_WIDE = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def normalise(text: str) -> str:
    """Keyword matching ignores case and full-width / half-width differences."""
    return unicodedata.normalize("NFKC", text.translate(_WIDE)).casefold()


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

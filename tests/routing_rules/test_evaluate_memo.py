"""The memoised `evaluate` decides exactly as the plain first-match walk, errors included."""

from __future__ import annotations

import dataclasses
import gc
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing_rules import (
    Decision,
    Level,
    PetitionFacts,
    Route,
    RuleSet,
    Urgency,
    default_rule_set_path,
    evaluate,
    evaluate_fields,
    load_rule_set,
)
from routing_rules.evaluate import _ROUTERS, _WIDE, _Router, evaluate_uncached, normalise
from tests.routing_rules.helpers import GROUP, VILLAGE

RULES = load_rule_set(default_rule_set_path())
HOUSEHOLDS = sorted(u.code for u in RULES.jurisdiction.units() if u.level is Level.HOUSEHOLD)
KEYWORDS = sorted({k for r in RULES.routes for k in r.when.keywords_any or ()})
WIDE = {k: k.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)}) for k in KEYWORDS}
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

words = st.sampled_from(KEYWORDS) | st.sampled_from(KEYWORDS).map(str.upper)
words |= st.sampled_from(KEYWORDS).map(WIDE.__getitem__) | st.text(max_size=6)
texts = st.lists(words, max_size=4).map("".join)
units = st.sampled_from(HOUSEHOLDS) | st.sampled_from([VILLAGE, GROUP, "dept:police", "999"])
categories = st.sampled_from([*sorted(RULES.categories), "no_such_category"])
petitions = st.builds(
    PetitionFacts,
    category=categories,
    urgency=st.sampled_from(list(Urgency)),
    text=texts,
    unit=units,
)


def scoped(route: Route) -> Route:
    """The route limited to two townships, so unit conditions meet keyword conditions."""
    return route.model_copy(
        update={"when": route.when.model_copy(update={"units": ("510123001", "510123104")})}
    )


@st.composite
def rule_sets(draw: st.DrawFn) -> RuleSet:
    """The default rules reordered, some routes scoped to townships, perhaps no catch-all."""
    routes = draw(st.permutations(RULES.routes))
    scope = draw(st.sets(st.sampled_from([r.id for r in RULES.routes])))
    routes = [scoped(r) if r.id in scope else r for r in routes]
    if draw(st.booleans()):
        routes = [r for r in routes if not r.is_catch_all]
    return dataclasses.replace(RULES, routes=routes)


def outcome(rule_set: RuleSet, facts: PetitionFacts, *, cached: bool) -> object:
    try:
        decide = evaluate if cached else evaluate_uncached
        decision: Decision = decide(rule_set, facts)
    except Exception as error:  # noqa: BLE001 - the error is part of the outcome compared
        return (type(error), str(error))
    return decision


def outcome_of_fields(rule_set: RuleSet, facts: PetitionFacts) -> object:
    try:
        return evaluate_fields(rule_set, **facts.model_dump())
    except Exception as error:  # noqa: BLE001 - the error is part of the outcome compared
        return (type(error), str(error))


@SETTINGS
@given(petitions)
def test_memoised_evaluate_equals_the_plain_walk_on_the_default_rules(facts: PetitionFacts) -> None:
    expected = outcome(RULES, facts, cached=False)

    assert outcome(RULES, facts, cached=True) == expected
    assert outcome(RULES, facts, cached=True) == expected  # and again, now from the memo
    assert outcome_of_fields(RULES, facts) == expected


@SETTINGS
@given(rule_sets(), st.lists(petitions, min_size=1, max_size=30))
def test_memoised_evaluate_equals_the_plain_walk_whatever_came_before(
    rule_set: RuleSet, seen: list[PetitionFacts]
) -> None:
    for facts in seen + seen[::-1]:
        expected = outcome(rule_set, facts, cached=False)
        assert outcome(rule_set, facts, cached=True) == expected
        assert outcome_of_fields(rule_set, facts) == expected


def test_the_same_category_urgency_and_unit_still_route_by_the_text() -> None:
    unit = HOUSEHOLDS[0]

    def rule_id(text: str) -> str:
        facts = PetitionFacts(
            category="property_dispute", urgency=Urgency.NORMAL, text=text, unit=unit
        )
        return evaluate(RULES, facts).rule_id

    assert rule_id("物业费") == "property-dispute"
    assert rule_id("电梯坏了") == "lift-fault"
    assert rule_id("ＬＩＦＴ is broken") == "lift-fault"
    assert rule_id("后山滑坡，电梯也坏了") == "landslide-warning"
    assert rule_id("物业费") == "property-dispute"


def test_a_rule_set_that_is_gone_takes_its_memo_with_it() -> None:
    built = dataclasses.replace(RULES, routes=list(RULES.routes))
    facts = PetitionFacts(category="public_service", urgency=Urgency.NORMAL, text="", unit=VILLAGE)
    outcome(built, facts, cached=True)
    assert id(built) in _ROUTERS

    key = id(built)
    del built
    gc.collect()

    assert key not in _ROUTERS


@settings(max_examples=50, deadline=None)
@given(st.lists(petitions, min_size=1, max_size=40))
def test_a_full_memo_starts_over_and_still_decides_the_same(seen: list[PetitionFacts]) -> None:
    built = dataclasses.replace(RULES, routes=list(RULES.routes))
    limit = _Router.memo_limit
    _Router.memo_limit = 3
    try:
        for facts in seen:
            assert outcome(built, facts, cached=True) == outcome(built, facts, cached=False)
    finally:
        _Router.memo_limit = limit


def test_the_wide_characters_mapped_first_are_exactly_their_nfkc() -> None:
    for code, plain in _WIDE.items():
        assert unicodedata.normalize("NFKC", chr(code)) == chr(plain)
        assert unicodedata.decomposition(chr(code)).startswith("<wide>")
        assert unicodedata.combining(chr(code)) == unicodedata.combining(chr(plain)) == 0


wide_or_combining = st.sampled_from([chr(c) for c in _WIDE] + ["\u0301", "\u0308", "\u3099", "ｶ"])


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.text(max_size=4) | wide_or_combining, max_size=12).map("".join))
def test_normalise_is_nfkc_then_casefold(text: str) -> None:
    assert normalise(text) == unicodedata.normalize("NFKC", text).casefold()

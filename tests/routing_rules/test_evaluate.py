"""Evaluating petitions against the default rules: properties that hold for every petition."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing_rules import (
    InvalidUnitCode,
    Level,
    PetitionFacts,
    RuleSet,
    UnknownCategory,
    UnknownUnit,
    Urgency,
    default_rule_set_path,
    evaluate,
    explain,
    load_rule_set,
    resolve_target,
)
from tests.routing_rules.helpers import COUNTY, GROUP, HOUSEHOLD, TOWNSHIP, VILLAGE

RULES = load_rule_set(default_rule_set_path())
RELOADED = load_rule_set(default_rule_set_path())  # a second, independent load
HOUSEHOLDS = sorted(u.code for u in RULES.jurisdiction.units() if u.level is Level.HOUSEHOLD)
KEYWORDS = sorted({k for r in RULES.routes for k in r.when.keywords_any or ()})

texts = st.lists(st.sampled_from(KEYWORDS) | st.text(max_size=8), max_size=4).map("".join)
petitions = st.builds(
    PetitionFacts,
    category=st.sampled_from(sorted(RULES.categories)),
    urgency=st.sampled_from(list(Urgency)),
    text=texts,
    unit=st.sampled_from(HOUSEHOLDS),
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(petitions)
def test_evaluation_is_deterministic_also_across_a_reload(facts: PetitionFacts) -> None:
    first = evaluate(RULES, facts)

    assert evaluate(RULES, facts) == first
    assert evaluate(RELOADED, facts) == first
    assert first.rule_set_hash == RULES.hash == RELOADED.hash


def test_a_reloaded_rule_set_decides_the_same(rules: RuleSet) -> None:
    reloaded = load_rule_set(default_rule_set_path())

    for unit in HOUSEHOLDS[::25]:
        for category in rules.categories:
            facts = PetitionFacts(category=category, urgency=Urgency.NORMAL, text="", unit=unit)
            assert evaluate(reloaded, facts) == evaluate(rules, facts)


@SETTINGS
@given(petitions)
def test_every_petition_gets_known_owners_with_deadlines(facts: PetitionFacts) -> None:
    decision = evaluate(RULES, facts)

    j = RULES.jurisdiction
    assert j.unit(decision.handler).level is decision.handler_level
    for code in (decision.handler, *decision.co_handlers, *decision.ladder):
        level = j.unit(code).level
        assert RULES.sla.entry(level, facts.urgency).level is level
    assert decision.handler not in decision.co_handlers
    assert decision.handler not in decision.ladder
    assert len(set(decision.ladder)) == len(decision.ladder)


@SETTINGS
@given(petitions)
def test_tree_owners_are_the_filing_household_or_above_it(facts: PetitionFacts) -> None:
    decision = evaluate(RULES, facts)

    j = RULES.jurisdiction
    tree_codes = [c for c in (decision.handler, *decision.co_handlers, *decision.ladder)
                  if j.unit(c).level.in_tree]  # fmt: skip
    for code in tree_codes:
        assert j.in_subtree(facts.unit, code)
    ladder_ranks = [j.unit(c).level.rank for c in decision.ladder if j.unit(c).level.in_tree]
    assert ladder_ranks == sorted(set(ladder_ranks))
    if decision.handler_level.in_tree and ladder_ranks:
        assert ladder_ranks[0] > decision.handler_level.rank


@SETTINGS
@given(petitions)
def test_the_first_matching_route_wins(facts: PetitionFacts) -> None:
    explanation = explain(RULES, facts)

    assert explanation.decision == evaluate(RULES, facts)
    assert explanation.checks[-1].matched
    assert explanation.checks[-1].rule_id == explanation.decision.rule_id
    assert not any(check.matched for check in explanation.checks[:-1])


@SETTINGS
@given(petitions)
def test_emergencies_never_stay_with_the_household_leader(facts: PetitionFacts) -> None:
    decision = evaluate(RULES, facts)

    if facts.urgency is Urgency.EMERGENCY or facts.category == "emergency":
        assert decision.handler_level is Level.DEPARTMENT


@pytest.mark.parametrize(
    ("target", "expected"),
    [("household", HOUSEHOLD), ("group", GROUP), ("village", VILLAGE), ("township", TOWNSHIP),
     ("county", COUNTY), ("dept:housing", "dept:housing")],
)  # fmt: skip
def test_targets_resolve_from_the_filing_household(
    rules: RuleSet, target: str, expected: str
) -> None:
    assert resolve_target(rules, target, HOUSEHOLD) == expected


def test_an_unknown_department_target_is_refused(rules: RuleSet) -> None:
    with pytest.raises(UnknownUnit):
        resolve_target(rules, "dept:foo", HOUSEHOLD)


def test_an_unknown_category_is_refused(rules: RuleSet) -> None:
    facts = PetitionFacts(category="gossip", urgency=Urgency.NORMAL, text="", unit=HOUSEHOLD)

    with pytest.raises(UnknownCategory, match="unknown category 'gossip'"):
        evaluate(rules, facts)


def test_an_unknown_household_is_refused(rules: RuleSet) -> None:
    facts = PetitionFacts(
        category="other", urgency=Urgency.NORMAL, text="", unit="510123104201-03-99"
    )

    with pytest.raises(UnknownUnit, match="510123104201-03-99"):
        evaluate(rules, facts)


def test_a_petition_filed_above_household_level_is_refused(rules: RuleSet) -> None:
    facts = PetitionFacts(category="other", urgency=Urgency.NORMAL, text="", unit=VILLAGE)

    with pytest.raises(InvalidUnitCode, match="household unit"):
        evaluate(rules, facts)

"""Explain: which route a petition takes and why, readable by a planner."""

from __future__ import annotations

from routing_rules import PetitionFacts, RuleSet, Urgency, evaluate, explain
from tests.routing_rules.helpers import HOUSEHOLD, TOWNSHIP, VILLAGE

LIFT = PetitionFacts(
    category="infrastructure", urgency=Urgency.NORMAL, text="小区电梯故障，张三 13800000000",
    unit=HOUSEHOLD,
)  # fmt: skip


def test_explanation_carries_the_decision_and_stops_at_the_winner(rules: RuleSet) -> None:
    explanation = explain(rules, LIFT)

    assert explanation.decision == evaluate(rules, LIFT)
    ids = [check.rule_id for check in explanation.checks]
    assert ids == [r.id for r in rules.routes][: ids.index("lift-fault") + 1]
    assert [c.matched for c in explanation.checks] == [False] * (len(ids) - 1) + [True]


def test_every_condition_gives_its_reason(rules: RuleSet) -> None:
    checks = {c.rule_id: c for c in explain(rules, LIFT).checks}

    assert checks["lift-fault"].reasons == (
        "category 'infrastructure' in [infrastructure, property_dispute, hazard_safety, "
        "public_service]",
        "keyword '电梯' found",
    )
    assert checks["emergency-urgency"].reasons == ("urgency 'normal' not in [emergency]",)
    assert checks["landslide-warning"].reasons[0].startswith("none of the keywords [山体滑坡")


def test_scope_and_catch_all_reasons(rules: RuleSet) -> None:
    facts = PetitionFacts(category="other", urgency=Urgency.NORMAL, text="", unit=HOUSEHOLD)

    checks = {c.rule_id: c for c in explain(rules, facts).checks}

    assert "not within [510123001, 510123002]" in checks["urban-sanitation"].reasons[1]
    assert checks["catch-all"].reasons == ("no conditions: takes every petition",)


def test_render_names_route_units_and_reasons_but_not_the_text(rules: RuleSet) -> None:
    text = explain(rules, LIFT).render()

    assert "lift-fault — Broken lifts go to housing" in text
    assert "dept:housing 县住房和城乡建设局 [department]" in text
    assert "dept:market_regulation 县市场监督管理局" in text
    assert f"{TOWNSHIP} 龙泉镇 → 510123 云溪县" in text
    assert f"{HOUSEHOLD} 金竹村3组7号联户" in text
    assert "✓ lift-fault: category 'infrastructure' in" in text
    assert "✗ emergency-urgency: urgency 'normal' not in [emergency]" in text
    assert rules.hash in text
    assert "13800000000" not in text and "张三" not in text


def test_render_of_a_household_decision(rules: RuleSet) -> None:
    facts = PetitionFacts(
        category="policy_question", urgency=Urgency.NORMAL, text="补贴", unit=HOUSEHOLD
    )

    text = explain(rules, facts).render()

    assert f"handler:  {HOUSEHOLD} 金竹村3组7号联户 [household]" in text
    assert "co-handlers: none" in text
    assert f"{VILLAGE} 金竹村 → {TOWNSHIP} 龙泉镇" in text

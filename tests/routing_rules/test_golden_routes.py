"""One golden petition per default route, with the exact decision it must get.

A change to routes.toml that changes any of these is a routing change: update the golden
case in the same commit and say so in its message.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from routing_rules import Decision, Level, PetitionFacts, RuleSet, Urgency, evaluate
from tests.routing_rules.helpers import COUNTY, GROUP, HOUSEHOLD, TOWNSHIP, VILLAGE

# A household of 文庙社区, in the 城关街道 street office.
URBAN_HOUSEHOLD = "510123001001-01-01"
URBAN_COMMUNITY = "510123001001"
URBAN_STREET_OFFICE = "510123001"


class Golden(NamedTuple):
    category: str
    urgency: Urgency
    text: str
    unit: str
    handler: str
    handler_level: Level
    co_handlers: tuple[str, ...]
    ladder: tuple[str, ...]


N, U, E = Urgency.NORMAL, Urgency.URGENT, Urgency.EMERGENCY
DEPT = Level.DEPARTMENT

GOLDEN = {
    "landslide-warning": Golden(
        "hazard_safety", U, "村后山体出现裂缝，可能山体滑坡", HOUSEHOLD,
        "dept:emergency", DEPT, (TOWNSHIP,), (COUNTY,),
    ),
    "public-security": Golden(
        "neighbour_dispute", N, "两家因为占车位打架，有人受伤", HOUSEHOLD,
        "dept:police", DEPT, (VILLAGE,), (TOWNSHIP, COUNTY),
    ),
    "emergency-category": Golden(
        "emergency", U, "河水暴涨漫过桥面", HOUSEHOLD,
        "dept:emergency", DEPT, (TOWNSHIP,), (COUNTY,),
    ),
    "emergency-urgency": Golden(
        "infrastructure", E, "燃气管道破裂，正在泄漏", HOUSEHOLD,
        "dept:emergency", DEPT, (TOWNSHIP,), (COUNTY,),
    ),
    "illegal-construction-keyword": Golden(
        "neighbour_dispute", N, "楼上邻居在楼顶私搭乱建阳光房", HOUSEHOLD,
        "dept:urban_mgmt", DEPT, ("dept:planning",), (TOWNSHIP, COUNTY),
    ),
    "lift-fault": Golden(
        "infrastructure", N, "小区电梯故障，已经停运三天", HOUSEHOLD,
        "dept:housing", DEPT, ("dept:market_regulation",), (TOWNSHIP, COUNTY),
    ),
    "pollution": Golden(
        "environment_sanitation", N, "河边工厂夜间偷排污水", HOUSEHOLD,
        "dept:ecology", DEPT, (TOWNSHIP,), (COUNTY,),
    ),
    "medical-insurance": Golden(
        "policy_question", N, "异地就医报销需要哪些材料", HOUSEHOLD,
        "dept:medical_insurance", DEPT, (), (TOWNSHIP, COUNTY),
    ),
    "pension-social-security": Golden(
        "policy_question", N, "养老金这个月为什么没有按时到账", HOUSEHOLD,
        "dept:hr_social_security", DEPT, (), (TOWNSHIP, COUNTY),
    ),
    "civil-affairs": Golden(
        "service_demand", N, "希望社区开设养老助餐点", HOUSEHOLD,
        "dept:civil_affairs", DEPT, (VILLAGE,), (TOWNSHIP, COUNTY),
    ),
    "childcare": Golden(
        "service_demand", N, "双职工家庭希望附近有托育服务", HOUSEHOLD,
        "dept:health", DEPT, (VILLAGE,), (TOWNSHIP, COUNTY),
    ),
    "illegal-construction": Golden(
        "illegal_construction", N, "小区绿地被围起来盖了房子", HOUSEHOLD,
        "dept:urban_mgmt", DEPT, ("dept:planning",), (TOWNSHIP, COUNTY),
    ),
    "neighbour-dispute": Golden(
        "neighbour_dispute", N, "楼上邻居夜间噪音扰民", HOUSEHOLD,
        HOUSEHOLD, Level.HOUSEHOLD, (), (GROUP, VILLAGE, TOWNSHIP),
    ),
    "property-dispute": Golden(
        "property_dispute", N, "物业费上涨未经业主大会同意", HOUSEHOLD,
        VILLAGE, Level.VILLAGE, (), (TOWNSHIP, "dept:housing"),
    ),
    "policy-question": Golden(
        "policy_question", N, "耕地地力补贴怎么申请", HOUSEHOLD,
        HOUSEHOLD, Level.HOUSEHOLD, (), (VILLAGE, TOWNSHIP),
    ),
    "public-service": Golden(
        "public_service", N, "片区连续三天停水", HOUSEHOLD,
        VILLAGE, Level.VILLAGE, (), (TOWNSHIP, COUNTY),
    ),
    "hazard-safety": Golden(
        "hazard_safety", N, "老旧小区楼道堆放杂物，存在消防隐患", HOUSEHOLD,
        TOWNSHIP, Level.TOWNSHIP, (VILLAGE,), ("dept:emergency", COUNTY),
    ),
    "infrastructure": Golden(
        "infrastructure", N, "社区充电桩不足，晚上排队充电", HOUSEHOLD,
        VILLAGE, Level.VILLAGE, (), (TOWNSHIP, COUNTY),
    ),
    "urban-sanitation": Golden(
        "environment_sanitation", N, "垃圾分类推进缓慢，垃圾桶天天满溢", URBAN_HOUSEHOLD,
        "dept:urban_mgmt", DEPT, (URBAN_COMMUNITY,), (URBAN_STREET_OFFICE, COUNTY),
    ),
    "environment-sanitation": Golden(
        "environment_sanitation", N, "垃圾分类推进缓慢，垃圾桶天天满溢", HOUSEHOLD,
        VILLAGE, Level.VILLAGE, (), (TOWNSHIP, "dept:urban_mgmt"),
    ),
    "service-demand": Golden(
        "service_demand", N, "增设社区健身器材", HOUSEHOLD,
        VILLAGE, Level.VILLAGE, (), (TOWNSHIP, COUNTY),
    ),
    "catch-all": Golden(
        "other", N, "想了解村集体经济分红怎么计算", HOUSEHOLD,
        TOWNSHIP, Level.TOWNSHIP, (), (COUNTY,),
    ),
}  # fmt: skip


def test_every_default_route_has_a_golden_case(rules: RuleSet) -> None:
    assert sorted(GOLDEN) == sorted(route.id for route in rules.routes)


@pytest.mark.parametrize("rule_id", list(GOLDEN))
def test_golden_petition_gets_its_exact_decision(rules: RuleSet, rule_id: str) -> None:
    g = GOLDEN[rule_id]
    facts = PetitionFacts(category=g.category, urgency=g.urgency, text=g.text, unit=g.unit)

    decision = evaluate(rules, facts)

    assert decision == Decision(
        rule_id=rule_id,
        rule_set_hash=rules.hash,
        handler=g.handler,
        handler_level=g.handler_level,
        co_handlers=g.co_handlers,
        ladder=g.ladder,
    )


@pytest.mark.parametrize(
    "text", ["LIFT stuck on floor 3", "ＬＩＦＴ坏了", "The Elevator is broken"]
)
def test_keywords_match_ignoring_case_and_width(rules: RuleSet, text: str) -> None:
    facts = PetitionFacts(category="infrastructure", urgency=N, text=text, unit=HOUSEHOLD)

    assert evaluate(rules, facts).rule_id == "lift-fault"


def test_a_lift_mentioned_in_a_neighbour_dispute_stays_with_the_household(rules: RuleSet) -> None:
    facts = PetitionFacts(
        category="neighbour_dispute", urgency=N, text="邻居的电动车总停在电梯口", unit=HOUSEHOLD
    )

    assert evaluate(rules, facts).rule_id == "neighbour-dispute"


def test_an_emergency_urgency_skips_levels_whatever_the_category(rules: RuleSet) -> None:
    facts = PetitionFacts(category="neighbour_dispute", urgency=E, text="吵得很凶", unit=HOUSEHOLD)

    decision = evaluate(rules, facts)

    assert (decision.rule_id, decision.handler) == ("emergency-urgency", "dept:emergency")

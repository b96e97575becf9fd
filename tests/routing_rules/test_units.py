"""Unit codes and the jurisdiction tree."""

from __future__ import annotations

import pytest

from routing_rules import InvalidUnitCode, Level, RuleSet, UnknownUnit, level_of_code
from tests.routing_rules.helpers import COUNTY, GROUP, HOUSEHOLD, TOWNSHIP, VILLAGE


@pytest.mark.parametrize(
    ("code", "level"),
    [
        ("510123", Level.COUNTY),
        ("510123104", Level.TOWNSHIP),
        ("510123104201", Level.VILLAGE),
        ("510123104201-03", Level.GROUP),
        ("510123104201-03-07", Level.HOUSEHOLD),
        ("dept:housing", Level.DEPARTMENT),
        ("dept:hr_social_security", Level.DEPARTMENT),
    ],
)
def test_a_code_shape_tells_its_level(code: str, level: Level) -> None:
    assert level_of_code(code) is level


@pytest.mark.parametrize(
    "code",
    ["", "51012", "5101231", "510123104201-3", "510123104201-03-7", "510123104201-03-07-01",
     "dept:", "dept:Housing", "housing", " 510123", "510123104201-03-07 "],
)  # fmt: skip
def test_a_code_of_no_known_shape_is_invalid(code: str) -> None:
    with pytest.raises(InvalidUnitCode, match="invalid unit code"):
        level_of_code(code)


def test_levels_order_the_tree_and_leave_departments_outside() -> None:
    ranks = [level.rank for level in Level if level.in_tree]

    assert ranks == sorted(ranks) == [0, 1, 2, 3, 4]
    assert not Level.DEPARTMENT.in_tree


def test_ancestor_at_each_level(rules: RuleSet) -> None:
    j = rules.jurisdiction

    found = [j.ancestor_at(HOUSEHOLD, level) for level in Level if level.in_tree]

    assert [u.code for u in found if u] == [HOUSEHOLD, GROUP, VILLAGE, TOWNSHIP, COUNTY]
    assert j.ancestor_at(VILLAGE, Level.GROUP) is None
    assert j.ancestor_at(HOUSEHOLD, Level.DEPARTMENT) is None
    assert j.ancestor_at("dept:police", Level.DEPARTMENT) == j.unit("dept:police")


def test_ancestors_nearest_first(rules: RuleSet) -> None:
    codes = [u.code for u in rules.jurisdiction.ancestors(HOUSEHOLD)]

    assert codes == [GROUP, VILLAGE, TOWNSHIP, COUNTY]
    assert rules.jurisdiction.ancestors(COUNTY) == []


def test_subtrees_are_prefixes_and_departments_only_themselves(rules: RuleSet) -> None:
    j = rules.jurisdiction

    assert j.in_subtree(HOUSEHOLD, TOWNSHIP)
    assert j.in_subtree(HOUSEHOLD, HOUSEHOLD)
    assert not j.in_subtree(TOWNSHIP, HOUSEHOLD)
    assert not j.in_subtree(HOUSEHOLD, "510123103")
    assert j.in_subtree("dept:police", "dept:police")
    assert not j.in_subtree("dept:police", COUNTY)


def test_children_and_parents_agree(rules: RuleSet) -> None:
    j = rules.jurisdiction

    for unit in j.units():
        for child in j.children(unit.code):
            assert child.parent == unit.code


def test_unit_names_and_membership(rules: RuleSet) -> None:
    j = rules.jurisdiction

    assert j.unit(HOUSEHOLD).name == "金竹村3组7号联户"
    assert j.unit(TOWNSHIP).name == "龙泉镇"
    assert HOUSEHOLD in j and "510123999" not in j and 510123 not in j
    assert {u.code for u in j.departments()} >= {
        "dept:police", "dept:urban_mgmt", "dept:civil_affairs", "dept:housing",
        "dept:market_regulation", "dept:planning", "dept:health", "dept:medical_insurance",
        "dept:hr_social_security", "dept:emergency",
    }  # fmt: skip


def test_an_unknown_unit_is_named(rules: RuleSet) -> None:
    with pytest.raises(UnknownUnit, match="unknown unit '510123104201-03-99'") as raised:
        rules.jurisdiction.unit("510123104201-03-99")

    assert raised.value.code == "510123104201-03-99"

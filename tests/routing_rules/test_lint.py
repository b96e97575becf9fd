"""Lint: each kind of finding, found on a deliberately broken rule set; none on the default."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing_rules import (
    Finding,
    Level,
    PetitionFacts,
    RuleSet,
    SlaTable,
    Urgency,
    When,
    default_rule_set_path,
    lint,
    load_rule_set,
)
from routing_rules.evaluate import route_matches
from routing_rules.lint import covers
from tests.routing_rules.helpers import Edit, remove_route, route_block


def kinds(findings: list[Finding]) -> set[tuple[str, str, str | None]]:
    return {(f.severity, f.kind, f.rule_id) for f in findings}


def test_the_default_rule_set_has_no_errors(rules: RuleSet) -> None:
    findings = lint(rules)

    assert [f for f in findings if f.severity == "error"] == []
    # `other` is, by design, the catch-all's alone; and the holiday data ends with 2026, so
    # the demo county counts 2027 Monday-Friday until its schedule is declared.
    assert kinds(findings) == {
        ("warning", "unowned_category", "other"),
        ("warning", "calendar_fallback", None),
    }


def test_an_uncovered_year_counts_weekdays_only_when_the_rule_set_allows_it(
    rule_copy: Path,
) -> None:
    from routing_rules import CalendarNotCovered, load_rule_set

    allowed = load_rule_set(rule_copy).calendar
    strict_file = rule_copy / "calendar.toml"
    strict_file.write_text(
        strict_file.read_text(encoding="utf-8").replace(
            'fallback = "weekends"', 'fallback = "error"'
        ),
        encoding="utf-8",
    )
    strict = load_rule_set(rule_copy)

    # Friday 2027-01-08 (uncovered): the next working day is Monday 2027-01-11
    assert allowed.add_working_days(
        datetime(2027, 1, 8, 10, tzinfo=allowed.timezone), 1
    ) == datetime(2027, 1, 11, 10, tzinfo=allowed.timezone)
    with pytest.raises(CalendarNotCovered, match="2027"):
        strict.calendar.add_working_days(datetime(2027, 1, 8, 10, tzinfo=allowed.timezone), 1)
    assert lint(strict) == [f for f in lint(strict) if f.kind != "calendar_fallback"]


def test_a_category_with_no_route_at_all_is_an_error(rule_copy: Path) -> None:
    remove_route(rule_copy, "catch-all")
    remove_route(rule_copy, "neighbour-dispute")

    findings = lint(load_rule_set(rule_copy))

    assert ("error", "unowned_category", "neighbour_dispute") in kinds(findings)
    assert ("error", "unowned_category", "other") in kinds(findings)
    assert ("warning", "no_catch_all", None) in kinds(findings)
    unowned = next(f for f in findings if f.rule_id == "neighbour_dispute")
    assert unowned.file == "categories.toml" and "normal" in unowned.message


def test_a_category_left_to_the_catch_all_is_a_warning(rule_copy: Path) -> None:
    remove_route(rule_copy, "neighbour-dispute")

    findings = lint(load_rule_set(rule_copy))

    assert ("warning", "unowned_category", "neighbour_dispute") in kinds(findings)
    assert not [f for f in findings if f.severity == "error"]


def test_a_scoped_route_leaves_the_rest_of_the_county_unowned(rule_copy: Path, edit: Edit) -> None:
    remove_route(rule_copy, "catch-all")
    remove_route(rule_copy, "environment-sanitation")

    findings = lint(load_rule_set(rule_copy))

    gap = next(f for f in findings if f.rule_id == "environment_sanitation")
    assert gap.severity == "error" and gap.kind == "unowned_category"
    assert "510123001" not in gap.message  # the gap is outside the scoped street offices


def test_routes_after_an_early_catch_all_are_unreachable(rule_copy: Path) -> None:
    block = route_block(rule_copy, "catch-all")
    routes = rule_copy / "routes.toml"
    text = routes.read_text(encoding="utf-8").replace(block, "")
    routes.write_text(text.replace("[[route]]", block + "\n[[route]]", 1), encoding="utf-8")

    findings = lint(load_rule_set(rule_copy))

    unreachable = {f.rule_id for f in findings if f.kind == "unreachable_route"}
    assert unreachable == {r.id for r in load_rule_set(rule_copy).routes} - {"catch-all"}
    assert all(f.severity == "error" for f in findings if f.kind == "unreachable_route")


def test_a_route_shadowed_by_a_broader_earlier_route_is_unreachable(
    edit: Edit, rule_copy: Path
) -> None:
    edit("routes.toml", 'when = { categories = ["illegal_construction"] }',
         'when = { categories = ["illegal_construction", "neighbour_dispute"] }')  # fmt: skip

    findings = lint(load_rule_set(rule_copy))

    assert ("error", "unreachable_route", "neighbour-dispute") in kinds(findings)
    finding = next(f for f in findings if f.kind == "unreachable_route")
    assert "illegal-construction" in finding.message


def test_a_keyword_route_shadowed_by_a_shorter_keyword(edit: Edit, rule_copy: Path) -> None:
    edit("routes.toml", 'keywords_any = ["托幼", "托育", "托儿"]', 'keywords_any = ["托儿所"]')
    edit(
        "routes.toml",
        'keywords_any = ["低保", "临时救助"',
        'keywords_any = ["托儿", "低保", "临时救助"',
    )

    findings = lint(load_rule_set(rule_copy))

    assert ("error", "unreachable_route", "childcare") in kinds(findings)


def test_an_unknown_scope_is_found(edit: Edit, rule_copy: Path) -> None:
    edit("routes.toml", 'units = ["510123001", "510123002"]', 'units = ["510123001", "510123999"]')

    findings = lint(load_rule_set(rule_copy))

    assert kinds(findings) >= {("error", "unknown_unit", "urban-sanitation")}
    assert "510123999" in next(f for f in findings if f.kind == "unknown_unit").message


def test_an_unknown_department_in_a_rule_set_built_in_code_is_found(rules: RuleSet) -> None:
    lift = rules.route("lift-fault").model_copy(update={"co_handlers": ("dept:lifts",)})
    built = dataclasses.replace(
        rules, routes=[lift if r.id == lift.id else r for r in rules.routes]
    )

    findings = lint(built)

    assert ("error", "unknown_unit", "lift-fault") in kinds(findings)


def test_a_missing_sla_row_a_route_can_reach_is_found(rules: RuleSet) -> None:
    rows = [e for e in rules.sla.entries()
            if (e.level, e.urgency) != (Level.COUNTY, Urgency.URGENT)]  # fmt: skip
    built = dataclasses.replace(rules, sla=SlaTable(rows))

    findings = lint(built)

    missing = [f for f in findings if f.kind == "missing_sla"]
    assert len(missing) == 1
    assert missing[0].severity == "error" and missing[0].file == "sla.toml"
    assert "'county'" in missing[0].message and "'urgent'" in missing[0].message


def test_a_missing_row_no_route_reaches_is_not_reported(rules: RuleSet) -> None:
    # No default route targets a group except as a rung of neighbour-dispute; drop that route.
    routes = [r for r in rules.routes if r.id != "neighbour-dispute"]
    rows = [e for e in rules.sla.entries() if e.level is not Level.GROUP]
    built = dataclasses.replace(rules, routes=routes, sla=SlaTable(rows))

    assert [f for f in lint(built) if f.kind == "missing_sla"] == []


def test_a_rule_set_without_catch_all_is_warned_about(rule_copy: Path) -> None:
    remove_route(rule_copy, "catch-all")

    findings = lint(load_rule_set(rule_copy))

    assert ("warning", "no_catch_all", None) in kinds(findings)


# `covers` must be sound: when it says an earlier route covers a later one, every petition the
# later route matches is matched by the earlier one too.
RULES = load_rule_set(default_rule_set_path())
SCOPES = ["510123", "510123001", "510123104", "510123104201", "510123104201-03",
          "510123104201-03-07", "510123101"]  # fmt: skip
KEYWORDS = ["电梯", "电梯故障", "lift", "LIFT", "违建", "楼道违建", "医保"]
HOUSEHOLDS = ["510123104201-03-07", "510123104201-03-01", "510123101201-01-01",
              "510123001001-01-01"]  # fmt: skip


def maybe(values: list[str], size: int = 3) -> st.SearchStrategy[tuple[str, ...] | None]:
    return st.none() | st.lists(st.sampled_from(values), min_size=1, max_size=size).map(tuple)


whens = st.builds(
    When,
    categories=maybe(["neighbour_dispute", "property_dispute", "other"]),
    urgencies=st.none() | st.lists(st.sampled_from(list(Urgency)), min_size=1).map(tuple),
    keywords_any=maybe(KEYWORDS),
    units=maybe(SCOPES),
)
facts = st.builds(
    PetitionFacts,
    category=st.sampled_from(["neighbour_dispute", "property_dispute", "other"]),
    urgency=st.sampled_from(list(Urgency)),
    text=st.lists(st.sampled_from([*KEYWORDS, "x", "故障"]), max_size=3).map("".join),
    unit=st.sampled_from(HOUSEHOLDS),
)


@settings(max_examples=500, deadline=None)
@given(first=whens, second=whens, petition=facts)
def test_covers_is_sound(first: When, second: When, petition: PetitionFacts) -> None:
    j = RULES.jurisdiction
    if covers(first, second, j) and route_matches(second, petition, j):
        assert route_matches(first, petition, j)


def test_covers_sees_prefixes_and_substrings() -> None:
    j = RULES.jurisdiction

    assert covers(When(units=("510123104",)), When(units=("510123104201-03",)), j)
    assert not covers(When(units=("510123104201-03",)), When(units=("510123104",)), j)
    assert covers(When(keywords_any=("电梯",)), When(keywords_any=("电梯故障",)), j)
    assert covers(When(keywords_any=("lift",)), When(keywords_any=("LIFT",)), j)
    assert not covers(When(keywords_any=("电梯故障",)), When(keywords_any=("电梯",)), j)
    assert covers(When(), When(categories=("other",)), j)
    assert not covers(When(categories=("other",)), When(), j)

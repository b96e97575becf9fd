"""Loading a rule-set folder: the shipped set loads; broken copies fail, saying where."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import NamedTuple

import pytest

from routing_rules import (
    InvalidUnitCode,
    Level,
    MissingSla,
    RuleSet,
    RuleSetError,
    UnknownCategory,
    UnknownUnit,
    Urgency,
    default_rule_set_path,
    load_rule_set,
)
from tests.routing_rules.helpers import Edit, route_block


def test_default_rule_set_loads_with_its_parts(rules: RuleSet) -> None:
    assert rules.name == "default"
    assert rules.hash.startswith("sha256:") and len(rules.hash) == 7 + 64
    assert len(rules.categories) == 11
    assert rules.routes[-1].id == "catch-all" and rules.routes[-1].is_catch_all
    assert rules.warn_share == 0.75
    assert len(rules.jurisdiction.departments()) == 11
    households = [u for u in rules.jurisdiction.units() if u.level is Level.HOUSEHOLD]
    assert 300 <= len(households) <= 700


def test_the_sla_table_is_complete(rules: RuleSet) -> None:
    for level in Level:
        for urgency in Urgency:
            entry = rules.sla.entry(level, urgency)
            assert (entry.level, entry.urgency) == (level, urgency)


def test_the_hash_is_sha256_over_sorted_names_and_normalised_bytes(rule_copy: Path) -> None:
    digest = hashlib.sha256()
    for file in sorted(p for p in rule_copy.iterdir() if p.suffix in (".toml", ".csv")):
        content = file.read_bytes()
        digest.update(f"{file.name}\0{len(content)}\0".encode() + content)

    assert load_rule_set(rule_copy).hash == f"sha256:{digest.hexdigest()}"


def test_the_hash_ignores_folder_line_endings_and_readme(rules: RuleSet, rule_copy: Path) -> None:
    for file in rule_copy.glob("*.toml"):
        file.write_bytes(file.read_bytes().replace(b"\n", b"\r\n"))
    (rule_copy / "README.md").write_text("notes that are not rules\n")

    assert load_rule_set(rule_copy).hash == rules.hash


def test_the_hash_changes_with_any_rule(rules: RuleSet, rule_copy: Path, edit: Edit) -> None:
    edit("sla.toml", "warn_share = 0.75", "warn_share = 0.8")

    changed = load_rule_set(rule_copy)

    assert changed.hash != rules.hash and changed.warn_share == 0.8


def test_calendar_file_is_optional(rule_copy: Path) -> None:
    (rule_copy / "calendar.toml").unlink()

    assert load_rule_set(rule_copy).calendar.is_workday(date(2026, 10, 8))


class Broken(NamedTuple):
    """A copy broken by replacing `old` with `new` in `file`, and what loading must say."""

    file: str
    old: str
    new: str
    error: type[RuleSetError]
    words: list[str]


BROKEN = {
    "unknown route field": Broken(
        "routes.toml",
        'id = "lift-fault"\n',
        'id = "lift-fault"\ncolour = "red"\n',
        RuleSetError,
        ["routes.toml", "route 'lift-fault'", "field 'colour'", "unknown field", "handle_at"],
    ),
    "unknown field inside when": Broken(
        "routes.toml",
        'when = { categories = ["neighbour_dispute"] }',
        'when = { category = ["neighbour_dispute"] }',
        RuleSetError,
        ["route 'neighbour-dispute'", "field 'when.category'", "allowed: categories"],
    ),
    "unknown handle_at department": Broken(
        "routes.toml",
        'handle_at = "dept:housing"',
        'handle_at = "dept:foo"',
        UnknownUnit,
        [
            "routes.toml: route 'lift-fault': field 'handle_at': unknown unit 'dept:foo'",
            "dept:housing",
        ],
    ),
    "unknown co-handler department": Broken(
        "routes.toml",
        'co_handlers = ["dept:market_regulation"]',
        'co_handlers = ["dept:lifts"]',
        UnknownUnit,
        ["route 'lift-fault'", "field 'co_handlers'", "'dept:lifts'"],
    ),
    "target that is no level": Broken(
        "routes.toml",
        'handle_at = "household"',
        'handle_at = "street"',
        RuleSetError,
        ["route 'neighbour-dispute'", "field 'handle_at'", "not a target", "'street'"],
    ),
    "scope that is no unit code": Broken(
        "routes.toml",
        'units = ["510123001", "510123002"]',
        'units = ["510123001", "5101230"]',
        RuleSetError,
        ["route 'urban-sanitation'", "field 'when.units'", "invalid unit code '5101230'"],
    ),
    "unknown category in a route": Broken(
        "routes.toml",
        'categories = ["neighbour_dispute"]',
        'categories = ["neighbor_dispute"]',
        UnknownCategory,
        ["route 'neighbour-dispute'", "field 'when.categories'", "'neighbor_dispute'"],
    ),
    "unknown urgency": Broken(
        "routes.toml",
        'urgencies = ["emergency"]',
        'urgencies = ["critical"]',
        RuleSetError,
        ["route 'emergency-urgency'", "field 'when.urgencies.0'", "'critical'"],
    ),
    "empty condition list": Broken(
        "routes.toml",
        'urgencies = ["emergency"]',
        "urgencies = []",
        RuleSetError,
        ["route 'emergency-urgency'", "field 'when.urgencies'"],
    ),
    "duplicate route id": Broken(
        "routes.toml",
        'id = "infrastructure"',
        'id = "public-service"',
        RuleSetError,
        ["route 'public-service'", "field 'id'", "duplicate route id"],
    ),
    "ladder that does not climb": Broken(
        "routes.toml",
        'escalate = ["group", "village", "township"]',
        'escalate = ["village", "group", "township"]',
        RuleSetError,
        ["route 'neighbour-dispute'", "field 'escalate'", "not above"],
    ),
    "handler repeated as co-handler": Broken(
        "routes.toml",
        'co_handlers = ["dept:market_regulation"]',
        'co_handlers = ["dept:housing"]',
        RuleSetError,
        ["route 'lift-fault'", "field 'co_handlers'", "repeats the handler"],
    ),
    "bad TOML syntax": Broken(
        "routes.toml",
        'id = "lift-fault"',
        'id = "lift-fault',
        RuleSetError,
        ["routes.toml", "invalid TOML", "line"],
    ),
    "unknown top-level key": Broken(
        "routes.toml",
        "[[route]]",
        "[[routes]]",
        RuleSetError,
        ["routes.toml", "field 'routes'", "unknown top-level key"],
    ),
    "bad unit code": Broken(
        "units.csv",
        "510123104201-03-07,",
        "510123104201-3-07,",
        InvalidUnitCode,
        ["units.csv", "unit '510123104201-3-07'", "field 'code'", "invalid unit code"],
    ),
    "unit level that does not fit its code": Broken(
        "units.csv",
        "510123104201,金竹村,village",
        "510123104201,金竹村,township",
        RuleSetError,
        ["units.csv", "unit '510123104201'", "field 'level'"],
    ),
    "unit with the wrong parent": Broken(
        "units.csv",
        "510123104201-03-07,金竹村3组7号联户,household,510123104201-03",
        "510123104201-03-07,金竹村3组7号联户,household,510123104201-02",
        RuleSetError,
        ["units.csv", "unit '510123104201-03-07'", "field 'parent'", "510123104201-03"],
    ),
    "duplicate unit": Broken(
        "units.csv",
        "dept:police,县公安局,department,\n",
        "dept:police,县公安局,department,\ndept:police,公安,department,\n",
        RuleSetError,
        ["units.csv", "unit 'dept:police'", "duplicate unit code"],
    ),
    "duplicate SLA row": Broken(
        "sla.toml",
        'level = "county"\nurgency = "urgent"',
        'level = "county"\nurgency = "normal"',
        RuleSetError,
        ["sla.toml", "county/normal", "duplicate SLA row"],
    ),
    "SLA window of zero": Broken(
        "sla.toml",
        'respond = { amount = 12, unit = "hours" }',
        'respond = { amount = 0, unit = "hours" }',
        RuleSetError,
        ["sla.toml", "sla row 'household/normal'", "field 'respond.amount'"],
    ),
    "SLA window in minutes": Broken(
        "sla.toml",
        'respond = { amount = 12, unit = "hours" }',
        'respond = { amount = 12, unit = "minutes" }',
        RuleSetError,
        ["sla.toml", "sla row 'household/normal'", "field 'respond.unit'", "'minutes'"],
    ),
    "unknown category field": Broken(
        "categories.toml",
        'code = "other"',
        'code = "other"\nowner = "township"',
        RuleSetError,
        ["categories.toml", "category 'other'", "field 'owner'", "unknown field"],
    ),
    "unknown timezone": Broken(
        "calendar.toml",
        'timezone = "Asia/Shanghai"',
        'timezone = "Asia/Beijing"',
        RuleSetError,
        ["calendar.toml", "field 'timezone'", "Asia/Beijing"],
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_copy_fails_naming_file_rule_and_field(
    case: str, rule_copy: Path, edit: Edit
) -> None:
    file, old, new, error_type, words = BROKEN[case]
    edit(file, old, new)

    with pytest.raises(error_type) as raised:
        load_rule_set(rule_copy)

    message = str(raised.value)
    for word in words:
        assert word in message, f"{word!r} missing from {message!r}"
    assert raised.value.file == file


def test_a_missing_sla_row_is_named_by_level_and_urgency(rule_copy: Path) -> None:
    sla = rule_copy / "sla.toml"
    text = sla.read_text(encoding="utf-8")
    start = text.index('[[entry]]\nlevel = "county"\nurgency = "urgent"')
    end = text.index("[[entry]]", start + 1)
    sla.write_text(text[:start] + text[end:], encoding="utf-8")

    with pytest.raises(MissingSla) as raised:
        load_rule_set(rule_copy)

    assert (raised.value.level, raised.value.urgency) == ("county", "urgent")
    assert str(raised.value) == "sla.toml: no SLA row for level 'county' and urgency 'urgent'"


def test_a_missing_file_is_named(rule_copy: Path) -> None:
    (rule_copy / "units.csv").unlink()

    with pytest.raises(RuleSetError, match=r"units\.csv: required file missing"):
        load_rule_set(rule_copy)


def test_a_misspelt_rule_file_is_refused(rule_copy: Path) -> None:
    (rule_copy / "routes.toml").rename(rule_copy / "route.toml")

    with pytest.raises(RuleSetError, match=r"route\.toml: unknown rule file"):
        load_rule_set(rule_copy)


def test_a_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleSetError, match="not a rule-set folder"):
        load_rule_set(tmp_path / "nowhere")


def test_a_route_without_id_is_named_by_position(rule_copy: Path) -> None:
    block = route_block(rule_copy, "landslide-warning")
    routes = rule_copy / "routes.toml"
    routes.write_text(
        routes.read_text(encoding="utf-8").replace(
            block, block.replace('id = "landslide-warning"\n', "")
        ),
        encoding="utf-8",
    )

    with pytest.raises(RuleSetError) as raised:
        load_rule_set(rule_copy)

    assert (raised.value.rule_id, raised.value.field) == ("#1", "id")


def test_loading_twice_gives_equal_rule_sets(rules: RuleSet) -> None:
    again = load_rule_set(default_rule_set_path())

    assert again.hash == rules.hash
    assert again.routes == rules.routes
    assert again.categories == rules.categories

"""The county generator: valid unit trees of every size, deterministic, routable."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.sim.county import SIZES, from_rule_set, generate, size_for_leaders
from routing_rules import Level, RuleSet, default_rule_set_path, load_rule_set
from routing_rules.lint import lint


def _load(tmp_path: Path, units_csv: str) -> RuleSet:
    """The default rule set with these units (a scratch copy)."""
    target = tmp_path / "rules"
    target.mkdir(exist_ok=True)
    for f in default_rule_set_path().iterdir():
        if f.suffix in (".toml", ".csv"):
            (target / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    (target / "units.csv").write_text(units_csv, encoding="utf-8")
    return load_rule_set(target)


@pytest.mark.parametrize("size", ["village", "township", "county"])
def test_generated_trees_load_and_lint_clean(tmp_path: Path, rules: RuleSet, size: str) -> None:
    county = generate(SIZES[size], rules, seed=1)
    loaded = _load(tmp_path, county.units_csv())
    leaders = [u for u in loaded.jurisdiction.units() if u.level is Level.HOUSEHOLD]
    assert sorted(u.code for u in leaders) == sorted(county.households)
    assert {u.code for u in loaded.jurisdiction.departments()} == {
        u.code for u in rules.jurisdiction.departments()
    }
    errors = [f for f in lint(loaded) if f.severity == "error"]
    assert errors == []
    assert all(10 <= n <= 20 for n in county.households.values())


def test_the_county_size_matches_domain_7(rules: RuleSet) -> None:
    county = generate(SIZES["county"], rules, seed=3)
    assert county.count(Level.TOWNSHIP) == 10
    assert 100 <= county.count(Level.VILLAGE) <= 300
    assert 8_000 <= len(county.households) <= 12_000
    assert 80_000 <= sum(county.households.values()) <= 240_000


def test_a_province_sized_shape_has_a_million_leaders() -> None:
    assert 900_000 <= SIZES["province"].expected_leaders() <= 1_100_000


@settings(max_examples=25, deadline=None)
@given(leaders=st.integers(min_value=1, max_value=3_000))
def test_a_number_of_leaders_gives_about_that_many(rules: RuleSet, leaders: int) -> None:
    county = generate(size_for_leaders(leaders), rules, seed=0)
    assert leaders * 0.5 <= len(county.households) <= leaders * 1.6 + 10


def test_same_seed_same_county_and_different_seed_differs(rules: RuleSet) -> None:
    a = generate(SIZES["township"], rules, seed=5)
    b = generate(SIZES["township"], rules, seed=5)
    c = generate(SIZES["township"], rules, seed=6)
    assert a.units_csv() == b.units_csv() and a.households == b.households
    assert (a.units_csv(), a.households) != (c.units_csv(), c.households)


def test_the_rule_sets_own_units(rules: RuleSet) -> None:
    county = from_rule_set(rules, seed=1)
    leaders = {u.code for u in rules.jurisdiction.units() if u.level is Level.HOUSEHOLD}
    assert set(county.households) == leaders
    assert county.describe().startswith("云溪县")

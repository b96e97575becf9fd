"""Residents' petitions: varied, valid, deterministic, with a sound ground truth."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.sim import texts
from engine.sim.texts import CATEGORIES, MIX, Draft, draft, drafts, reporter, templates
from routing_rules import Level, RuleSet, Urgency

ROOT = Path(__file__).resolve().parents[2]
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def _digest() -> str:
    """A digest of drafts, reporters and retellings from one seed."""
    from engine.sim.retell import DEFAULT_RELAY, chain

    rng = random.Random(2026)
    out = []
    for n, d in enumerate(drafts(rng, 300)):
        out.append(repr(d))
        out.append(repr(reporter(rng, n)))
        out.extend(repr(hop) for hop in chain(rng, d, DEFAULT_RELAY, 3))
    return hashlib.sha256("\n".join(out).encode()).hexdigest()


def test_same_seed_same_drafts_and_different_seeds_differ() -> None:
    assert drafts(random.Random(11), 200) == drafts(random.Random(11), 200)
    assert drafts(random.Random(11), 200) != drafts(random.Random(12), 200)
    for category in CATEGORIES:
        assert draft(random.Random(5), category) == draft(random.Random(5), category)


def test_byte_for_byte_reproducible_across_processes() -> None:
    """Fresh processes with other hash seeds compute the same digest as this one."""
    here = _digest()
    for hash_seed in ("0", "4242"):
        result = subprocess.run(
            [sys.executable, "-c", "from tests.sim.test_texts import _digest; print(_digest())"],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.strip() == here


def test_the_default_mix_covers_every_category() -> None:
    assert sorted(c for c, _ in MIX) == sorted(CATEGORIES)
    assert sum(w for _, w in MIX) == pytest.approx(1.0)


def test_templates_per_category() -> None:
    for category in CATEGORIES:
        assert len(templates(category)) >= 4, category
    for category in ("neighbour_dispute", "property_dispute", "public_service"):
        assert len(templates(category)) >= 8, category
    for category in ("hazard_safety", "infrastructure", "emergency", "public_service"):
        stormy = templates(category, storm=True)
        assert stormy and all(t.storm for t in stormy), category
    with pytest.raises(ValueError):
        templates("other")


def test_the_plans_own_examples_are_drafted() -> None:
    seen = " ".join(
        d.description for c in CATEGORIES for s in (False, True) for d in _many(c, s, 400)
    )
    for phrase in (
        "增设社区健身器材",
        "顶楼违建",
        "楼道违建",
        "单元电梯",
        "异地就医报销",
        "错峰停车",
        "共享车位",
        "充电桩",
        "垃圾分类",
        "养老助餐",
        "托幼",
        "山体滑坡",
        "物业",
        "邻居",
        "倒",
        "积水",
        "停电",
        "塌方",
        "屋顶",
    ):
        assert phrase in seen, phrase


def _many(category: str, storm: bool, n: int, seed: int = 1) -> list[Draft]:
    rng = random.Random(seed)
    return [draft(rng, category, storm=storm) for _ in range(n)]


@pytest.mark.parametrize("storm", [False, True])
@pytest.mark.parametrize("category", CATEGORIES)
def test_every_category_drafts_valid_petitions(category: str, storm: bool, rules: RuleSet) -> None:
    sample = _many(category, storm, 150)
    for d in sample:
        assert d.category == category
        assert texts.MIN_LENGTH <= len(d.description) <= texts.MAX_LENGTH, d.description
        assert 0 < len(d.title) <= texts.MAX_TITLE
        assert d.clauses and d.description.endswith("。")
        assert d.subject in d.clauses[-1], "the request names its object"
        assert d.related and d.subject not in d.related
        assert all(d.subject not in r and r not in d.subject for r in d.related)
        assert "的" not in d.subject and "了" not in d.subject
        assert d.location in d.clauses[0]
        _assert_owner(d.owner, rules)
        for other in d.joint:
            assert other.startswith("dept:") and other != d.owner
            _assert_owner(other, rules)
        if category == "emergency":
            assert d.urgency is Urgency.EMERGENCY
    assert len({d.description for d in sample}) > len(sample) * 0.8, "descriptions vary"
    assert len({d.location for d in sample}) > 10, "places vary"


def _assert_owner(owner: str, rules: RuleSet) -> None:
    if owner.startswith("dept:"):
        assert owner in rules.jurisdiction, owner
        assert rules.jurisdiction.unit(owner).level is Level.DEPARTMENT
        assert owner.removeprefix("dept:") in texts.DEPARTMENTS
    else:
        assert owner in texts.LEVELS
        assert any(u.level.value == owner for u in rules.jurisdiction.units())


def test_ground_truth_of_the_briefs_examples() -> None:
    by_subject = {t.subject: t for t in texts.TEMPLATES if not t.storm}
    assert by_subject["楼上噪音"].owner == "household"
    assert by_subject["卫生间漏水"].owner == "group"
    assert by_subject["宅基地边界"].owner == "village"
    assert by_subject["社区健身器材"].owner == "village"
    assert by_subject["异地就医报销"].owner == "dept:medical_insurance"
    assert by_subject["单元电梯"].owner == "dept:housing"
    assert by_subject["单元电梯"].joint == ("dept:market_regulation",)
    assert by_subject["顶楼违建"].owner == "dept:urban_mgmt"
    assert by_subject["顶楼违建"].joint == ("dept:planning",)
    assert by_subject["山体滑坡"].owner == "dept:emergency"
    assert by_subject["河道污水"].owner == "dept:ecology"


def test_urgency_mix() -> None:
    sample = drafts(random.Random(3), 5000)
    share = {u: sum(d.urgency is u for d in sample) / len(sample) for u in Urgency}
    assert share[Urgency.NORMAL] > 0.8
    assert 0.03 < share[Urgency.URGENT] < 0.15
    assert 0.01 < share[Urgency.EMERGENCY] < 0.05
    storm = drafts(random.Random(3), 2000, storm=True)
    assert sum(d.urgency is not Urgency.NORMAL for d in storm if d.category != "emergency") > 0


@settings(max_examples=60, deadline=None)
@given(seed=SEEDS, category=st.sampled_from(CATEGORIES), storm=st.booleans())
def test_every_draft_is_a_valid_petition(
    seed: int, category: str, storm: bool, rules: RuleSet
) -> None:
    rng = random.Random(seed)
    d = draft(rng, category, storm=storm)
    household = next(u.code for u in rules.jurisdiction.units() if u.level is Level.HOUSEHOLD)
    command = d.petition(household, reporter(rng, seed))
    assert command.description == d.description
    assert d.category in rules.categories


def test_reporters_are_obviously_synthetic() -> None:
    rng = random.Random(9)
    people = [reporter(rng, n) for n in range(500)]
    for n, who in enumerate(people):
        assert who.name.startswith("模拟居民") and str(n) in who.name
        assert who.phone.startswith("1990000") and len(who.phone) == 11
        assert who.address.startswith("模拟")
    assert len({p.phone for p in people}) > 400
    rng2 = random.Random(9)
    assert [reporter(rng2, n) for n in range(500)] == people

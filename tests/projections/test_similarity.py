"""Text similarity and the distortion rule, on worked examples (docs/metrics.md has them)."""

from __future__ import annotations

import pytest

from projections.similarity import is_distorted, normalise, similarity


def test_the_plans_own_example_is_distorted() -> None:
    sim = similarity("增设社区健身器材", "优化绿化景观")

    assert sim == 0.0
    assert is_distorted(sim, category_changed=False, urgency_lowered=False)


def test_a_faithful_retelling_with_punctuation_changes_is_not_distorted() -> None:
    sim = similarity("增设社区健身器材。", "增设社区 健身器材！！")

    assert sim == 1.0
    assert not is_distorted(sim, category_changed=False, urgency_lowered=False)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("", "", 1.0),
        ("", "电梯坏了", 0.0),
        ("。，！", "", 1.0),  # only punctuation: both normalise to empty
        ("ABC", "abc", 1.0),  # case folded
        ("ＡＢＣ１２", "abc12", 1.0),  # NFKC: full-width to half-width
        ("【小区电梯故障】→★", "小区电梯故障", 1.0),  # brackets and symbols removed
        ("night", "nacht", 0.25),  # {ni,ig,gh,ht} vs {na,ac,ch,ht}: 2·1/8
        ("小区电梯故障", "小区电梯坏了", 0.6),  # 小区 区电 电梯 shared of 5 + 5
        ("aaa", "aa", 0.6666666666666666),  # multisets: {aa,aa} vs {aa}: 2·1/3
    ],
)
def test_similarity_worked_examples(a: str, b: str, expected: float) -> None:
    assert similarity(a, b) == pytest.approx(expected)
    assert similarity(b, a) == pytest.approx(expected)


def test_normalise_drops_whitespace_punctuation_and_symbols() -> None:
    assert normalise(" Lift   broken!!  ＋ 电梯\t坏了。") == "liftbroken电梯坏了"


def test_a_hop_is_distorted_by_category_or_urgency_even_with_the_same_words() -> None:
    assert is_distorted(1.0, category_changed=True, urgency_lowered=False)
    assert is_distorted(1.0, category_changed=False, urgency_lowered=True)
    assert not is_distorted(0.5, category_changed=False, urgency_lowered=False)

"""Text similarity (DESIGN §7): Dice coefficient of character-bigram multisets.

Both texts are normalised first: NFKC (full-width → half-width, compatibility
forms folded), lower-cased (casefold), and stripped of whitespace, punctuation
(Unicode categories P*) and symbols (S*: ＋, ¥, emoji, ★ …). Symbols go too
because a relay that adds "【转办】" or "→" has not changed the request.
Works alike for Chinese (each character is a token) and English.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from functools import lru_cache

DISTORTION_THRESHOLD = 0.5


def normalise(text: str) -> str:
    """NFKC, casefold, then drop whitespace, punctuation (P*), symbols (S*) and controls."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in "PSZC")


@lru_cache(maxsize=4096)
def _bigrams(text: str) -> Counter[str]:
    norm = normalise(text)
    if len(norm) == 1:
        return Counter({norm: 1})  # a one-character text is its own single "bigram"
    return Counter(norm[i : i + 2] for i in range(len(norm) - 1))


def similarity(a: str, b: str) -> float:
    """2·|A ∩ B| / (|A| + |B|) over bigram multisets; 1.0 for two empty texts, 0.0 if one is."""
    left, right = _bigrams(a), _bigrams(b)
    total = left.total() + right.total()
    if total == 0:
        return 1.0
    common = sum((left & right).values())
    return 2 * common / total


def is_distorted(similarity_: float, *, category_changed: bool, urgency_lowered: bool) -> bool:
    """A hop is distorted when the text drifted (< 0.5), the category changed or urgency fell."""
    return similarity_ < DISTORTION_THRESHOLD or category_changed or urgency_lowered

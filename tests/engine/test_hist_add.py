"""`lianhu_hist_add`, the view store's sum of two histograms, on both stores: equal to a
plain sum of counts, in one canonical text (so rebuilt views equal live ones byte for byte
whichever side of an upsert conflict wrote a row)."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.viewstore import ViewStore, hist_add, hist_counts, hist_text

histograms = st.dictionaries(st.integers(-1, 400), st.integers(-5, 5), max_size=12)


def plain_sum(a: dict[int, int], b: dict[int, int]) -> dict[int, int]:
    total = Counter(a)
    total.update(b)
    return {k: c for k, c in total.items() if c}


@settings(max_examples=300, deadline=None)
@given(a=histograms, b=histograms)
def test_the_sum_in_python_is_the_plain_sum_in_canonical_form(
    a: dict[int, int], b: dict[int, int]
) -> None:
    total = hist_add(hist_text(a), hist_text(b))
    assert dict(hist_counts(total)) == plain_sum(a, b)
    assert total == hist_text(plain_sum(a, b))  # keys ascending, no zeros, None when empty


def test_worked_example() -> None:
    assert hist_text({151: 1, 150: 3, 7: 0}) == "[[150,3],[151,1]]"
    assert hist_add("[[150,3],[151,1]]", "[[151,-1],[152,2]]") == "[[150,3],[152,2]]"
    assert hist_add("[[1,1]]", "[[1,-1]]") is None
    assert hist_add(None, "[[1,1]]") == "[[1,1]]" and hist_add("[[1,1]]", None) == "[[1,1]]"


def test_the_store_sums_as_python_does_in_an_upsert(any_views: ViewStore) -> None:
    views = any_views

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(a=histograms, b=histograms)
    def check(a: dict[int, int], b: dict[int, int]) -> None:
        with views.transaction() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS h (k BIGINT PRIMARY KEY, hist TEXT)")
            cur.execute("DELETE FROM h")
            upsert = (
                "INSERT INTO h VALUES (1, ?) ON CONFLICT (k) DO UPDATE SET "
                "hist = lianhu_hist_add(h.hist, excluded.hist)"
            )
            cur.execute(upsert, (hist_text(a),))
            cur.execute(upsert, (hist_text(b),))
            row = cur.execute("SELECT hist FROM h").fetchone()
        assert row is not None
        assert row[0] == hist_add(hist_text(a), hist_text(b))

    check()

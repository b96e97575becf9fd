"""States written before they were arrays (JSON objects, facts as dicts) still load, and
folding on from them gives what folding from the array states gives."""

from __future__ import annotations

from typing import Any

from projections.distortion import Distortion
from projections.fold import Rec, week_of
from projections.indicators import Indicators
from projections.measures import cancelled
from projections.response_times import ResponseTimes

T = 1_780_000_000.0
OLD_FACT: dict[str, Any] = {
    "kind": "resolution", "case_id": "c1", "at": T, "recorded": T, "unit": "510123001001",
    "area": "510123001", "level": "village", "category": "roads", "urgency": "normal",
    "depth": 0, "bucket": 150, "n": 1, "value": 3_600_000, "flag": 1,
}  # fmt: skip
FACT = ("resolution", "c1", T, T, week_of(T), week_of(T), "510123001001", "510123001",
        "village", "roads", "normal", 0, 150, 1, 3_600_000, 1)  # fmt: skip


def test_old_response_time_states_load_and_fold_on() -> None:
    old = {
        "raised": T - 7200, "category": "roads", "urgency": "normal", "unit": "510123001001",
        "level": "village", "assigned_at": None, "first_done": True, "resolve_due": T + 1,
        "resolution": OLD_FACT,
    }  # fmt: skip
    state = ResponseTimes.decode(old)
    assert state == (T - 7200, "roads", "normal", "510123001001", "village", None, True,
                     T + 1, FACT)  # fmt: skip
    reopened = Rec("CaseReopened", "c1", T + 50, {"resolve_due": "2026-06-01T00:00:00Z"})
    _, facts = ResponseTimes().evolve(state, reopened)
    assert facts == [cancelled(FACT, T + 50)]
    assert facts[0][13:] == (-1, -3_600_000, -1) and facts[0][3] == T + 50


def test_old_indicator_states_load() -> None:
    local = {**OLD_FACT, "kind": "local", "bucket": -1, "value": 0}
    old = {"category": "roads", "urgency": "normal", "unit": "u", "level": "village",
           "resolution": [local], "rating": None}  # fmt: skip
    state = Indicators.decode(old)
    assert state[:4] == ("roads", "normal", "u", "village") and state[5] is None
    assert state[4] == (("local", *FACT[1:12], -1, 1, 0, 1),)


def test_old_distortion_states_load() -> None:
    rating = {**OLD_FACT, "kind": "match", "level": "", "bucket": -1, "value": 0}
    old = {"description": "d", "category0": "a", "urgency0": "normal", "category": "b",
           "urgency": "urgent", "unit": "u", "rating": rating}  # fmt: skip
    state = Distortion.decode(old)
    assert state[:6] == ("d", "a", "normal", "b", "urgent", "u")
    assert state[6] == ("match", *FACT[1:8], "", *FACT[9:12], -1, 1, 0, 1)

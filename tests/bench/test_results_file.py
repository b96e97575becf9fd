"""bench/RESULTS.md: rerunning one section replaces it and keeps the others as they were."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.__main__ as runner


def rows(value: float) -> list[runner.Row]:
    return [{"measurement": "rate", "store": "sqlite", "value": value, "unit": "events/s"}]


def test_rerunning_a_section_replaces_it_and_keeps_the_others_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "RESULTS", tmp_path / "RESULTS.md")
    monkeypatch.setattr(runner, "machine", lambda: "test machine")
    sections = [(module, what, issue, rows(11111.0 * i)) for i, (module, what, issue) in enumerate(
        runner.SUITE[:3], 1)]  # fmt: skip
    runner.write_results(sections, False)
    kept = runner.previous_sections()
    last = sections[-1][:3]
    for value in (44444.0, 55555.0, 66666.0):  # the last one rerun, again and again
        runner.write_results([(*last, rows(value))], False)
    text = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    again = runner.previous_sections()
    assert [again[m] for m, _, _, _ in sections[:2]] == [kept[m] for m, _, _, _ in sections[:2]]
    line = {v: runner.table(rows(v)).splitlines()[-1] for v in (11111.0, 44444.0, 66666.0)}
    assert line[66666.0] in text and line[44444.0] not in text and line[11111.0] in text
    assert "\n\n\n" not in text  # no blank lines piling up between sections


def test_a_ratio_just_under_its_target_is_not_rounded_up_to_it() -> None:
    assert runner.fmt(0.497) == "0.497"
    assert runner.fmt(1.44) == "1.44"
    assert runner.fmt(16701.0) == "16,701"

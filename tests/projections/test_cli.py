"""`lianhu metrics ...` and `lianhu projections ...` on a store under tmp_path."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from engine.clock import FakeClock
from engine.persistence import sqlite_env
from engine.service import CaseService
from routing_rules import RuleSet
from tests.projections.histories import drive


@pytest.fixture
def lianhu(tmp_path: Path, rules: RuleSet, clock: FakeClock) -> CliRunner:
    data = tmp_path / "var"
    data.mkdir()
    service = CaseService(rules=rules, clock=clock, env=sqlite_env(str(data / "lianhu.db")))
    drive(service, clock, seed=5, cases=15, steps=80)
    service.close()
    return CliRunner(
        env={"LIANHU_DATA_DIR": str(data), "LIANHU_DATABASE_URL": None, "LIANHU_RULES_DIR": None}
    )


def test_metrics_commands_print_tables(lianhu: CliRunner) -> None:
    for args in (
        ["metrics", "response-times", "--kind", "assignment", "--group-by", "level"],
        ["metrics", "distortion"],
        ["metrics", "board", "--as-of", "2026-03-05T00:00:00+0800"],
        ["metrics", "indicators", "--unit", "510123"],
        ["metrics", "heatmap"],
    ):
        result = lianhu.invoke(app, args)

        assert result.exit_code == 0, (args, result.output)
        assert "┃" in result.stdout or "|" in result.stdout, args


def test_as_of_before_anything_was_recorded_counts_nothing(lianhu: CliRunner) -> None:
    now = lianhu.invoke(app, ["metrics", "indicators", "--json"])
    then = lianhu.invoke(
        app, ["metrics", "indicators", "--json", "--as-of", "2026-01-01T00:00:00+0000"]
    )

    assert json.loads(now.stdout)["collection_timeliness"]["count"] == 15
    assert json.loads(then.stdout)["collection_timeliness"]["count"] == 0


def test_rebuild_switches_to_a_fresh_generation_with_the_same_figures(lianhu: CliRunner) -> None:
    before = lianhu.invoke(app, ["metrics", "distortion", "--json"]).stdout

    rebuilt = lianhu.invoke(app, ["projections", "rebuild", "distortion"])
    status = lianhu.invoke(app, ["projections", "status"])
    after = lianhu.invoke(app, ["metrics", "distortion", "--json", "--no-catch-up"]).stdout

    assert rebuilt.exit_code == 0, rebuilt.output
    assert "distortion: switched to generation 2" in rebuilt.stdout
    # the last step, after the bar has reached the end, is said (it takes seconds at 10^6)
    assert "building the query indexes" in rebuilt.stderr
    assert "distortion: done" in rebuilt.stderr
    assert "distortion" in status.stdout
    assert after == before
    assert lianhu.invoke(app, ["projections", "rebuild", "nope"]).exit_code != 0

    everything = lianhu.invoke(app, ["projections", "rebuild", "--batch-size", "7"])
    assert everything.exit_code == 0, everything.output
    assert "distortion: switched to generation 3" in everything.stdout
    assert "case_list: switched to generation 2" in everything.stdout
    again = lianhu.invoke(app, ["metrics", "distortion", "--json", "--no-catch-up"]).stdout
    assert again == before


def test_a_failed_view_writer_is_an_error_with_a_hint(
    lianhu: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.cli import projections as cli
    from api.cli.errors import EXIT_FAILED
    from projections.pipeline import AGAIN, WriterFailed

    def failing(*args: object, **kwargs: object) -> dict[str, int]:
        raise WriterFailed(f"the view writer failed: OperationalError: disk I/O error; {AGAIN}")

    monkeypatch.setattr(cli, "rebuild_all", failing)
    result = lianhu.invoke(app, ["projections", "rebuild"])
    assert result.exit_code == EXIT_FAILED
    assert "error: the view writer failed: OperationalError: disk I/O error" in result.stderr
    assert "run the catch-up again" in result.stderr
    assert "hint: Fix the cause named" in result.stderr
    assert "Traceback" not in result.output


def test_status_says_whether_the_roll_ups_are_whole(lianhu: CliRunner, tmp_path: Path) -> None:
    whole = lianhu.invoke(app, ["metrics", "indicators", "--json"])  # caught up, whole
    assert whole.exit_code == 0, whole.output
    status = lianhu.invoke(app, ["projections", "status"])
    assert status.exit_code == 0, status.output
    assert "roll-ups" in status.stdout and "whole" in status.stdout
    assert "held from" not in status.stdout
    # as a catch-up's writer stopped before its last transaction leaves them
    views = sqlite3.connect(tmp_path / "var" / "views.db")
    with views:
        views.execute("INSERT INTO lianhu_sealed (facts, week) VALUES ('rt_facts_g1', 2931)")
    views.close()
    held = lianhu.invoke(app, ["projections", "status"])
    assert "held from 2026-03-09" in held.stdout
    assert "finishes them with the next batch" in " ".join(held.stdout.split())

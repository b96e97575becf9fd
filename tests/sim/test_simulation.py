"""The simulator end to end: the real engine, the timer and the projections, on simulated time."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from api.cli import app
from engine.sim.report import figures, table
from engine.sim.run import Design, Scenario, designs, play
from routing_rules import default_rule_set_path

pytestmark = pytest.mark.xdist_group("simulation")  # CPU-heavy: keep them on one worker

# The bands the relay chain must land in (docs/simulation.md, "Calibration"): the plan's
# baselines are 72 h response, 30 % distortion after three relays, 18 % not accepted.
RELAY_BANDS = {
    "first response mean (h)": (55.0, 90.0),
    "distortion at depth 3": (0.20, 0.40),
    "department return rate": (0.12, 0.26),
}


def _events(played_dir: Path) -> list[tuple[Any, ...]]:
    import sqlite3

    with sqlite3.connect(played_dir / "lianhu.db") as db:
        rows = db.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events "
            "ORDER BY rowid"
        ).fetchall()
    return rows


def _play(design: Design, scenario: Scenario, workdir: Path) -> dict[str, Any]:
    played = play(design, scenario, workdir)
    try:
        return figures(played)
    finally:
        played.close()


def test_same_seed_same_events_byte_for_byte(tmp_path: Path) -> None:
    design = designs()["lianhu"]
    scenario = Scenario(seed=11, weeks=1, county_size="village", settle_days=7)
    a = _play(design, scenario, tmp_path / "a")
    b = _play(design, scenario, tmp_path / "b")
    _play(design, Scenario(seed=12, weeks=1, county_size="village"), tmp_path / "c")
    assert a["cases"] > 20
    events_a = _events(tmp_path / "a")
    assert events_a == _events(tmp_path / "b")
    assert events_a != _events(tmp_path / "c")
    assert {k: v for k, v in a.items()} == b
    assert a["refused"] == 0


@pytest.fixture(scope="module")
def demo_figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Both designs on the default county, 2 weeks and a week to settle: `lianhu demo`'s."""
    root = tmp_path_factory.mktemp("demo")
    scenario = Scenario(seed=2026, weeks=2, settle_days=7)
    return {name: _play(d, scenario, root / name) for name, d in designs().items()}


def test_relay_chain_lands_near_the_plans_baselines(
    demo_figures: dict[str, dict[str, Any]],
) -> None:
    relay = demo_figures["relay"]
    measured = {
        "first response mean (h)": relay["first_response"]["mean_h"],
        "distortion at depth 3": relay["distortion_by_depth"]["3"]["rate"],
        "department return rate": relay["return_rate"],
    }
    for name, (low, high) in RELAY_BANDS.items():
        assert low <= measured[name] <= high, (name, measured[name], (low, high))
    assert relay["refused"] == 0


def test_lianhu_design_answers_faster_with_less_distortion(
    demo_figures: dict[str, dict[str, Any]],
) -> None:
    relay, lianhu = demo_figures["relay"], demo_figures["lianhu"]
    assert lianhu["cases"] == relay["cases"]  # the same petitions through both designs
    assert lianhu["first_response"]["mean_h"] < relay["first_response"]["mean_h"] / 2
    assert lianhu["reporting_accuracy"] > relay["reporting_accuracy"]
    assert lianhu["local_resolution"] > relay["local_resolution"]
    assert lianhu["refused"] == 0
    text = table([relay, lianhu])
    assert "first response, mean (h)" in text and "relay" in text and "lianhu" in text


def test_changing_a_rule_changes_the_figures(tmp_path: Path) -> None:
    """The figures come from the engine and its projections: reroute, and they move."""
    proposed = tmp_path / "proposed"
    shutil.copytree(default_rule_set_path(), proposed)
    routes = (proposed / "routes.toml").read_text(encoding="utf-8")
    block = re.search(r'id = "neighbour-dispute"(.*?)\n\n', routes, re.S)
    assert block is not None
    moved = block.group(0).replace('handle_at = "household"', 'handle_at = "township"')
    moved = re.sub(r"escalate = \[.*?\]", 'escalate = ["county"]', moved)
    (proposed / "routes.toml").write_text(routes.replace(block.group(0), moved), "utf-8")
    scenario = Scenario(seed=5, weeks=1, county_size="township", settle_days=3)
    base = _play(designs()["lianhu"], scenario, tmp_path / "base")
    changed = _play(
        Design("proposed", proposed, designs()["lianhu"].behaviour), scenario, tmp_path / "p"
    )
    assert changed["cases"] == base["cases"]
    assert changed["rule_set_hash"] != base["rule_set_hash"]
    assert changed["local_resolution"] < base["local_resolution"]
    assert (
        changed["assignment_response_by_level"].get("household", {}).get("count", 0)
        < (base["assignment_response_by_level"]["household"]["count"])
    )


def test_cli_simulate_prints_json_for_scripts(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "simulate",
            "--rules",
            str(default_rule_set_path().parent / "relay_chain"),
            "--behaviour",
            "relay",
            "--weeks",
            "1",
            "--county-size",
            "village",
            "--settle-days",
            "3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [d["design"] for d in data] == ["current (default)", "relay_chain"]
    assert data[0]["cases"] == data[1]["cases"] > 0


def test_cli_refuses_an_unknown_county_size() -> None:
    result = CliRunner().invoke(app, ["demo", "--weeks", "1", "--county-size", "galaxy"])
    assert result.exit_code != 0
    assert "county size" in result.output and "province" in result.output


def test_cli_names_the_broken_rule_before_simulating(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(default_rule_set_path(), broken)
    routes = (broken / "routes.toml").read_text(encoding="utf-8")
    (broken / "routes.toml").write_text(
        routes.replace('handle_at = "township"', 'handle_at = "nowhere"', 1), "utf-8"
    )
    result = CliRunner().invoke(app, ["simulate", "--rules", str(broken), "--weeks", "1"])
    assert result.exit_code == 1
    assert "routes.toml" in result.output and "handle_at" in result.output
    assert "lianhu rules lint" in result.output

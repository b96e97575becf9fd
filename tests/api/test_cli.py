"""The `lianhu` command, run in-process against a store under tmp_path (LIANHU_DATA_DIR)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from api.cli import app
from routing_rules import default_rule_set_path
from tests.api.conftest import GROUP, HOUSEHOLD


@pytest.fixture
def lianhu(tmp_path: Path) -> CliRunner:
    return CliRunner(
        env={
            "LIANHU_DATA_DIR": str(tmp_path / "var"),
            "LIANHU_DATABASE_URL": None,
            "LIANHU_RULES_DIR": None,
        }
    )


def run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, list(args))


def file_petition(runner: CliRunner, *extra: str) -> str:
    """File a petition through the CLI; return its case number."""
    filed = run(
        runner, "case", "file", "--unit", HOUSEHOLD, "--category", "neighbour_dispute",
        "--title", "楼上噪音", "--description", "楼上邻居每晚装修", *extra,
    )  # fmt: skip
    assert filed.exit_code == 0, filed.output
    match = re.search(r"^case\s+(\d{6}-[0-9A-Z]{5})", filed.stdout, re.MULTILINE)
    assert match, filed.stdout
    return match.group(1)


def test_a_petition_filed_on_the_command_line_can_be_shown_and_traced(
    lianhu: CliRunner,
) -> None:
    number = file_petition(lianhu, "--reporter-phone", "13812345678")

    shown = run(lianhu, "case", "show", number)
    history = run(lianhu, "case", "history", number, "--json")

    assert shown.exit_code == 0, shown.output
    assert number in shown.stdout
    assert "routed at 510123001001-01-01" in shown.stdout
    assert "138****5678" in shown.stdout
    assert "13812345678" not in shown.stdout
    assert history.exit_code == 0, history.output
    events = json.loads(history.stdout)["events"]
    assert [e["name"] for e in events] == ["PetitionFiled", "CaseRouted"]


def test_a_case_is_accepted_and_referred_on_the_command_line(lianhu: CliRunner) -> None:
    number = file_petition(lianhu)

    accepted = run(lianhu, "case", "accept", number, "--unit", HOUSEHOLD, "--actor", "wang")
    referred = run(
        lianhu, "case", "refer", number, "--unit", HOUSEHOLD, "--to-unit", GROUP,
        "--actor", "wang", "--summary", "住户反映楼上夜间装修", "--expected-version", "3",
    )  # fmt: skip
    history = run(lianhu, "case", "history", number)

    assert accepted.exit_code == 0, accepted.output
    assert referred.exit_code == 0, referred.output
    assert f"status    routed at {GROUP} (group)" in referred.stdout
    assert history.stdout.count("\n") == 4
    assert "CaseReferred" in history.stdout


def test_a_retried_filing_with_the_same_key_files_nothing_new(lianhu: CliRunner) -> None:
    first = file_petition(lianhu, "--idempotency-key", "visit-42")

    again = file_petition(lianhu, "--idempotency-key", "visit-42")

    assert again == first


def test_engine_errors_print_error_and_hint_and_exit_nonzero(lianhu: CliRunner) -> None:
    number = file_petition(lianhu)

    unknown = run(lianhu, "case", "show", "260302-ZZZZZ")
    illegal = run(
        lianhu, "case", "resolve", number, "--unit", HOUSEHOLD, "--actor", "wang",
        "--outcome", "solved", "--resolution", "已处理",
    )  # fmt: skip
    stale = run(
        lianhu, "case", "accept", number, "--unit", HOUSEHOLD, "--actor", "wang",
        "--expected-version", "1",
    )  # fmt: skip

    for result in (unknown, illegal, stale):
        assert result.exit_code == 1
        assert result.stderr.startswith("error: ")
        assert "\nhint: " in result.stderr


def test_invalid_input_exits_2(lianhu: CliRunner) -> None:
    unknown_unit = run(
        lianhu, "case", "file", "--unit", "510123001001-01-99", "--category", "neighbour_dispute",
        "--title", "t", "--description", "d",
    )  # fmt: skip
    ancient = run(
        lianhu, "case", "file", "--unit", HOUSEHOLD, "--category", "neighbour_dispute",
        "--title", "t", "--description", "d", "--raised-at", "1999-05-01T08:00+08:00",
    )  # fmt: skip

    for result in (unknown_unit, ancient):
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: ")
        assert "hint: " in result.stderr
    assert "raised_at" in ancient.stderr


def test_rules_lint_passes_the_shipped_rule_set(lianhu: CliRunner) -> None:
    result = run(lianhu, "rules", "lint")

    assert result.exit_code == 0, result.output
    assert "0 errors" in result.stdout


def test_rules_lint_fails_a_rule_set_with_an_unreachable_route(
    lianhu: CliRunner, tmp_path: Path
) -> None:
    broken = tmp_path / "rules"
    shutil.copytree(default_rule_set_path(), broken)
    with (broken / "routes.toml").open("a", encoding="utf-8") as routes:
        routes.write('\n[[route]]\nid = "after-the-catch-all"\nhandle_at = "village"\n')

    result = run(lianhu, "rules", "lint", str(broken))

    assert result.exit_code == 1
    assert "after-the-catch-all" in result.stdout
    assert "unreachable_route" in result.stdout


def test_rules_lint_fails_a_rule_set_that_does_not_load(lianhu: CliRunner, tmp_path: Path) -> None:
    broken = tmp_path / "rules"
    shutil.copytree(default_rule_set_path(), broken)
    with (broken / "routes.toml").open("a", encoding="utf-8") as routes:
        routes.write('\n[[route]]\nid = "typo"\nhandle_at = "vilage"\n')

    result = run(lianhu, "rules", "lint", str(broken))

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "routes.toml" in result.stderr
    assert "typo" in result.stderr


def test_rules_explain_names_the_winning_route(lianhu: CliRunner) -> None:
    result = run(
        lianhu, "rules", "explain", "--category", "infrastructure", "--urgency", "normal",
        "--text", "3号楼电梯停运", "--unit", HOUSEHOLD,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert re.search(r"^route:\s+lift-fault\b", result.stdout, re.MULTILINE)
    assert "dept:housing" in result.stdout


def test_help_shows_examples(lianhu: CliRunner) -> None:
    result = run(lianhu, "case", "file", "--help")

    assert result.exit_code == 0
    assert "Example" in result.stdout

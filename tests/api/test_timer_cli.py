"""`lianhu timer`: the SLA timer alone, on the configured store; and inside `lianhu serve`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from api.wiring import build_service, build_workers
from engine.settings import Settings
from tests.api.test_cli import file_petition


@pytest.fixture
def lianhu(tmp_path: Path) -> CliRunner:
    return CliRunner(
        env={
            "LIANHU_DATA_DIR": str(tmp_path / "var"),
            "LIANHU_DATABASE_URL": None,
            "LIANHU_RULES_DIR": None,
        }
    )


def test_timer_lists_pending_lights_and_fires_once(lianhu: CliRunner) -> None:
    file_petition(lianhu)

    pending = lianhu.invoke(app, ["timer", "pending"])
    once = lianhu.invoke(app, ["timer", "--once"])

    assert pending.exit_code == 0, pending.output
    assert "4 lights pending" in pending.stdout
    assert pending.stdout.count("warn") == 2 and pending.stdout.count("breach") == 2
    assert once.exit_code == 0, once.output
    assert "recorded 0 lights" in once.stdout  # nothing is due yet on the wall clock


def test_serve_runs_the_sla_timer(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", database_url=None, rules_dir=None)
    service = build_service(settings)

    names = [w.name for w in build_workers(settings, service)]

    assert "sla-timer" in names
    service.close()

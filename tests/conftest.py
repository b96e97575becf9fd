"""Fixtures shared by the whole suite: a fake clock, the shipped rule set, a service on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.clock import FakeClock
from engine.persistence import sqlite_env
from engine.service import CaseService
from routing_rules import RuleSet, default_rule_set_path, load_rule_set

try:
    from tests.servers_fixtures import *  # noqa: F403 (PostgreSQL and NATS, when available)
except ModuleNotFoundError as missing:  # the file is optional; a broken import inside it is not
    if missing.name != "tests.servers_fixtures":
        raise


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when a test advances it (starts 2026-03-02 01:00 UTC)."""
    return FakeClock()


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    """The shipped default rule set, loaded once."""
    return load_rule_set(default_rule_set_path())


@pytest.fixture
def service(tmp_path: Path, rules: RuleSet, clock: FakeClock) -> Iterator[CaseService]:
    """A real service on a fresh SQLite file, driven by the fake clock."""
    app = CaseService(rules=rules, clock=clock, env=sqlite_env(str(tmp_path / "lianhu.db")))
    yield app
    app.close()

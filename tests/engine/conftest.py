"""The engine's tests run against both stores: SQLite (default) and a throwaway PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.clock import FakeClock
from engine.persistence import postgres_env, sqlite_env
from engine.service import CaseService
from engine.viewstore import ViewStore
from routing_rules import RuleSet


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The eventsourcing environment of a fresh, empty store of each kind."""
    if request.param == "sqlite":
        return sqlite_env(str(tmp_path / "lianhu.db"))
    dsn: str = request.getfixturevalue("postgres_dsn")
    return postgres_env(dsn, pool_size=20)


@pytest.fixture
def any_service(store: dict[str, str], rules: RuleSet, clock: FakeClock) -> Iterator[CaseService]:
    """A service on each kind of store."""
    app = CaseService(rules=rules, clock=clock, env=store)
    yield app
    app.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_views(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ViewStore]:
    """A fresh, empty view store of each kind."""
    if request.param == "postgres":
        views = ViewStore(postgres_url=request.getfixturevalue("postgres_dsn"))
    else:
        views = ViewStore(sqlite_path=str(tmp_path / "views.db"))
    yield views
    views.close()

"""A rebuilt view equals the live one exactly, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.clock import FakeClock
from engine.persistence import postgres_env, sqlite_env
from engine.service import CaseService
from engine.viewstore import ViewStore
from projections import reports
from projections.measures import Filters
from projections.registry import MODELS, Projections, rebuild, rebuild_all, run_live
from routing_rules import RuleSet
from tests.projections.histories import drive
from tests.projections.test_as_of import _figures


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(
    request: pytest.FixtureRequest, tmp_path: Path, rules: RuleSet, clock: FakeClock
) -> Iterator[tuple[CaseService, ViewStore]]:
    if request.param == "sqlite":
        env, views = (
            sqlite_env(str(tmp_path / "l.db")),
            ViewStore(sqlite_path=str(tmp_path / "v.db")),
        )
    else:
        dsn: str = request.getfixturevalue("postgres_dsn")
        env, views = postgres_env(dsn), ViewStore(postgres_url=dsn)
    service = CaseService(rules=rules, clock=clock, env=env)
    yield service, views
    views.close()
    service.close()


def dumps(p: Projections) -> dict[str, Any]:
    with p.views.transaction() as cur:
        return {name: p.model(name, cur).dump(cur) for name in MODELS}


@pytest.mark.slow
def test_live_view_equals_rebuilt_view_after_a_long_random_history(
    stores: tuple[CaseService, ViewStore], clock: FakeClock
) -> None:
    service, views = stores
    projections = Projections(views)
    stop = threading.Event()
    live = threading.Thread(
        target=run_live,
        args=(projections, service.recorder, service.mapper, stop),
        kwargs={"interval": 0.01, "batch_size": 37},
    )
    live.start()  # the live follower runs while the history is being recorded
    try:
        drive(service, clock, seed=7, cases=40, steps=500)
        head = service.recorder.max_notification_id()
        while min(views.positions().get(f"{n}.g1", 0) for n in MODELS) < (head or 0):
            stop.wait(0.02)
    finally:
        stop.set()
        live.join()
    before = dumps(projections)

    assert rebuild(projections, service.recorder, service.mapper, "board", batch_size=500) == 2
    others = [name for name in MODELS if name != "board"]
    generations = rebuild_all(projections, service.recorder, service.mapper, others, batch_size=900)
    assert generations == dict.fromkeys(others, 2)  # one pass for the other four

    assert projections.generations() == dict.fromkeys(MODELS, 2)
    assert dumps(projections) == before
    # and the queries run on this store, live and as of a past moment, scoped and not
    now = clock.now().timestamp()
    past = Filters(as_of=now - 86400 * 20, scope="510123001", since=now - 86400 * 60)
    _figures(projections, past, now - 86400 * 20)
    live_figures = _figures(projections, Filters(), now)
    assert live_figures["indicators"]["collection_timeliness"]["count"] == 40  # type: ignore[index]
    page = reports.cases(projections, now, 0.75, scope="510123001", light="red", limit=5)
    assert all(row["unit"].startswith("510123001") for row in page["cases"])
    assert sum(len(rows) for tables in before.values() for rows in tables.values()) > 1000

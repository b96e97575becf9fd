"""The follower's memory of recent case states (projections.registry.Fanout) never changes
a view: with or without it, after a failed batch, and when another follower (a restart, a
second process) moved the position in between, the tables equal a plain catch-up."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.clock import FakeClock
from engine.persistence import sqlite_env
from engine.service import CaseService
from engine.viewstore import ViewStore
from projections.registry import MODELS, Fanout, Projections
from routing_rules import RuleSet
from tests.projections.histories import drive


@pytest.fixture
def service(tmp_path: Path, rules: RuleSet, clock: FakeClock) -> Iterator[CaseService]:
    svc = CaseService(rules=rules, clock=clock, env=sqlite_env(str(tmp_path / "l.db")))
    drive(svc, clock, seed=5, cases=30, steps=300)
    yield svc
    svc.close()


def _store(tmp_path: Path, name: str) -> ViewStore:
    return ViewStore(sqlite_path=str(tmp_path / f"{name}.db"))


def _fanout(service: CaseService, views: ViewStore, **kwargs: Any) -> Fanout:
    return Fanout(service.recorder, service.mapper, views, Projections(views).current(), **kwargs)


def _dump(views: ViewStore) -> dict[str, Any]:
    p = Projections(views)
    with views.reading() as cur:
        return {name: p.model(name, cur).dump(cur) for name in MODELS}


def _reference(service: CaseService, tmp_path: Path) -> dict[str, Any]:
    views = _store(tmp_path, "reference")
    try:
        _fanout(service, views, batch_size=10_000, cache_size=0).catch_up()
        return _dump(views)
    finally:
        views.close()


@pytest.mark.parametrize("cache_size", [0, 3, 100_000])
def test_memory_of_any_size_gives_the_same_view(
    service: CaseService, tmp_path: Path, cache_size: int
) -> None:
    views = _store(tmp_path, "live")
    try:
        _fanout(service, views, batch_size=7, cache_size=cache_size).catch_up()
        assert _dump(views) == _reference(service, tmp_path)
    finally:
        views.close()


def test_a_failed_batch_leaves_no_trace_in_memory(
    service: CaseService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    views = _store(tmp_path, "live")
    try:
        fanout = _fanout(service, views, batch_size=11)
        for _ in range(3):
            fanout.step()
        victim = fanout.models[-1]  # the last model: the others applied, then it fails
        real_write = type(victim).write

        def failing(self: Any, cur: Any, effects: list[Any]) -> None:
            real_write(self, cur, effects)
            raise RuntimeError("store hiccup")

        monkeypatch.setattr(type(victim), "write", failing)
        with pytest.raises(RuntimeError):
            fanout.step()  # rolled back: no model's states from this batch may be remembered
        assert gc.isenabled()  # the batch paused the cyclic GC; a failure must not leave it off
        monkeypatch.undo()
        fanout.catch_up()
        assert _dump(views) == _reference(service, tmp_path)
    finally:
        views.close()


def test_memory_is_dropped_when_another_follower_moved_the_position(
    service: CaseService, tmp_path: Path
) -> None:
    views = _store(tmp_path, "live")
    try:
        first = _fanout(service, views, batch_size=13)
        for _ in range(4):
            first.step()
        second = _fanout(service, views, batch_size=17)  # a restarted or second process
        for _ in range(4):
            second.step()
        first.catch_up()  # its memory predates the second follower's batches
        assert _dump(views) == _reference(service, tmp_path)
    finally:
        views.close()

"""Catching up from position 0: the tables are filled without their query indexes, which
are built at the end, also when the catch-up fails half-way; a case first seen at its
filing has no state to load."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from engine.clock import FakeClock
from engine.persistence import sqlite_env
from engine.service import CaseService
from engine.viewstore import ViewCursor, ViewStore
from projections.fold import INDEX_NAME, FoldModel, Rec
from projections.registry import Fanout, Projections
from tests.projections.histories import drive
from tests.projections.test_folds import RULES


@contextmanager
def logged(cases: int = 40, steps: int = 600) -> Iterator[tuple[CaseService, ViewStore]]:
    with tempfile.TemporaryDirectory() as tmp:
        clock = FakeClock()
        service = CaseService(rules=RULES, clock=clock, env=sqlite_env(f"{tmp}/lianhu.db"))
        views = ViewStore(sqlite_path=str(Path(tmp) / "views.db"))
        try:
            drive(service, clock, 5, cases=cases, steps=steps)
            yield service, views
        finally:
            views.close()
            service.close()


def index_names(models: Sequence[FoldModel[Any]]) -> set[str]:
    found = set()
    for model in models:
        for index in model.indexes:
            match = INDEX_NAME.match(model._fmt(index))
            if match:
                found.add(match.group(1))
    return found


def present(views: ViewStore) -> set[str]:
    with views.reading() as cur:
        rows = cur.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    return {str(r[0]) for r in rows}


def test_indexes_are_dropped_while_catching_up_from_zero_and_built_at_the_end() -> None:
    with logged() as (service, views):
        models = Projections(views).current()
        wanted = index_names(models)
        during: list[set[str]] = []
        fanout = Fanout(service.recorder, service.mapper, views, models, batch_size=20)
        assert len(wanted) >= 12 and wanted <= present(views)  # created with the tables
        fanout.catch_up(lambda done, total: during.append(present(views)))
        assert len(during) > 3
        assert all(not (wanted & seen) for seen in during)
        assert wanted <= present(views)
        # a follower that starts with indexes in place keeps them
        fanout.catch_up(lambda done, total: during.append(present(views)))
        assert wanted <= present(views)


class Failing(Exception):
    pass


def test_a_catch_up_that_fails_half_way_leaves_the_indexes_built() -> None:
    with logged() as (service, views):
        models = Projections(views).current()
        board = next(m for m in models if m.base_name == "board")
        calls = {"n": 0}
        apply = board.apply

        def failing(
            cur: ViewCursor, batch: Sequence[Rec], cache: Any = None, reader: Any = None
        ) -> Any:
            calls["n"] += 1
            if calls["n"] == 4:
                raise Failing("the disk is full")
            return apply(cur, batch, cache, reader)

        board.apply = failing  # type: ignore[method-assign]
        fanout = Fanout(service.recorder, service.mapper, views, models, batch_size=40)
        with pytest.raises(Failing):
            fanout.catch_up()
        positions = views.positions()
        assert positions[board.name] == 120  # three batches committed, the fourth not at all
        assert index_names(models) <= present(views)


def test_cases_first_seen_at_their_filing_are_not_looked_up() -> None:
    with logged() as (service, views):
        case_list = next(m for m in Projections(views).current() if m.base_name == "case_list")
        batches: list[Sequence[Rec]] = []
        asked: list[list[str]] = []
        apply, load = case_list.apply, case_list.load_states

        def recording_apply(
            cur: ViewCursor, batch: Sequence[Rec], cache: Any = None, reader: Any = None
        ) -> Any:
            batches.append(batch)
            asked.append([])
            return apply(cur, batch, cache, reader)

        def recording_load(cur: ViewCursor, keys: Sequence[str]) -> Any:
            asked[-1].extend(keys)
            return load(cur, keys)

        case_list.apply = recording_apply  # type: ignore[method-assign]
        case_list.load_states = recording_load  # type: ignore[method-assign]
        # no memory of recent cases: every state not born in its batch is read back
        fanout = Fanout(service.recorder, service.mapper, views, [case_list], batch_size=25)
        fanout.cache_size = 0
        fanout.catch_up()

        assert len(batches) > 5
        for batch, keys in zip(batches, asked, strict=True):
            born = {r.key for r in batch if r.type == "PetitionFiled"}
            assert set(keys) == {r.key for r in batch} - born
        assert sum(map(len, asked)) > 10

"""Fixtures for the read models: a view store beside the service's store, and helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.service import CaseService
from engine.viewstore import ViewStore
from projections.registry import Projections, catch_up_all


@pytest.fixture
def views(tmp_path: Path) -> Iterator[ViewStore]:
    store = ViewStore(sqlite_path=str(tmp_path / "views.db"))
    yield store
    store.close()


@pytest.fixture
def projections(views: ViewStore) -> Projections:
    return Projections(views)


def caught_up(service: CaseService, projections: Projections, batch_size: int = 1000) -> None:
    catch_up_all(projections, service.recorder, service.mapper, batch_size=batch_size)

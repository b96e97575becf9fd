"""Fixtures for the HTTP API: a TestClient over the shared service (real SQLite, fake clock)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from engine.service import CaseService
from engine.settings import Settings

HOUSEHOLD = "510123001001-01-01"  # 文庙社区第1居民小组1号联户 in the default rule set
GROUP = "510123001001-01"
VILLAGE = "510123001001"


def a_petition(**overrides: Any) -> dict[str, Any]:
    """A valid filing body; override any field."""
    body: dict[str, Any] = {
        "household_unit": HOUSEHOLD,
        "category": "neighbour_dispute",
        "title": "楼上噪音",
        "description": "楼上邻居每晚十一点后装修，影响休息。",
        "reporter": {"name": "张三", "phone": "13812345678"},
    }
    body.update(overrides)
    return body


@pytest.fixture
def app(service: CaseService, tmp_path: Path) -> FastAPI:
    settings = Settings(data_dir=tmp_path, database_url=None, rules_dir=None)
    return create_app(service, settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def log_position(service: CaseService) -> int:
    """How many events the store holds (case-number index events included)."""
    return service.recorder.max_notification_id() or 0

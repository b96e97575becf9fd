"""Killed mid-stream (SIGKILL), the projection process resumes from its tracked position:
nothing counted twice, nothing missed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.clock import FakeClock
from engine.persistence import sqlite_env
from engine.service import CaseService
from engine.viewstore import ViewStore
from projections.registry import MODELS, Projections
from routing_rules import RuleSet
from tests.projections.conftest import caught_up
from tests.projections.histories import drive

ROOT = Path(__file__).resolve().parents[2]


def _follower(data_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LIANHU_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    env.pop("LIANHU_DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "projections", "run", "--batch-size", "7", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_a_killed_projection_process_resumes_without_double_counting(
    tmp_path: Path, rules: RuleSet, clock: FakeClock
) -> None:
    data = tmp_path / "var"
    data.mkdir()
    service = CaseService(rules=rules, clock=clock, env=sqlite_env(str(data / "lianhu.db")))
    drive(service, clock, seed=11, cases=150, steps=600)
    head = service.recorder.max_notification_id() or 0
    views = ViewStore(sqlite_path=str(data / "views.db"))
    names = [f"{n}.g1" for n in MODELS]

    follower = _follower(data)
    deadline = time.monotonic() + 60
    killed_at = 0
    while time.monotonic() < deadline:
        positions = views.positions()
        if any(positions.get(n, 0) > 0 for n in names):
            follower.send_signal(signal.SIGKILL)
            follower.wait()
            killed_at = min(views.positions().get(n, 0) for n in names)
            break
        time.sleep(0.005)
    assert 0 < killed_at < head, f"not killed mid-stream ({killed_at} of {head})"

    resumed = _follower(data, "--once")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err.decode()

    clean = ViewStore(sqlite_path=str(tmp_path / "clean.db"))
    try:
        reference = Projections(clean)
        caught_up(service, reference)
        live = Projections(views)
        with views.transaction() as a, clean.transaction() as b:
            for name in MODELS:
                assert live.model(name, a).dump(a) == reference.model(name, b).dump(b), name
        assert all(views.positions()[n] == head for n in names)
    finally:
        clean.close()
        views.close()
        service.close()

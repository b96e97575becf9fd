"""The department side: durable consumers with idempotent handling, commands over request/reply."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.nats_commands import CommandHandler
from engine import bus
from engine.bus import RelayConfig, StreamSpec
from engine.clock import SystemClock
from engine.outbox import Outbox
from engine.persistence import sqlite_env
from engine.service import CaseService
from engine.viewstore import ViewStore
from routing_rules import RuleSet
from tests.integration.relay_support import file_varied, read_stream, wait_for
from tests.integration.test_relay import caught_up, relaying

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "department_consumer.py"


@pytest.fixture
def relayed(
    tmp_path: Path, rules: RuleSet, nats_url: str, nats_prefix: str
) -> Iterator[tuple[CaseService, RelayConfig]]:
    """A store with 120 cases (40 lift faults for housing), all relayed to a fresh stream."""
    service = CaseService(rules=rules, clock=SystemClock(), env=sqlite_env(str(tmp_path / "l.db")))
    views = ViewStore(sqlite_path=str(tmp_path / "views.db"))
    outbox = Outbox(service, views, prefix=nats_prefix)
    config = RelayConfig(
        url=nats_url, stream=StreamSpec(name=f"{nats_prefix}_CASES", prefix=nats_prefix)
    )
    file_varied(service, 120)
    with relaying(outbox, config):
        wait_for(lambda: caught_up(outbox), 20, "the relay to catch up")
    yield service, config
    service.close()
    views.close()


def housing_event_ids(config: RelayConfig) -> set[str]:
    received = read_stream(config.url, config.stream.name, config.stream.prefix)
    return {str(r.envelope["event_id"]) for r in received if ".department.housing." in r.subject}


def _consumer(config: RelayConfig, db: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, str(EXAMPLE), "--url", config.url, "--stream", config.stream.name]
    argv += ["--prefix", config.stream.prefix, "--department", "housing", "--db", str(db)]
    argv += ["--batch", "20", "--ack-wait", "1", "--work-ms", "20"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)


def test_a_consumer_killed_mid_batch_gets_redeliveries_and_records_each_event_once(
    relayed: tuple[CaseService, RelayConfig], tmp_path: Path
) -> None:
    _, config = relayed
    expected = housing_event_ids(config)
    assert len(expected) > 40
    db = tmp_path / "housing.db"

    first = _consumer(config, db)
    assert first.stdout is not None
    assert first.stdout.readline().strip() == "ready"
    for _ in range(10):  # half of the first batch of 20: committed, not yet acknowledged
        assert first.stdout.readline().startswith("handled")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)

    second = _consumer(config, db)
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(second.stdout.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    try:
        wait_for(lambda: _recorded(db) >= len(expected), 30, "every housing event recorded")
        wait_for(lambda: any(x.startswith("duplicate") for x in lines), 10, "a redelivery")
    finally:
        second.kill()
        second.wait(10)
    with sqlite3.connect(db) as conn:
        rows = [r[0] for r in conn.execute("SELECT event_id FROM inbox")]
    assert sorted(rows) == sorted(expected)


def _recorded(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM inbox").fetchone()[0])


def test_lianhu_consume_prints_a_departments_envelopes(
    relayed: tuple[CaseService, RelayConfig], tmp_path: Path
) -> None:
    _, config = relayed
    expected = housing_event_ids(config)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LIANHU_")},
        "PYTHONPATH": str(ROOT),
        "LIANHU_DATA_DIR": str(tmp_path / "var"),
        "LIANHU_NATS_URL": config.url,
        "LIANHU_NATS_STREAM": config.stream.name,
        "LIANHU_NATS_SUBJECT_PREFIX": config.stream.prefix,
    }
    argv = [sys.executable, "-m", "api.cli", "consume", "--department", "dept:housing"]
    done = subprocess.run(
        [*argv, "--limit", str(len(expected))],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    printed = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert {p["event_id"] for p in printed} == expected
    assert all(p["schema"] == "lianhu.case-event" for p in printed)


# -- request / reply -----------------------------------------------------------------------------


@pytest.fixture
def commands(
    relayed: tuple[CaseService, RelayConfig], nats_prefix: str
) -> Iterator[tuple[CaseService, Any]]:
    service, config = relayed
    handler = CommandHandler(service, f"{nats_prefix}_cmd")
    stop = threading.Event()
    ready = threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(
            bus.serve_requests(config.url, handler.subscription, handler, stop, ready=ready.set)
        ),
        daemon=True,
    )
    thread.start()
    assert ready.wait(10)

    def ask(unit_subject: str, verb: str, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        subject = f"{nats_prefix}_cmd.{unit_subject}.{verb}"
        reply = asyncio.run(bus.request(config.url, subject, orjson.dumps(body)))
        return orjson.loads(reply.data), (reply.headers or {}).get("Content-Type", "")

    yield service, ask
    stop.set()
    thread.join(10)


def _housing_case(service: CaseService) -> tuple[str, str]:
    for n in service.recorder.select_notifications(start=1, limit=1000):
        event = service.mapper.to_domain_event(n)
        if type(event).__name__ == "CaseRouted" and getattr(event, "handler", "") == "dept:housing":
            case = service.get_case(event.originator_id)
            if case.unit == "dept:housing" and case.status.value == "routed":
                return str(case.id), case.number
    raise AssertionError("no open housing case")


def test_departments_accept_and_resolve_over_request_reply(
    commands: tuple[CaseService, Any],
) -> None:
    service, ask = commands
    case_id, number = _housing_case(service)

    accepted, kind = ask("department.housing", "accept", {"case": number, "actor": "li"})
    assert kind == "application/json"
    assert accepted["case"]["status"] == "accepted"
    resolved, _ = ask(
        "department.housing",
        "resolve",
        {"case": case_id, "actor": "li", "outcome": "solved", "resolution": "已修复电梯"},
    )
    assert resolved["case"]["status"] == "resolved"
    assert service.get_case(service.find_case(number)).status.value == "resolved"


def test_command_errors_come_back_as_the_same_problems_as_over_http(
    commands: tuple[CaseService, Any],
) -> None:
    service, ask = commands
    case_id, _ = _housing_case(service)

    invalid, kind = ask("department.housing", "resolve", {"case": case_id, "outcome": "maybe"})
    assert kind == "application/problem+json"
    assert invalid["type"] == "/problems/validation-error" and invalid["status"] == 422
    assert {e["field"] for e in invalid["errors"]} == {"actor", "outcome", "resolution"}

    illegal, _ = ask(
        "department.housing",
        "resolve",
        {"case": case_id, "actor": "li", "outcome": "solved", "resolution": "已修复"},
    )
    assert illegal["type"] == "/problems/illegal-transition" and illegal["status"] == 409
    assert illegal["case_status"] == "routed" and illegal["hint"]

    not_holder, _ = ask("department.police", "accept", {"case": case_id, "actor": "wang"})
    assert not_holder["status"] == 409

    missing, _ = ask("department.housing", "accept", {"case": "260101-ZZZZZ", "actor": "li"})
    assert missing["type"] == "/problems/not-found"
    assert service.get_case(service.find_case(case_id)).version == 2  # nothing recorded

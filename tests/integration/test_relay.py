"""The relay delivers every case event to JetStream once per subject, through crashes and outages.

Real nats-server (JetStream, file storage) on a free port; real stores (SQLite, PostgreSQL).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nats
import pytest

from engine.bus import RelayConfig, StreamSpec, run_relay
from engine.clock import SystemClock
from engine.outbox import Outbox
from engine.persistence import postgres_env, sqlite_env
from engine.servers import NatsServer
from engine.service import CaseService
from engine.viewstore import ViewStore
from routing_rules import RuleSet
from tests.integration.relay_support import (
    check_delivery,
    file_one,
    file_varied,
    households,
    read_stream,
    stream_last_seq,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, str], ViewStore]:
    if request.param == "sqlite":
        env = sqlite_env(str(tmp_path / "lianhu.db"))
        return env, ViewStore(sqlite_path=str(tmp_path / "views.db"))
    dsn: str = request.getfixturevalue("postgres_dsn")
    return postgres_env(dsn, pool_size=10), ViewStore(postgres_url=dsn)


@contextmanager
def relaying(outbox: Outbox, config: RelayConfig) -> Iterator[threading.Event]:
    """A relay on a thread for the duration of the block."""
    stop = threading.Event()
    thread = threading.Thread(target=run_relay, args=(outbox, config, stop), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(15)
        assert not thread.is_alive(), "the relay did not stop"


def config_for(url: str, prefix: str, **kw: object) -> RelayConfig:
    spec = StreamSpec(
        name=f"{prefix}_CASES",
        prefix=prefix,
        duplicate_window=float(kw.pop("window", 120.0)),  # type: ignore[arg-type]
    )
    return RelayConfig(url=url, stream=spec, ack_timeout=1.0, batch_size=200, **kw)  # type: ignore[arg-type]


def caught_up(outbox: Outbox) -> bool:
    return outbox.position() >= outbox.head()


def test_every_event_arrives_once_per_subject_and_in_case_order(
    store: tuple[dict[str, str], ViewStore], rules: RuleSet, nats_url: str, nats_prefix: str
) -> None:
    env, views = store
    service = CaseService(rules=rules, clock=SystemClock(), env=env)
    outbox = Outbox(service, views, prefix=nats_prefix)
    config = config_for(nats_url, nats_prefix)
    file_varied(service, 150)

    with relaying(outbox, config):
        file_varied(service, 150, start=150)  # while it relays
        wait_for(lambda: caught_up(outbox), 30, "the relay to catch up")

    received = read_stream(nats_url, config.stream.name, nats_prefix)
    assert check_delivery(service, received, nats_prefix) > 600
    assert any(".department." in r.subject for r in received)
    assert outbox.lag().events == 0
    service.close()
    views.close()


def _relay_process(data_dir: Path, url: str, prefix: str) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LIANHU_")},
        "PYTHONPATH": str(ROOT),
        "LIANHU_DATA_DIR": str(data_dir),
        "LIANHU_NATS_URL": url,
        "LIANHU_NATS_STREAM": f"{prefix}_CASES",
        "LIANHU_NATS_SUBJECT_PREFIX": prefix,
        "LIANHU_NATS_RELAY_BATCH": "300",
        "LIANHU_NATS_ACK_TIMEOUT": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "relay"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_relay_sigkilled_ten_times_during_10000_events_loses_and_repeats_nothing(
    tmp_path: Path, rules: RuleSet, nats_url: str, nats_prefix: str
) -> None:
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    service = CaseService(
        rules=rules, clock=SystemClock(), env=sqlite_env(str(data_dir / "lianhu.db"))
    )
    stream = f"{nats_prefix}_CASES"
    units = households(rules)
    filed = 0

    def file_cases() -> None:
        nonlocal filed
        for n in range(5_000):  # filed + routed: 10,000 case events
            file_one(service, n, units)
            filed = n + 1

    filing = threading.Thread(target=file_cases, daemon=True)
    filing.start()
    rng = random.Random(5)
    for kill in range(10):
        relay = _relay_process(data_dir, nats_url, nats_prefix)
        seen = stream_last_seq(nats_url, stream)
        goal = seen + rng.randrange(100, 1200)
        try:
            wait_for(
                lambda goal=goal: stream_last_seq(nats_url, stream) >= goal,  # type: ignore[misc]
                30,
                f"relay {kill} to publish",
            )
        finally:
            os.kill(relay.pid, signal.SIGKILL)
            relay.wait(10)
    filing.join(60)
    assert filed == 5_000

    relay = _relay_process(data_dir, nats_url, nats_prefix)
    views = ViewStore(sqlite_path=str(data_dir / "views.db"))
    outbox = Outbox(service, views, prefix=nats_prefix)
    try:
        wait_for(lambda: caught_up(outbox), 60, "the last relay to catch up", every=0.2)
    finally:
        relay.terminate()
        relay.wait(10)
    received = read_stream(nats_url, stream, nats_prefix)
    assert check_delivery(service, received, nats_prefix) >= 10_000
    assert sum(1 for r in received if r.envelope["type"] == "PetitionFiled") == 5_000
    service.close()
    views.close()


def test_nats_down_during_filing_filing_goes_on_and_everything_arrives_after(
    tmp_path: Path, rules: RuleSet
) -> None:
    service = CaseService(rules=rules, clock=SystemClock(), env=sqlite_env(str(tmp_path / "l.db")))
    views = ViewStore(sqlite_path=str(tmp_path / "views.db"))
    outbox = Outbox(service, views, prefix="cases")
    units = households(rules)
    with NatsServer(tmp_path / "js", monitor=False) as server:
        config = config_for(server.url, "cases")
        config = RelayConfig(url=server.url, stream=StreamSpec(), ack_timeout=0.5, batch_size=200)
        with relaying(outbox, config):
            for n in range(100):
                file_one(service, n, units)
            wait_for(lambda: caught_up(outbox), 20, "the relay to catch up before the outage")

            server.stop()
            down_from = outbox.head()
            for n in range(100, 400):  # filing never waits for NATS
                file_one(service, n, units)
            lag = outbox.lag()
            assert lag.position <= down_from < lag.head
            assert lag.events > 0 and lag.seconds >= 0

            server.start()
            wait_for(lambda: caught_up(outbox), 30, "the relay to catch up after the outage")
        received = read_stream(server.url, "CASES", "cases")
    assert check_delivery(service, received, "cases") >= 800
    service.close()
    views.close()


class SimulatedCrash(BaseException):
    """The relay process dying between its publishes and its position commit."""


class CrashingOutbox(Outbox):
    def commit(self, start: int, last: int) -> None:
        raise SimulatedCrash


async def _window_expired_probe(url: str, stream: str, prefix: str) -> bool:
    nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    try:
        ack = await nc.jetstream().publish(f"{prefix}.probe", b"", headers={"Nats-Msg-Id": "probe"})
        return not ack.duplicate
    finally:
        await nc.close()


def test_a_relay_paused_past_the_duplicate_window_still_publishes_nothing_twice(
    tmp_path: Path, rules: RuleSet, nats_url: str, nats_prefix: str
) -> None:
    service = CaseService(rules=rules, clock=SystemClock(), env=sqlite_env(str(tmp_path / "l.db")))
    views = ViewStore(sqlite_path=str(tmp_path / "views.db"))
    config = config_for(nats_url, nats_prefix, window=1.0)
    file_varied(service, 60)  # fewer positions than one batch: all published, none committed

    with pytest.raises(SimulatedCrash):
        run_relay(CrashingOutbox(service, views, prefix=nats_prefix), config, threading.Event())
    published = stream_last_seq(nats_url, config.stream.name)
    assert published > 0
    assert Outbox(service, views, prefix=nats_prefix).position() == 0

    # a probe stream with the same 1 s window: once its id is forgotten, so are the relay's
    probe = StreamSpec(
        name=f"{nats_prefix}_PROBE", prefix=f"{nats_prefix}probe", duplicate_window=1.0
    )
    asyncio.run(_add_stream(nats_url, probe))
    assert asyncio.run(_window_expired_probe(nats_url, probe.name, probe.prefix))
    wait_for(
        lambda: asyncio.run(_window_expired_probe(nats_url, probe.name, probe.prefix)),
        10,
        "the duplicate window to pass",
        every=0.2,
    )

    outbox = Outbox(service, views, prefix=nats_prefix)
    with relaying(outbox, config):
        file_varied(service, 20, start=60)
        wait_for(lambda: caught_up(outbox), 20, "the restarted relay to catch up")
    received = read_stream(nats_url, config.stream.name, nats_prefix)
    check_delivery(service, received, nats_prefix)
    assert stream_last_seq(nats_url, config.stream.name) == len(received) > published
    service.close()
    views.close()


async def _add_stream(url: str, spec: StreamSpec) -> None:
    nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    try:
        await nc.jetstream().add_stream(spec.config())
    finally:
        await nc.close()

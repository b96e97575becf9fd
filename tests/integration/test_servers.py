"""The throwaway servers of engine.servers, really started: PostgreSQL and NATS JetStream.

The read-only checks use the session servers of tests/servers_fixtures.py (imported by
tests/conftest.py); the tests that stop or kill a server start their own, with a data dir
from ``server_dir`` rather than ``tmp_path`` (see its docstring: root, pytest's 0700 root).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nats
import psycopg
import pytest

from engine.servers import NatsServer, PostgresServer, ServerStartError, free_port

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------ postgres


def _rows(dsn: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return list(conn.execute(query).fetchall())


def _run(dsn: str, statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statements)


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.postgres
def test_postgres_accepts_a_connection(postgres_server: PostgresServer) -> None:
    pg = postgres_server
    assert pg.running
    assert pg.dsn == f"postgresql://postgres@127.0.0.1:{pg.port}/postgres"
    assert _rows(pg.dsn, "select 1") == [(1,)]
    query = (
        "select name, setting from pg_settings where name in "
        "('fsync', 'max_connections', 'listen_addresses', 'server_encoding', 'TimeZone')"
    )
    settings = {str(name): str(value) for name, value in _rows(pg.dsn, query)}
    assert settings == {
        "fsync": "on",
        "max_connections": "200",
        "listen_addresses": "127.0.0.1",
        "server_encoding": "UTF8",
        "TimeZone": "UTC",
    }
    assert _rows(pg.dsn, "select current_user") == [("postgres",)]


@pytest.mark.postgres
def test_postgres_created_databases_are_isolated(postgres_server: PostgresServer) -> None:
    pg = postgres_server
    one, two = pg.create_database("iso_one"), pg.create_database("iso_two")
    try:
        assert one.endswith("/iso_one")
        _run(one, "create table t (x int); insert into t values (1)")
        assert _rows(one, "select x from t") == [(1,)]
        assert _rows(two, "select to_regclass('t') is null") == [(True,)]
        with pytest.raises(ValueError):
            pg.create_database("no; drop")
    finally:
        pg.drop_database("iso_one")
        pg.drop_database("iso_two")
    assert _rows(pg.dsn, "select count(*) from pg_database where datname like 'iso_%'") == [(0,)]


@pytest.mark.postgres
def test_postgres_dsn_is_a_fresh_database(postgres_dsn: str) -> None:
    assert _rows(postgres_dsn, "select current_database()")[0][0] != "postgres"
    assert _rows(postgres_dsn, "select count(*) from pg_tables where schemaname = 'public'") == [
        (0,)
    ]


@pytest.mark.postgres
def test_postgres_stop_start_keeps_rows(server_dir: Path) -> None:
    server = PostgresServer(server_dir / "pgdata")
    with server:
        port = server.port
        _run(server.dsn, "create table kept (x int); insert into kept values (1), (2)")
        server.stop()
        assert not server.running
        assert (server_dir / "pgdata" / "PG_VERSION").exists()  # a given data dir is kept
        server.start()
        assert server.port == port
        assert _rows(server.dsn, "select x from kept order by x") == [(1,), (2,)]
    assert (server_dir / "pgdata" / "PG_VERSION").exists()


@pytest.mark.postgres
def test_postgres_kill_then_start_recovers(server_dir: Path) -> None:
    with PostgresServer(server_dir / "pgdata") as server:
        _run(server.dsn, "create table crash (x int); insert into crash values (1)")
        idle = psycopg.connect(server.dsn)  # a backend that must die with the postmaster
        pid = server.pid
        assert pid is not None
        server.kill()
        assert not server.running
        idle.close()
        assert (server_dir / "pgdata" / "postmaster.pid").exists()  # not a clean shutdown
        server.start()
        assert _rows(server.dsn, "select x from crash") == [(1,)]
        log = server.log_path.read_text()
        assert "was interrupted" in log or "not properly shut down" in log


def _occupy(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


@pytest.mark.postgres
def test_postgres_moves_off_a_taken_port_and_removes_its_temporary_dir() -> None:
    server = PostgresServer()
    taken = server.port
    with _occupy(taken):
        server.start()
    try:
        assert server.port != taken
        data_dir = server.data_dir
        assert (data_dir / "PG_VERSION").exists()
        assert _rows(server.dsn, "select 1") == [(1,)]
    finally:
        server.stop()
    assert not data_dir.exists()


def test_nats_moves_off_a_taken_port() -> None:
    server = NatsServer()
    taken = server.port
    with _occupy(taken), server:
        assert server.port != taken
        assert asyncio.run(_create_and_publish_twice(server.url))[2] == 1


# ---------------------------------------------------------------------------- nats


async def _create_and_publish_twice(
    url: str, prefix: str = "cases"
) -> tuple[bool | None, bool | None, int]:
    nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    try:
        js = nc.jetstream()
        await js.add_stream(name=f"{prefix}_stream", subjects=[f"{prefix}.>"])
        first = await js.publish(f"{prefix}.opened", b"1", headers={"Nats-Msg-Id": "case-1"})
        again = await js.publish(f"{prefix}.opened", b"1", headers={"Nats-Msg-Id": "case-1"})
        info = await js.stream_info(f"{prefix}_stream")
        return first.duplicate, again.duplicate, info.state.messages
    finally:
        await nc.close()


async def _stream_messages(url: str, prefix: str = "cases") -> int:
    nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    try:
        info = await nc.jetstream().stream_info(f"{prefix}_stream")
        return info.state.messages
    finally:
        await nc.close()


def test_nats_jetstream_drops_a_duplicate(nats_server: NatsServer, nats_prefix: str) -> None:
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    first, again, messages = asyncio.run(_create_and_publish_twice(nats_server.url, nats_prefix))
    assert not first
    assert again is True
    assert messages == 1


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_nats_restart_keeps_the_stream(tmp_path: Path, how: str) -> None:
    with NatsServer(tmp_path / "js") as server:  # NATS runs as the caller: tmp_path is fine
        asyncio.run(_create_and_publish_twice(server.url))
        server.stop() if how == "stop" else server.kill()
        assert not server.running
        server.start()
        assert asyncio.run(_stream_messages(server.url)) == 1
    assert (tmp_path / "js" / "jetstream").is_dir()  # a given store dir is kept


def test_nats_reports_a_broken_binary(tmp_path: Path) -> None:
    fake = tmp_path / "nats-server"
    fake.write_text("#!/bin/sh\necho 'cannot start: simulated failure' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(ServerStartError, match="simulated failure"):
        NatsServer(tmp_path / "js", binary=fake).start()


# ---------------------------------------------------------------- owner dies hard

_OWNER = """
import json, sys, time
from engine.servers import NatsServer, PostgresServer
pg, ns = PostgresServer().start(), NatsServer().start()
print(json.dumps([pg.pid, str(pg.data_dir), ns.pid, str(ns.store_dir)]), flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.postgres
def test_servers_are_stopped_when_their_owner_is_sigkilled() -> None:
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert owner.stdout is not None
        pg_pid, pg_dir, nats_pid, nats_dir = json.loads(owner.stdout.readline())
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (
        _alive(pg_pid) or _alive(nats_pid) or Path(pg_dir).exists() or Path(nats_dir).exists()
    ):
        time.sleep(0.1)
    assert not _alive(pg_pid)
    assert not _alive(nats_pid)
    assert not Path(pg_dir).exists()
    assert not Path(nats_dir).exists()


def test_postgres_failed_start_removes_its_temporary_dir(server_dir: Path) -> None:
    bin_dir = server_dir / "bin"
    bin_dir.mkdir()
    for name in ("initdb", "postgres"):
        (bin_dir / name).write_text("#!/bin/sh\necho 'simulated initdb failure' >&2\nexit 1\n")
        (bin_dir / name).chmod(0o755)
    server = PostgresServer(bin_dir=bin_dir)
    with pytest.raises(ServerStartError, match="simulated initdb failure"):
        server.start()
    with pytest.raises(RuntimeError, match="only once started"):
        _ = server.data_dir

"""pytest fixtures for the throwaway servers of :mod:`engine.servers`.

``tests/conftest.py`` makes them available to the whole suite with
``from tests.servers_fixtures import *`` (``__all__`` lists the fixtures).

Session-scoped servers are per process: under ``pytest -n 2`` each xdist worker starts its
own PostgreSQL and NATS, on its own free ports, and stops them when its session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.js.errors import NotFoundError

from engine.servers import NatsServer, PostgresServer

__all__ = [
    "nats_prefix",
    "nats_server",
    "nats_url",
    "postgres_dsn",
    "postgres_server",
    "server_dir",
    "unique_name",
]


def unique_name(hint: str, prefix: str = "t") -> str:
    """``prefix_<hint as [a-z0-9_]>_<8 hex>``, at most 63 characters.

    Valid as a PostgreSQL database name, a JetStream stream name and a subject token.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")[:40]
    return f"{prefix}_{slug}_{secrets.token_hex(4)}" if slug else f"{prefix}_{secrets.token_hex(4)}"


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A fresh directory for a server's own data dir (``server_dir / "pgdata"``), removed after.

    Use it instead of ``tmp_path`` for servers that are restarted: as root, PostgreSQL runs
    as an unprivileged user that must traverse every parent directory, and ``tmp_path``
    lives under ``/tmp/pytest-of-root`` (0700), which every pytest session starting on the
    machine resets to 0700, so the o+x that engine.servers adds there does not stick.
    """
    path = Path(tempfile.mkdtemp(prefix="lianhu-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL per test process (per xdist worker), on a temporary data dir."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """DSN of a fresh, empty database for this test; dropped (WITH FORCE) afterwards."""
    name = unique_name(request.node.name)
    dsn = postgres_server.create_database(name)
    yield dsn
    postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """One NATS server with JetStream per test process, on a temporary store dir."""
    with NatsServer() as server:
        yield server


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture
def nats_prefix(nats_server: NatsServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A token unique to this test, for its stream names and subjects.

    The server is shared by the tests of a worker, so name streams ``f"{nats_prefix}_..."``
    and subjects ``f"{nats_prefix}.>"``; streams whose names start with it are deleted after
    the test.
    """
    prefix = unique_name(request.node.name, "t")
    yield prefix
    asyncio.run(_delete_streams(nats_server.url, prefix))


async def _delete_streams(url: str, prefix: str) -> None:
    nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            if info.config.name and info.config.name.startswith(prefix):
                with contextlib.suppress(NotFoundError):  # deleted meanwhile
                    await js.delete_stream(info.config.name)
    finally:
        await nc.close()

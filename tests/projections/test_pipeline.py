"""A catch-up with its writes in a writer process leaves exactly the tables an in-process
catch-up leaves, on SQLite and PostgreSQL; a writer that fails, dies or finds another
follower's position leaves every batch whole and the next catch-up finishes the job."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.clock import FakeClock
from engine.persistence import postgres_env, sqlite_env
from engine.servers import PostgresServer
from engine.service import CaseService
from engine.viewstore import ViewStore, set_position
from projections import pipeline, registry
from projections.pipeline import Conflict, Recording, WriterFailed, apply_parts
from projections.registry import (
    INDEXES_AT,
    MODELS,
    PIPELINE_DEPTH,
    Fanout,
    Projections,
    retry_delay,
    run_live,
)
from tests.projections.histories import drive
from tests.projections.test_catch_up import index_names
from tests.projections.test_folds import RULES
from tests.servers_fixtures import unique_name

BATCH = 20
Where = Callable[[str], ViewStore]  # a fresh, empty view store of the test's kind


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def logged(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[CaseService, Where]]:
    """A history of ~300 events, and fresh view stores beside it."""
    clock = FakeClock()
    opened: list[ViewStore] = []
    databases: list[str] = []
    if request.param == "sqlite":
        env = sqlite_env(str(tmp_path / "l.db"))

        def where(name: str) -> ViewStore:
            opened.append(ViewStore(sqlite_path=str(tmp_path / f"{name}.db")))
            return opened[-1]

    else:
        env = postgres_env(request.getfixturevalue("postgres_dsn"))
        server: PostgresServer = request.getfixturevalue("postgres_server")

        def where(name: str) -> ViewStore:
            databases.append(unique_name(f"{request.node.name}_{name}"))
            opened.append(ViewStore(postgres_url=server.create_database(databases[-1])))
            return opened[-1]

    service = CaseService(rules=RULES, clock=clock, env=env)
    drive(service, clock, 5, cases=40, steps=600)
    yield service, where
    for views in opened:
        views.close()
    service.close()
    for name in databases:
        server.drop_database(name)


def fanout(service: CaseService, views: ViewStore, *, pipeline: bool) -> Fanout:
    f = Fanout(
        service.recorder, service.mapper, views, Projections(views).current(),
        batch_size=BATCH, pipeline=pipeline,
    )  # fmt: skip
    f.pipeline_from = 0
    return f


def dump(views: ViewStore) -> dict[str, Any]:
    projections = Projections(views)
    with views.reading() as cur:
        return {name: projections.model(name, cur).dump(cur) for name in MODELS}


def indexes_built(views: ViewStore, f: Fanout) -> bool:
    """Every query index of the models exists (a catch-up from 0 drops them meanwhile)."""
    if views.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index'"
    else:
        sql = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    with views.reading() as cur:
        found = {str(r[0]) for r in cur.execute(sql).fetchall()}
    return index_names(f.models) <= found


def counted_sends(
    monkeypatch: pytest.MonkeyPatch,
    before: Callable[[pipeline.Writer, int], None] | None = None,
    after: Callable[[pipeline.Writer, int], None] | None = None,
) -> dict[str, int]:
    """Count the batches sent to the writer ({"n": ...}); `before` / `after` run around
    the n-th send with the writer and n."""
    sends = {"n": 0}
    send = pipeline.Writer.send

    def counted(self: pipeline.Writer, parts: list[pipeline.Part]) -> None:
        sends["n"] += 1
        if before is not None:
            before(self, sends["n"])
        send(self, parts)
        if after is not None:
            after(self, sends["n"])

    monkeypatch.setattr(pipeline.Writer, "send", counted)
    return sends


def reference(service: CaseService, where: Where) -> dict[str, Any]:
    """The tables an in-process catch-up writes."""
    views = where("reference")
    fanout(service, views, pipeline=False).catch_up()
    return dump(views)


def test_pipelined_catch_up_writes_what_the_in_process_one_writes(
    logged: tuple[CaseService, Where],
) -> None:
    service, where = logged
    views = where("piped")
    seen: list[int] = []
    built: list[int] = []  # the positions at which the query indexes were there
    f = fanout(service, views, pipeline=True)

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if indexes_built(views, f):
            built.append(done)

    advanced = f.catch_up(progress)
    head = service.recorder.max_notification_id() or 0
    assert advanced == head > 5 * BATCH
    assert seen == sorted(seen) and seen[-1] == head and len(seen) > 5
    share = INDEXES_AT.get(views.dialect)
    if share is not None:  # built by the writer with the batch that passed it, not at the end
        # progress reports the oldest batch in flight as it is acknowledged; the writer may
        # have committed the next PIPELINE_DEPTH batches by then (the index batch among them)
        lag = (PIPELINE_DEPTH + 1) * BATCH
        assert share * head - lag <= built[0] < head and built == seen[seen.index(built[0]) :]
    else:  # PostgreSQL: after the last batch (checked below)
        assert built == []
    assert set(views.positions().values()) == {head}
    piped = dump(views)
    assert sum(len(rows) for tables in piped.values() for rows in tables.values()) > 500
    assert piped == reference(service, where)
    assert indexes_built(views, f)
    if views.dialect == "postgres":  # planner statistics of the filled tables (-1: none)
        tables = [m.t(t) for m in f.models for t in m.tables]
        with views.reading() as cur:
            sql = "SELECT relname, reltuples FROM pg_class WHERE relname = ANY(?)"
            stats = dict(cur.execute(sql, (tables,)).fetchall())
        assert set(stats) == set(tables) and min(stats.values()) >= 0
    assert f.catch_up() == 0  # not behind: nothing to do


def test_a_writer_that_fails_loses_no_batch_and_the_next_catch_up_finishes(
    logged: tuple[CaseService, Where], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, where = logged
    views = where("failing")
    f = fanout(service, views, pipeline=True)
    board = next(m for m in f.models if m.base_name == "board")
    calls = {"n": 0}
    write = board.write

    def broken(cur: Any, effects: list[Any]) -> None:
        calls["n"] += 1
        write(cur, effects)
        if calls["n"] == 5:  # SQL the writer refuses, after the batch's other writes
            cur.execute("INSERT INTO no_such_table VALUES (1)")

    monkeypatch.setattr(board, "write", broken)
    sends = counted_sends(monkeypatch)
    with pytest.raises(WriterFailed, match="no_such_table"):
        f.catch_up()
    assert sends["n"] == 4 + PIPELINE_DEPTH  # the sixth was in flight behind the fifth ...
    assert set(views.positions().values()) == {4 * BATCH}  # ... and refused with it
    assert indexes_built(views, f)  # dropped for the catch-up, built again when it failed
    monkeypatch.undo()
    assert f.catch_up() > 0  # remembered states were forgotten: the tables are the truth
    assert dump(views) == reference(service, where)


def test_a_writer_killed_mid_way_is_reported_and_the_next_catch_up_finishes(
    logged: tuple[CaseService, Where], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, where = logged
    views = where("killed")
    f = fanout(service, views, pipeline=True)

    def kill_before_the_fourth(writer: pipeline.Writer, n: int) -> None:
        if n == 4:
            os.kill(writer.process.pid or 0, signal.SIGKILL)
            writer.process.join(timeout=10)

    counted_sends(monkeypatch, before=kill_before_the_fourth)
    with pytest.raises(WriterFailed, match="died"):
        f.catch_up()
    assert max(views.positions().values()) <= 3 * BATCH
    monkeypatch.undo()
    f.catch_up()
    assert dump(views) == reference(service, where)


def test_after_a_conflict_the_follower_goes_on_in_process(
    logged: tuple[CaseService, Where], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, where = logged
    views = where("conflict")
    f = fanout(service, views, pipeline=True)
    waits = {"n": 0}
    wait = pipeline.Writer.wait

    def moved_on_the_third(self: pipeline.Writer) -> None:
        waits["n"] += 1
        wait(self)
        if waits["n"] == 3:  # as if another follower had written this batch first
            raise Conflict("board.g1 is at log position 60, not 40")

    monkeypatch.setattr(pipeline.Writer, "wait", moved_on_the_third)
    head = service.recorder.max_notification_id() or 0
    f.catch_up()
    assert set(views.positions().values()) == {head}
    assert dump(views) == reference(service, where)


def test_a_position_moved_by_another_follower_refuses_the_whole_batch(tmp_path: Path) -> None:
    views = ViewStore(sqlite_path=str(tmp_path / "v.db"))
    try:
        with views.transaction() as cur:
            cur.execute("CREATE TABLE t (x BIGINT)")
            set_position(cur, "a", 10)
            set_position(cur, "b", 7)
        ops = Recording("sqlite")
        ops.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
        refused = pytest.raises(Conflict, match="b is at log position 7, not 10")
        with refused, views.transaction() as cur:
            apply_parts(cur, [("a", 10, 20, ops.ops), ("b", 10, 20, ops.ops)])
        with views.reading() as cur:
            assert cur.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)
        assert views.positions() == {"a": 10, "b": 7}
        with pytest.raises(TypeError, match="only writes"):
            ops.fetchone()
    finally:
        views.close()


def test_a_live_follower_far_behind_catches_up_through_the_writer_and_heeds_stop(
    logged: tuple[CaseService, Where], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lianhu serve` after downtime: the live follower catches up with the writer process,
    stops between batches when asked (every batch whole), and the next start finishes."""
    service, where = logged
    views = where("live")
    head = service.recorder.max_notification_id() or 0
    monkeypatch.setattr(registry, "CATCH_UP_BATCH", BATCH)
    monkeypatch.setattr(registry, "CATCH_UP_BATCH_POSTGRES", BATCH)
    monkeypatch.setattr(registry, "PIPELINE_FROM", 3 * BATCH)
    stop = threading.Event()

    def stop_after_the_third(writer: pipeline.Writer, n: int) -> None:
        if n == 3:
            stop.set()  # as if the server were shutting down

    sends = counted_sends(monkeypatch, after=stop_after_the_third)
    follower = threading.Thread(
        target=run_live, args=(Projections(views), service.recorder, service.mapper, stop)
    )
    follower.start()
    follower.join(timeout=60)
    if follower.is_alive():  # (never leave it running past the test)
        stop.set()
        follower.join(timeout=60)
        pytest.fail("the live follower did not stop when asked")
    stopped_at = set(views.positions().values())
    assert stopped_at == {3 * BATCH}  # the three batches sent, whole; nothing after the stop

    stop = threading.Event()
    follower = threading.Thread(
        target=run_live, args=(Projections(views), service.recorder, service.mapper, stop)
    )
    follower.start()
    deadline = time.monotonic() + 60
    try:
        while set(views.positions().values()) != {head} and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        follower.join(timeout=60)
    assert sends["n"] > 3  # the second start caught up through the writer too
    assert set(views.positions().values()) == {head}
    assert dump(views) == reference(service, where)


class Unreachable:
    """The event store as the follower sees it, failing on every read while `down`."""

    def __init__(self, recorder: Any) -> None:
        self._recorder = recorder
        self.down = True
        self.failures = 0

    def max_notification_id(self) -> int | None:
        if self.down:
            self.failures += 1
            raise OSError("disk I/O error")  # what a store gone away says
        return self._recorder.max_notification_id()  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._recorder, name)


def test_a_live_follower_backs_off_while_the_store_fails_and_resumes_when_it_is_back(
    logged: tuple[CaseService, Where], caplog: pytest.LogCaptureFixture
) -> None:
    """A store that stays down is retried at growing intervals (not every 0.01 s: the
    interval here), one traceback logged for the run of failures; once it is back, the
    follower catches up to the same views as ever."""
    service, where = logged
    views = where("retry")
    head = service.recorder.max_notification_id() or 0
    store = Unreachable(service.recorder)
    stop = threading.Event()
    follower = threading.Thread(
        target=run_live,
        args=(Projections(views), store, service.mapper, stop),
        kwargs={"interval": 0.01, "retry_max": 0.16},
    )
    with caplog.at_level("INFO", logger="projections.registry"):
        follower.start()
        try:
            time.sleep(1.0)
            store.down = False
            deadline = time.monotonic() + 60
            while set(views.positions().values()) != {head} and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            stop.set()
            follower.join(timeout=60)
    # waits 0.01, 0.02, 0.04, 0.08, then 0.16: about ten tries in a second, not a hundred
    assert 4 <= store.failures <= 15
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "failed a batch; retrying in" in tracebacks[0].getMessage()
    again = [r.getMessage() for r in caplog.records if "again after" in r.getMessage()]
    assert again == [f"projections are following the log again after {store.failures} failures"]
    assert set(views.positions().values()) == {head}
    assert dump(views) == reference(service, where)


@given(
    interval=st.floats(0.001, 10),
    cap=st.floats(0.001, 600),
    failures=st.integers(1, 10_000),
)
def test_the_retry_delay_starts_at_the_interval_doubles_and_stops_at_the_cap(
    interval: float, cap: float, failures: int
) -> None:
    delay = retry_delay(failures, interval, cap)
    assert retry_delay(1, interval, cap) == min(interval, cap)
    assert delay <= cap
    assert retry_delay(failures + 1, interval, cap) == min(cap, 2 * delay) or delay == cap
    assert retry_delay(60, interval, cap) == cap  # a store down for long waits the cap

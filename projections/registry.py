"""The read models, their generations, the follower that keeps them live, and rebuilds.

`Fanout` follows the log for all read models at once: it reads and decodes each
batch of events ONCE (into `Rec`s: the stored JSON, without pydantic models) and hands
it to every model, then writes every model's view
changes and position in ONE transaction (engine.follower's contract, shared by
five models: decoding is most of the cost of following the log, so five
separate followers would pay it five times). Each model keeps its own position,
so a model that is behind (just rebuilt, or new) catches up in the same loop.

The follower remembers the states it last wrote for recent cases (an LRU of
`cache_size` cases per model), so the next batch does not read them back: a
case's events arrive over hours or days, spread over many batches. The memory
is only trusted while the position in the table is the one this follower
wrote itself; any other position (another follower moved it, a rebuild, a
restart) empties it and the states are read from the tables, which are the
truth. A batch's states join the memory only after its transaction commits.

A catch-up far behind the head (a rebuild, `lianhu projections run --once` after
downtime) writes its views from a second process while it folds the next batch
(projections.pipeline), with the same one-transaction contract.

A rebuild fills generation N+1 of one model from position 0 while generation N
stays live, then switches `lianhu_generations` to N+1 in one transaction and
drops N. Readers look the generation up per query; the live follower notices
the switch at its next step.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Mapper
from eventsourcing.sqlite import SQLiteApplicationRecorder

from engine.follower import Progress
from engine.viewstore import ViewCursor, ViewStore, locked_position, set_position
from projections.board import Board
from projections.case_list import CaseList
from projections.distortion import Distortion
from projections.fold import (
    Decoder,
    FoldModel,
    Rec,
    at_generation,
    case_key_of_hex,
    no_cyclic_gc,
)
from projections.indicators import Indicators
from projections.pipeline import Conflict, Part, Recording, Writer
from projections.response_times import ResponseTimes

log = logging.getLogger(__name__)

MODELS: dict[str, type[FoldModel[Any]]] = {
    "case_list": CaseList,
    "response_times": ResponseTimes,
    "distortion": Distortion,
    "board": Board,
    "indicators": Indicators,
}

CATCH_UP_BATCH = 10_000  # events per transaction when catching up or rebuilding (SQLite)
# PostgreSQL's catch-up is bound by its writer, which rewrites every roll-up row a batch
# touches: batches of 30,000 caught up 214,721 events in 12.6-15.7 s against 15.3-18.4 s
# with 10,000 (50,000: no faster). SQLite's is bound by the folds: no measurable gain,
# and the follower's memory doubles (222 -> 490 MB at 10^6 events).
CATCH_UP_BATCH_POSTGRES = 30_000
LIVE_BATCH = 5_000  # at most, live: a batch is what arrived since the last one
# events behind from which a catch-up starts a writer process (starting one takes ~0.5 s)
PIPELINE_FROM = 50_000
# batches sent to the writer process and not yet committed, at most: with two, a batch
# that takes the writer longer than usual does not stop the follower folding
PIPELINE_DEPTH = 2
# A catch-up from position 0 fills its tables without their query indexes. Built after the
# last batch, they were the last ~5 s of a 10^6-event SQLite catch-up with the folding
# process idle; the writer builds them with the batch that passes this share of the
# catch-up instead, while the follower folds on with up to BUILDING_DEPTH batches in
# flight, and keeps them up to date for the rest (alternating on the same log: 55.1 ->
# 49.6 s and 58.6 -> 54.1 s at 10^6; the follower's memory 220 -> 400 MB). Not on
# PostgreSQL, whose catch-up is bound by its writer, which builds them either way
# (alternating on 214,721 events: 15.7 and 18.3 s against 16.9 and 16.6 s at the end).
INDEXES_AT: dict[str, float] = {"sqlite": 0.8}
BUILDING_DEPTH = 8
RETRY_MAX = 30.0  # seconds between a live follower's retries, at most, while the store fails

GENERATIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS lianhu_generations (name TEXT PRIMARY KEY, generation BIGINT "
    "NOT NULL)"
)


class Projections:
    """The read models of one view store, each at its current generation."""

    def __init__(self, views: ViewStore) -> None:
        self.views = views
        with views.transaction() as cur:
            cur.execute(GENERATIONS_DDL)
        self._bound: dict[tuple[str, int], FoldModel[Any]] = {}

    def generations(self, cur: ViewCursor | None = None) -> dict[str, int]:
        if cur is None:
            with self.views.reading() as c:
                return self.generations(c)
        rows = cur.execute("SELECT name, generation FROM lianhu_generations").fetchall()
        found = {str(n): int(g) for n, g in rows}
        return {name: found.get(name, 1) for name in MODELS}

    def bound(self, name: str, generation: int) -> FoldModel[Any]:
        key = (name, generation)
        if key not in self._bound:
            self._bound[key] = at_generation(MODELS[name], generation)
        return self._bound[key]

    def model(self, name: str, cur: ViewCursor | None = None) -> FoldModel[Any]:
        """`name` at its current generation (tables created if missing)."""
        if name not in MODELS:
            raise KeyError(f"no read model {name!r}; known: {', '.join(MODELS)}")
        model = self.bound(name, self.generations(cur)[name])
        return model

    def current(self) -> list[FoldModel[Any]]:
        gens = self.generations()
        return [self.bound(name, gens[name]) for name in MODELS]


class Fanout:
    """Follows the log for several read models, decoding each event once per batch."""

    def __init__(
        self,
        recorder: ApplicationRecorder,
        mapper: Mapper[UUID],
        views: ViewStore,
        models: Sequence[FoldModel[Any]],
        *,
        batch_size: int = 1000,
        cache_size: int = 20_000,
        pipeline: bool = False,
    ) -> None:
        self.recorder, self.mapper, self.views = recorder, mapper, views
        self.models = list(models)
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.pipeline = pipeline  # catch_up writes in a second process when far behind
        self.pipeline_from = PIPELINE_FROM
        self._decode = Decoder(mapper)
        # per model: recent cases' states as last written, valid at position _written[name]
        self._cache: dict[str, dict[str, Any]] = {m.name: {} for m in self.models}
        self._written: dict[str, int] = {}
        with views.transaction() as cur:
            for model in self.models:
                model.create(cur)

    def positions(self) -> dict[str, int]:
        known = self.views.positions()
        return {m.name: known.get(m.name, 0) for m in self.models}

    def head(self) -> int:
        return self.recorder.max_notification_id() or 0

    def step(self) -> int:
        """Process the next batch for every model behind; log positions advanced (0: none)."""
        with no_cyclic_gc():
            return self._step()

    def _read(self, start: int) -> tuple[int, list[tuple[int, Rec]]] | None:
        """The batch after log position `start`: its last position and its case events as
        (position, Rec); None at the head.

        On SQLite the rows are read straight from the recorder's table (the columns its
        `select_notifications` reads): building a `Notification` and a UUID per event
        cost a tenth of a catch-up; a case's key is made once per case, not per event."""
        decode = self._decode
        if isinstance(self.recorder, SQLiteApplicationRecorder):
            table = self.recorder.events_table_name
            with self.recorder.datastore.transaction(commit=False) as c:
                c.execute(
                    f"SELECT rowid, originator_id, topic, state FROM {table} WHERE rowid>? "
                    "ORDER BY rowid LIMIT ?",
                    (start, self.batch_size),
                )
                rows = c.fetchall()
            if not rows:
                return None
            stored_as_uuid = self.recorder.datastore.originator_id_type == "uuid"
            return int(rows[-1][0]), decode.many(rows, case_key_of_hex if stored_as_uuid else str)
        notifications = self.recorder.select_notifications(
            start=start, limit=self.batch_size, inclusive_of_start=False
        )
        if not notifications:
            return None
        rows = [(n.id, n.originator_id, n.topic, n.state) for n in notifications]
        return notifications[-1].id, decode.many(rows)

    def _step(self) -> int:
        positions = self.positions()
        start = min(positions.values())
        read = self._read(start)
        if read is None:
            return 0
        last, batch = read
        recs = [rec for _, rec in batch]
        written: dict[str, dict[str, Any]] = {}
        with self.views.transaction() as cur:
            for model in self.models:
                now = locked_position(cur, model.name)
                cache = self._cache[model.name]
                if self._written.get(model.name) != now:
                    cache.clear()  # not the position this follower left: trust the tables only
                if now != positions[model.name] or now >= last:
                    continue  # another follower moved it, or it is already past this batch
                part = [rec for i, rec in batch if i > now] if now > start else recs
                written[model.name] = model.apply(cur, part, cache)
                set_position(cur, model.name, last)
        for name, states in written.items():  # committed: remember them
            self._remember(self._cache[name], states)
            self._written[name] = last
        return last - start

    def _remember(
        self, cache: dict[str, Any], states: dict[str, Any], size: int | None = None
    ) -> None:
        for key, state in states.items():
            cache.pop(key, None)  # re-inserted at the end: the dict's order is the LRU order
            cache[key] = state
        excess = len(cache) - (size if size is not None else self.cache_size)
        if excess > 0:
            for key in list(itertools.islice(cache, excess)):
                del cache[key]

    def catch_up(
        self, progress: Progress | None = None, stop: threading.Event | None = None
    ) -> int:
        """Process batches until every model is at the head of the log (as it was when
        called), or until `stop` is set (checked between batches); returns the log
        positions advanced.

        Far behind (more than `pipeline_from` events) and with `pipeline`, the view
        writes go to a second process while this one folds the next batch
        (`_pipelined`). Models starting from position 0 (a rebuild's fresh generation,
        new views) are filled without their secondary indexes, which are built once:
        by the writer process with the batch that passes INDEXES_AT of the way (SQLite),
        or else
        at the end (and by `create` when a follower starts, if this was interrupted):
        queries meanwhile see an incomplete view anyway.
        """
        total, head = 0, self.head()
        positions = self.positions()
        behind = head - min(positions.values(), default=head)
        fresh = [m for m in self.models if positions[m.name] == 0] if head else []
        if fresh:
            with self.views.transaction() as cur:
                for model in fresh:
                    model.drop_indexes(cur)
        try:
            if self.pipeline and behind > max(2 * self.batch_size, self.pipeline_from):
                total += self._pipelined(head, progress, stop, {m.name for m in fresh})
            while min(self.positions().values()) < head:
                if stop is not None and stop.is_set():
                    break
                advanced = self.step()
                if not advanced:
                    break
                total += advanced
                if progress is not None:
                    progress(min(self.positions().values()), head)
        finally:
            if fresh:
                with self.views.transaction() as cur:
                    for model in fresh:
                        model.create_indexes(cur)
                        model.analyze(cur)
        return total

    def _pipelined(
        self,
        head: int,
        progress: Progress | None,
        stop: threading.Event | None = None,
        fresh: Collection[str] = (),
    ) -> int:
        """Catch up to `head` with the writes in a writer process (projections.pipeline),
        up to PIPELINE_DEPTH batches in flight. The query indexes of the `fresh` models
        (filled from position 0 without them) are built with the batch that passes
        INDEXES_AT of the way on SQLite, with up to BUILDING_DEPTH batches in flight until
        it commits. Returns the log positions advanced; after a conflict with another
        follower it returns early and the caller goes on batch by batch."""
        positions = self.positions()
        for model in self.models:
            if self._written.get(model.name) != positions[model.name]:
                self._cache[model.name].clear()
        begin = min(positions.values())
        share = INDEXES_AT.get(self.views.dialect)
        build_at = begin + share * (head - begin) if fresh and share is not None else None
        building: int | None = None  # the last position of the batch building the indexes
        # the states of the batches in flight stay remembered until they commit
        deepest = PIPELINE_DEPTH if build_at is None else BUILDING_DEPTH
        size = max(self.cache_size, (deepest + 1) * self.batch_size)
        writer, done = Writer(self.views), begin
        in_flight: collections.deque[tuple[int, list[str]]] = collections.deque()

        def committed() -> None:  # the oldest batch in flight is in the tables
            nonlocal done, building
            writer.wait()
            last, names = in_flight.popleft()
            self._written.update(dict.fromkeys(names, last))
            done = last
            if building is not None and last >= building:
                building = None
            if progress is not None:
                progress(last, head)

        try:
            # the cyclic GC stays off throughout: a collection between batches would rescan
            # every remembered state (folds make no reference cycles)
            with no_cyclic_gc():
                while (start := min(positions.values())) < head:
                    if stop is not None and stop.is_set():
                        break  # the batches in flight still commit
                    index = build_at is not None and start + self.batch_size >= build_at
                    folded_batch = self._fold_recorded(start, positions, fresh if index else ())
                    if folded_batch is None:
                        break
                    last, parts, folded = folded_batch
                    if index:
                        build_at, building = None, last
                    depth = PIPELINE_DEPTH if building is None else BUILDING_DEPTH
                    while len(in_flight) >= depth:
                        committed()
                    writer.send(parts)
                    in_flight.append((last, list(folded)))
                    for name, states in folded.items():
                        self._remember(self._cache[name], states, size)
                        positions[name] = last
                while in_flight:
                    committed()
        except Conflict as e:
            self._forget()
            writer.close()
            log.warning("%s (another follower moved it); going on in-process", e)
            return done - begin
        except BaseException:
            self._forget()
            writer.close(wait=False)
            raise
        writer.close()
        return done - begin

    def _fold_recorded(
        self, start: int, positions: dict[str, int], index: Collection[str] = ()
    ) -> tuple[int, list[Part], dict[str, dict[str, Any]]] | None:
        """Read, decode and fold the batch after `start` for every model behind, recording
        the writes: (its last log position, each model's part, the states folded). The
        models named in `index` build their query indexes too, after the batch's rows."""
        read = self._read(start)
        if read is None:
            return None
        last, batch = read
        parts: list[Part] = []
        folded: dict[str, dict[str, Any]] = {}
        recs = [rec for _, rec in batch]
        with self.views.reading() as reader:
            for model in self.models:
                now = positions[model.name]
                if now >= last:
                    continue
                part = [rec for i, rec in batch if i > now] if now > start else recs
                ops = Recording(self.views.dialect)
                folded[model.name] = model.apply(ops, part, self._cache[model.name], reader=reader)
                if model.name in index:
                    model.create_indexes(ops)
                parts.append((model.name, now, last, ops.ops))
        return last, parts, folded

    def _forget(self) -> None:
        """Trust nothing remembered: the tables are the truth."""
        for cache in self._cache.values():
            cache.clear()
        self._written.clear()


def catch_up_batch(views: ViewStore) -> int:
    """Events per transaction of a catch-up or a rebuild on this store, by default."""
    return CATCH_UP_BATCH_POSTGRES if views.dialect == "postgres" else CATCH_UP_BATCH


def run_live(
    projections: Projections,
    recorder: ApplicationRecorder,
    mapper: Mapper[UUID],
    stop: threading.Event,
    *,
    interval: float = 0.2,
    batch_size: int = LIVE_BATCH,
    retry_max: float = RETRY_MAX,
) -> None:
    """Keep every read model live until `stop` is set (a worker of `lianhu serve`).

    `batch_size` only caps a batch: live, a batch is what arrived since the last one.
    More than PIPELINE_FROM events behind (after downtime, or with new views), it first
    catches up in batches of `catch_up_batch` with the view writer process, heeding `stop`
    between batches.

    A failed batch (the store unreachable, the disk full) is retried after `interval`,
    then after twice as long each time it fails again, up to `retry_max` seconds, and at
    `interval` again once a batch succeeds: a store that stays down is not hammered (a
    catch-up would start a writer process each time), nor the log filled with its
    tracebacks (the first of a run of failures is logged in full, the others in a line)."""
    fanout: Fanout | None = None
    failures = 0
    while not stop.is_set():
        try:
            models = projections.current()
            if fanout is None or [m.name for m in fanout.models] != [m.name for m in models]:
                fanout = Fanout(recorder, mapper, projections.views, models, batch_size=batch_size)
                behind = fanout.head() - min(fanout.positions().values(), default=0)
                if behind > PIPELINE_FROM:  # after downtime, or new views: catch up first
                    log.info("projections are %d events behind; catching up", behind)
                    Fanout(
                        recorder, mapper, projections.views, models,
                        batch_size=catch_up_batch(projections.views), pipeline=True,
                    ).catch_up(stop=stop)  # fmt: skip
                    continue
            advanced = fanout.step()
        except Exception as e:  # a view must survive a store hiccup and try again
            fanout, advanced = None, 0
            failures += 1
            delay = retry_delay(failures, interval, retry_max)
            if failures == 1:
                log.exception("projections failed a batch; retrying in %.3g s", delay)
            else:
                log.warning(
                    "projections failed %d times in a row (%s: %s); retrying in %.3g s",
                    failures, type(e).__name__, e, delay,
                )  # fmt: skip
            stop.wait(delay)
            continue
        if failures:
            log.info("projections are following the log again after %d failures", failures)
            failures = 0
        if not advanced:
            stop.wait(interval)


def retry_delay(failures: int, interval: float, cap: float) -> float:
    """Seconds to wait after the `failures`-th failure in a row: `interval`, doubling, at
    most `cap`."""
    return float(min(cap, interval * 2 ** min(failures - 1, 30)))


def catch_up_all(
    projections: Projections,
    recorder: ApplicationRecorder,
    mapper: Mapper[UUID],
    progress: Progress | None = None,
    *,
    batch_size: int | None = None,
    pipeline: bool = True,
) -> int:
    """Bring every read model up to the head of the log now (when far behind, with the
    view writes in a second process: `pipeline`)."""
    fanout = Fanout(
        recorder, mapper, projections.views, projections.current(),
        batch_size=batch_size or catch_up_batch(projections.views),
        pipeline=pipeline,
    )  # fmt: skip
    return fanout.catch_up(progress)


def rebuild(
    projections: Projections,
    recorder: ApplicationRecorder,
    mapper: Mapper[UUID],
    name: str,
    progress: Progress | None = None,
    *,
    batch_size: int | None = None,
    switch: Callable[[], None] | None = None,
    pipeline: bool = True,
) -> int:
    """Replay the log from 0 into a fresh generation of `name`, then switch to it.

    Returns the new generation. The old generation serves readers until the switch,
    which is one transaction; its tables are dropped after.
    """
    generations = rebuild_all(
        projections, recorder, mapper, [name], progress, batch_size=batch_size, switch=switch,
        pipeline=pipeline,
    )  # fmt: skip
    return generations[name]


def rebuild_all(
    projections: Projections,
    recorder: ApplicationRecorder,
    mapper: Mapper[UUID],
    names: Sequence[str] = tuple(MODELS),
    progress: Progress | None = None,
    *,
    batch_size: int | None = None,
    switch: Callable[[], None] | None = None,
    pipeline: bool = True,
) -> dict[str, int]:
    """Rebuild several read models in one pass over the log (each event read and decoded
    once for all of them), then switch them all to their new generations in one
    transaction. Returns each one's new generation."""
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise KeyError(f"no read model {unknown[0]!r}; known: {', '.join(MODELS)}")
    old = {name: projections.generations()[name] for name in names}
    fresh = [projections.bound(name, old[name] + 1) for name in names]
    with projections.views.transaction() as cur:
        for model in fresh:
            model.drop(cur)  # leftovers of an interrupted rebuild
            set_position(cur, model.name, 0)
    fanout = Fanout(
        recorder,
        mapper,
        projections.views,
        fresh,
        batch_size=batch_size or catch_up_batch(projections.views),
        pipeline=pipeline,
    )
    fanout.catch_up(progress)
    if switch is not None:
        switch()
    with projections.views.transaction() as cur:
        for name in names:
            cur.execute(
                "INSERT INTO lianhu_generations (name, generation) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET generation = excluded.generation",
                (name, old[name] + 1),
            )
    with projections.views.transaction() as cur:
        for name in names:
            projections.bound(name, old[name]).drop(cur)
            cur.execute("DELETE FROM lianhu_positions WHERE name = ?", (f"{name}.g{old[name]}",))
    return {name: old[name] + 1 for name in names}

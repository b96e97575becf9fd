"""A long catch-up with its view writes in a second process.

Catching up is half Python (reading, decoding, folding) and half SQL (inserting facts,
upserting states and roll-ups, committing). One Python thread cannot overlap the two:
the sqlite3 module takes the GIL back for every row of an `executemany`, so a writer
thread would stall on each row while the folding thread holds it. A writer process
can: the follower folds batch N+1 while the writer commits batch N.

The contract is unchanged: each batch's view changes and its positions commit in ONE
transaction, in the writer. The follower sends the writes it would have made (recorded
by `Recording`, a write-only cursor), the position each model was at and the one it
moves to; the writer checks each position in its transaction (FOR UPDATE on
PostgreSQL) and refuses the whole batch if another follower moved one (`Conflict`):
the follower then forgets what it folded and goes on batch by batch in-process.

The follower keeps at most PIPELINE_DEPTH (2) batches in flight (BUILDING_DEPTH, 8, while
the writer builds a fresh catch-up's query indexes with one of them). It remembers the
states of the batches in flight before the writer has committed them, so the next batch
folds on them; a state it does not remember was last written by an earlier, committed
batch, so reading it from a fresh snapshot is exact. If the writer fails or dies, the
follower forgets every remembered state (the tables are the truth) and raises; nothing
of the failed batch was written, nor of any sent after it (each expects the position
the failed one would have left, and is refused).
"""

from __future__ import annotations

import importlib
import multiprocessing
import pickle
import queue
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from engine.viewstore import Dialect, ViewCursor, ViewStore, locked_position, set_position

# (sql, parameters or rows, "execute" | "executemany" | "upsert_many"), or
# ("module:function", arguments, "call") for projections.fold.write_call
Op = tuple[str, Any, str]
Part = tuple[str, int, int, list[Op]]  # (model name, position expected, new position, writes)


class Recording:
    """A write-only ViewCursor: keeps the statements a model's writes would execute."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.ops: list[Op] = []

    def execute(self, sql: str, params: Any = ()) -> Recording:
        self.ops.append((sql, tuple(params), "execute"))
        return self

    def executemany(self, sql: str, rows: Any) -> None:
        self.ops.append((sql, _plain(rows), "executemany"))

    def upsert_many(self, sql: str, rows: Any) -> None:
        self.ops.append((sql, _plain(rows), "upsert_many"))

    def record_call(self, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        """Have the writer run `fn(cursor, *args)` (projections.fold.write_call)."""
        self.ops.append((f"{fn.__module__}:{fn.__qualname__}", args, "call"))

    def fetchone(self) -> tuple[Any, ...] | None:
        raise TypeError("a recording cursor only writes; read through a reader cursor")

    def fetchall(self) -> list[tuple[Any, ...]]:
        raise TypeError("a recording cursor only writes; read through a reader cursor")


def _plain(rows: Any) -> Any:
    """Rows as plain tuples: a NamedTuple row would be pickled by reference to its class,
    at twice the cost."""
    if rows and type(rows[0]) is not tuple:
        return list(map(tuple, rows))
    return rows


# What functions run by the writer (projections.fold.write_call) may remember across the
# batches of one catch-up; None outside a writer process. Emptied whenever a batch fails or
# conflicts, so it only ever holds what committed batches wrote; what has a `flush(cursor)`
# method is flushed in one last transaction when the writer ends (`_flush`).
_scratch: dict[str, Any] | None = None


def scratch() -> dict[str, Any] | None:
    """The writer process's memory across batches (None when not in a writer process)."""
    return _scratch


class Conflict(Exception):
    """Another follower moved a model's position: the batch was not written."""


AGAIN = "the views stop at the last whole batch; run the catch-up again to go on"


class WriterFailed(RuntimeError):
    """The writer process failed or died; nothing of the batch in flight was written."""


def apply_parts(cur: ViewCursor, parts: list[Part]) -> None:
    """Write one batch of several models in `cur`'s transaction, positions checked first."""
    for name, expected, last, ops in parts:
        now = locked_position(cur, name)
        if now != expected:
            raise Conflict(f"{name} is at log position {now}, not {expected}")
        for sql, args, how in ops:
            if how == "executemany":
                cur.executemany(sql, args)
            elif how == "upsert_many":
                cur.upsert_many(sql, args)
            elif how == "call":
                module, function = sql.split(":")
                getattr(importlib.import_module(module), function)(cur, *args)
            else:
                cur.execute(sql, args)
        set_position(cur, name, last)


def write_views(views: ViewStore, conn: Connection) -> None:
    """The writer process: one transaction per message, answered ("ok" | "conflict" |
    "error", detail). Ends at None, or when the follower's end of the pipe closes."""
    global _scratch
    _scratch = {}
    try:
        with views.bulk_writes():
            _write_batches(views, conn)
            _flush(views, _scratch)
    finally:
        _scratch = None
        views.close()


def _receive(conn: Connection, inbox: queue.SimpleQueue[bytes]) -> None:
    """Take messages off the pipe as they come (a thread of the writer process): the
    follower's send of the next batch returns at once instead of waiting, on a full pipe,
    until the writer has committed the batch before. b"" for the end of the pipe."""
    try:
        while message := conn.recv_bytes():
            inbox.put(message)
    except (EOFError, OSError):
        pass  # the follower is gone: nothing half-written (no open transaction)
    inbox.put(b"")


def _write_batches(views: ViewStore, conn: Connection) -> None:
    inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    threading.Thread(target=_receive, args=(conn, inbox), name="receive", daemon=True).start()
    while True:
        message = inbox.get()
        if not message:
            return
        parts = pickle.loads(message)  # from the follower that spawned this process
        try:
            with views.transaction() as cur:
                apply_parts(cur, parts)
            conn.send(("ok", ""))
        except Conflict as e:
            _forget()
            conn.send(("conflict", str(e)))
        except Exception as e:  # noqa: BLE001 (the follower raises it; the writer waits)
            _forget()
            conn.send(("error", f"{type(e).__name__}: {e}"))


def _flush(views: ViewStore, memory: dict[str, Any]) -> None:
    """The last transaction of a writer: what it remembers with a `flush(cursor)` method
    (rows held back, projections.measures.HeldRollups) written out. Positions do not move:
    the views are as whole before it as after (a writer stopped before it leaves them so,
    and the next write of the tables writes what was held)."""
    held = [m for m in memory.values() if hasattr(m, "flush")]
    if held:
        with views.transaction() as cur:
            for m in held:
                m.flush(cur)
        memory.clear()


def _forget() -> None:
    """A batch was rolled back: what it wrote to the scratch memory never happened."""
    if _scratch is not None:
        _scratch.clear()


class Writer:
    """The writer process and its pipe, as the follower sees them."""

    def __init__(self, views: ViewStore) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, theirs = context.Pipe()
        self.process = context.Process(
            target=write_views, args=(views, theirs), name="lianhu-view-writer", daemon=True
        )
        self.process.start()
        theirs.close()
        self.pending = 0  # batches sent and not yet answered

    def send(self, parts: list[Part]) -> None:
        # pickle of plain tuples: per batch of 10,000 events 25 ms to write and 25 ms to
        # read, against 25 + 109 ms for JSON (orjson: it builds every value anew) and
        # 38 + 25 ms for marshal; a string shared by many rows (a unit, a category) is
        # written once and read back as one object
        message = pickle.dumps(parts, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._conn.send_bytes(message)
        except OSError as e:
            raise WriterFailed(self._died()) from e
        self.pending += 1

    def _died(self) -> str:
        self.process.join(timeout=1)
        return f"the view writer process died (exit code {self.process.exitcode}); {AGAIN}"

    def wait(self) -> None:
        """Until the oldest batch in flight is committed; raises Conflict or WriterFailed."""
        if not self.pending:
            return
        self.pending -= 1
        try:
            status, detail = self._conn.recv()
        except (EOFError, OSError) as e:
            raise WriterFailed(self._died()) from e
        if status == "conflict":
            raise Conflict(detail)
        if status != "ok":
            raise WriterFailed(f"the view writer failed: {detail}; {AGAIN}")

    def close(self, *, wait: bool = True) -> None:
        try:
            if wait and self.process.is_alive():
                self._conn.send_bytes(b"")
                self.process.join(timeout=120)  # its last checkpoint
        except (OSError, ValueError):
            pass
        finally:
            if self.process.is_alive():
                self.process.kill()
                self.process.join(timeout=5)
            self._conn.close()

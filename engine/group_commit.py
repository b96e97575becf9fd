"""Group commit: concurrent filings share one transaction.

One petition per transaction caps near 500-900/s on PostgreSQL here, because
each commit waits for its own fsync. A caller that finds nobody saving becomes
the leader: it saves its own filing at once (no queue, no Future, so a lone
filing pays no extra latency), then everything the others queued meanwhile, in
shared transactions of up to `max_batch`; the others wait for their result.

If the shared transaction fails on a conflict (an idempotency key or a case
number already taken), the leader saves each filing on its own, so a conflict
in one never fails the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from engine.errors import VersionConflict

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Runs `save_many` on batches of concurrently submitted items."""

    def __init__(
        self,
        save_many: Callable[[Sequence[T]], None],
        save_one: Callable[[T], R],
        result: Callable[[T], R],
        *,
        max_batch: int = 200,
    ) -> None:
        self._save_many = save_many
        self._save_one = save_one
        self._result = result
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[tuple[T, Future[R]]] = []
        self._leader_active = False
        self.batches = 0
        self.items = 0

    def submit(self, item: T) -> R:
        with self._lock:
            alone = not self._leader_active
            if alone:
                self._leader_active = True  # nobody is saving and nothing is queued
            else:
                future: Future[R] = Future()
                self._queue.append((item, future))
        if not alone:
            return future.result()
        # The lone caller saves its own item at once, with no Future to hand it over;
        # whatever others queue meanwhile, it then saves as leader, as before.
        try:
            self.batches += 1
            self.items += 1
            return self._save_one(item)
        finally:
            self._lead()

    def _lead(self) -> None:
        while True:
            with self._lock:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                if not batch:
                    self._leader_active = False
                    return
            self._commit(batch)

    def _commit(self, batch: list[tuple[T, Future[R]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        if len(batch) > 1:
            try:
                self._save_many([item for item, _ in batch])
            except VersionConflict:
                pass  # somebody's key or number clashed: save each alone below
            except BaseException as error:  # noqa: BLE001 - every waiter must hear of it
                for _, future in batch:
                    future.set_exception(error)
                return
            else:
                for item, future in batch:
                    future.set_result(self._result(item))
                return
        for item, future in batch:
            try:
                future.set_result(self._save_one(item))
            except BaseException as error:  # noqa: BLE001 - handed to the waiting caller
                future.set_exception(error)

"""Group commit: a lone caller saves at once; callers that arrive meanwhile share a batch."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from uuid import uuid4

import pytest

from engine.errors import VersionConflict
from engine.group_commit import GroupCommit


class Store:
    """Records what was saved how; the first lone save can be held until released."""

    def __init__(self, *, hold_first: bool = False, clash: int | None = None) -> None:
        self.alone: list[int] = []
        self.batches: list[list[int]] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.clash = clash

    def save_many(self, items: Sequence[int]) -> None:
        if self.clash in items:
            raise VersionConflict(uuid4(), None, None)
        self.batches.append(list(items))

    def save_one(self, item: int) -> str:
        self.holding.set()
        assert self.release.wait(10)
        if item < 0:
            raise ValueError(f"refused {item}")
        self.alone.append(item)
        return f"saved {item}"


def commit_for(store: Store) -> GroupCommit[int, str]:
    return GroupCommit(store.save_many, store.save_one, lambda item: f"saved {item}")


def test_a_lone_caller_saves_alone_and_hands_leadership_back() -> None:
    store = Store()
    commit = commit_for(store)

    assert commit.submit(1) == "saved 1"
    assert commit.submit(2) == "saved 2"
    assert store.alone == [1, 2] and store.batches == []
    assert (commit.batches, commit.items) == (2, 2)


def test_a_lone_callers_error_is_its_own_and_leaves_no_leader_behind() -> None:
    store = Store()
    commit = commit_for(store)

    with pytest.raises(ValueError, match="refused -1"):
        commit.submit(-1)

    assert commit.submit(3) == "saved 3"


class Callers:
    """Threads each submitting one item; what each caller got back (or raised)."""

    def __init__(self, commit: GroupCommit[int, str], items: list[int]) -> None:
        self.results: dict[int, object] = {}
        self.threads = [threading.Thread(target=self._call, args=(commit, i)) for i in items]
        for t in self.threads:
            t.start()

    def _call(self, commit: GroupCommit[int, str], item: int) -> None:
        try:
            self.results[item] = commit.submit(item)
        except Exception as error:  # noqa: BLE001 - the test looks at what each caller got
            self.results[item] = error

    def join(self) -> dict[int, object]:
        for t in self.threads:
            t.join(10)
        return self.results


def queued(commit: GroupCommit[int, str], n: int) -> None:
    deadline = time.monotonic() + 10
    while len(commit._queue) < n and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(commit._queue) == n


def test_callers_arriving_during_a_save_share_the_next_transaction() -> None:
    store = Store(hold_first=True)
    commit = commit_for(store)
    first = Callers(commit, [0])
    assert store.holding.wait(10)  # the leader is saving item 0 alone

    others = Callers(commit, list(range(1, 9)))
    queued(commit, 8)
    store.release.set()

    assert first.join() == {0: "saved 0"}
    assert others.join() == {i: f"saved {i}" for i in range(1, 9)}
    assert store.alone == [0]
    assert [sorted(b) for b in store.batches] == [list(range(1, 9))]
    assert (commit.batches, commit.items) == (2, 9)


def test_a_conflict_in_a_shared_transaction_saves_each_alone() -> None:
    store = Store(hold_first=True, clash=5)
    commit = commit_for(store)
    first = Callers(commit, [0])
    assert store.holding.wait(10)

    others = Callers(commit, [4, 5, 6])
    queued(commit, 3)
    store.release.set()

    assert first.join() == {0: "saved 0"}
    assert others.join() == {4: "saved 4", 5: "saved 5", 6: "saved 6"}
    assert store.batches == []
    assert sorted(store.alone) == [0, 4, 5, 6]

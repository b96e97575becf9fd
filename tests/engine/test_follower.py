"""The log follower: batches and their positions commit together, on both stores."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from engine import commands as c
from engine.follower import Follower, Tracked
from engine.service import CaseService
from engine.values import Reporter
from engine.viewstore import ViewCursor, ViewStore

HOUSEHOLD = "510123104201-01-01"


class EventCounts:
    """A toy read model: how many events of each name."""

    name: ClassVar[str] = "event_counts"
    topics: ClassVar[tuple[str, ...]] = ()

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after = fail_after
        self.applied = 0

    def create(self, cur: ViewCursor) -> None:
        cur.execute("CREATE TABLE IF NOT EXISTS event_counts (name TEXT PRIMARY KEY, n BIGINT)")

    def apply(self, cur: ViewCursor, batch: Sequence[Tracked]) -> None:
        for tracked in batch:
            cur.execute(
                "INSERT INTO event_counts (name, n) VALUES (?, 1) "
                "ON CONFLICT (name) DO UPDATE SET n = event_counts.n + 1",
                (tracked.event.name,),
            )
            self.applied += 1
            if self.fail_after is not None and self.applied >= self.fail_after:
                raise RuntimeError("the process died here")


def counts(views: ViewStore) -> dict[str, int]:
    with views.transaction() as cur:
        return {
            str(k): int(v) for k, v in cur.execute("SELECT name, n FROM event_counts").fetchall()
        }


@pytest.fixture
def views(store: dict[str, str], tmp_path: Path) -> Iterator[ViewStore]:
    if store["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
        url = "postgresql://{u}@{h}:{p}/{d}".format(
            u=store["POSTGRES_USER"],
            h=store["POSTGRES_HOST"],
            p=store["POSTGRES_PORT"],
            d=store["POSTGRES_DBNAME"],
        )
        vs = ViewStore(postgres_url=url)
    else:
        vs = ViewStore(sqlite_path=str(tmp_path / "views.db"))
    yield vs
    vs.close()


def file_some(service: CaseService, n: int) -> None:
    for i in range(n):
        service.file_petition(
            c.FilePetition(
                household_unit=HOUSEHOLD,
                category="neighbour_dispute",
                title=f"噪音{i}",
                description="楼上装修",
                reporter=Reporter(),
            )
        )


def test_catch_up_counts_every_case_event_once(any_service: CaseService, views: ViewStore) -> None:
    file_some(any_service, 25)
    follower = Follower(
        any_service.recorder, any_service.mapper, views, EventCounts(), batch_size=7
    )

    follower.catch_up()
    follower.catch_up()

    assert counts(views) == {"PetitionFiled": 25, "CaseRouted": 25}
    assert follower.position == any_service.recorder.max_notification_id()


def test_a_batch_that_fails_leaves_no_trace_and_is_redone(
    any_service: CaseService, views: ViewStore
) -> None:
    file_some(any_service, 10)
    dying = Follower(
        any_service.recorder, any_service.mapper, views, EventCounts(fail_after=12), batch_size=9
    )

    with pytest.raises(RuntimeError):
        dying.catch_up()
    done_before_crash = dying.position
    Follower(
        any_service.recorder, any_service.mapper, views, EventCounts(), batch_size=9
    ).catch_up()

    assert done_before_crash == 9  # the first batch committed, the second did not
    assert counts(views) == {"PetitionFiled": 10, "CaseRouted": 10}


def test_two_followers_of_one_model_never_apply_a_batch_twice(
    any_service: CaseService, views: ViewStore
) -> None:
    file_some(any_service, 20)
    a = Follower(any_service.recorder, any_service.mapper, views, EventCounts(), batch_size=5)
    b = Follower(any_service.recorder, any_service.mapper, views, EventCounts(), batch_size=5)

    while a.step() + b.step():
        pass

    assert counts(views) == {"PetitionFiled": 20, "CaseRouted": 20}

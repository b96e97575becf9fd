"""as_of=T answers from the events recorded up to T: the same figures as a view built
from only those events."""

from __future__ import annotations

import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.events import CaseEvent
from engine.viewstore import ViewStore
from projections import reports
from projections.fold import record_of
from projections.measures import Filters
from projections.registry import MODELS, Projections
from tests.projections.test_folds import RULES, world


def _figures(p: Projections, f: Filters, at: float) -> dict[str, object]:
    out: dict[str, object] = {
        "board": reports.board(p, at, RULES.warn_share, None),
        "indicators": reports.indicators(p, f, at, RULES.warn_share),
        "distortion": reports.distortion(p, f),
        "heatmap": reports.heatmap(p, f),
    }
    for kind in ("assignment", "first", "resolution"):
        out[kind] = reports.response_times(p, kind, f, "level")
    return out


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 10_000), moment=st.floats(0.05, 0.95))
def test_as_of_equals_a_view_of_the_log_cut_at_that_moment(seed: int, moment: float) -> None:
    with world(seed, cases=8, steps=80) as (service, live, ids, clock):
        first = service.history(ids[0])[0].timestamp.timestamp()
        at = first + moment * (clock.now().timestamp() - first)
        notifications = service.recorder.select_notifications(start=1, limit=100_000)
        cut = [
            record_of(e)
            for n in notifications
            if isinstance(e := service.mapper.to_domain_event(n), CaseEvent)
            and not e.INDEX
            and e.timestamp.timestamp() <= at
        ]
        with tempfile.TemporaryDirectory() as tmp:
            views = ViewStore(sqlite_path=f"{tmp}/cut.db")
            try:
                past = Projections(views)
                with views.transaction() as cur:
                    for name in MODELS:
                        model = past.model(name, cur)
                        model.create(cur)
                        model.apply(cur, cut)
                since, until = first + (at - first) / 3, first + (at - first) * 2 / 3
                historical = [
                    _figures(live, Filters(as_of=at), at),
                    _figures(live, Filters(as_of=at, since=since, until=until), at),
                    _figures(live, Filters(as_of=at, since=since, scope="510123001"), at),
                ]
                truncated = [
                    _figures(past, Filters(), at),
                    _figures(past, Filters(since=since, until=until), at),
                    _figures(past, Filters(since=since, scope="510123001"), at),
                ]
            finally:
                views.close()

    assert historical == truncated

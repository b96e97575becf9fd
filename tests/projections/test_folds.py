"""Each fold against a plain independent computation over random legal histories,
and "fold in chunks = fold at once" through the real persistence path."""

from __future__ import annotations

import itertools
import math
import random
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta, timezone
from pathlib import Path
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.clock import FakeClock
from engine.events import CaseEvent, CaseReopened, CaseResumed, CaseSuspended, PetitionFiled
from engine.persistence import sqlite_env
from engine.service import CaseService
from engine.viewstore import ViewStore
from projections import reports
from projections.case_list import OPEN, CaseRow, _evolve_row, evolve_row, light_of
from projections.fold import Decoder, Rec, record_of
from projections.measures import RELATIVE_ERROR, Agg, Filters
from projections.registry import MODELS, Projections
from routing_rules import RuleSet, default_rule_set_path, load_rule_set
from tests.projections import oracle
from tests.projections.conftest import caught_up
from tests.projections.histories import drive

RULES: RuleSet = load_rule_set(default_rule_set_path())
FOLD_SETTINGS = settings(
    max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


@contextmanager
def world(
    seed: int, cases: int = 8, steps: int = 70
) -> Iterator[tuple[CaseService, Projections, list[UUID], FakeClock]]:
    with tempfile.TemporaryDirectory() as tmp:
        clock = FakeClock()
        service = CaseService(rules=RULES, clock=clock, env=sqlite_env(f"{tmp}/lianhu.db"))
        views = ViewStore(sqlite_path=str(Path(tmp) / "views.db"))
        try:
            ids = drive(service, clock, seed, cases=cases, steps=steps)
            projections = Projections(views)
            caught_up(service, projections, batch_size=random.Random(seed).randint(1, 40))
            yield service, projections, ids, clock
        finally:
            views.close()
            service.close()


def assert_percentiles(agg: Agg, values: list[int]) -> None:
    ordered = sorted(values)
    for q in (0.5, 0.9, 0.99):
        exact = ordered[max(1, math.ceil(q * len(ordered))) - 1]
        estimate = agg.percentile(q)
        assert estimate is not None
        if exact < 1:
            assert estimate == 0
        else:
            assert abs(estimate - exact) <= RELATIVE_ERROR * exact + 1e-6, (q, estimate, exact)


@FOLD_SETTINGS
@given(seed=st.integers(0, 10_000))
def test_response_times_match_a_plain_computation(seed: int) -> None:
    with world(seed) as (service, projections, ids, _):
        expected = oracle.response_times(oracle.histories(service, ids))
        with projections.views.transaction() as cur:
            model = projections.model("response_times", cur)
            by_level = model.query(cur, "assignment", Filters(), "level")  # type: ignore[attr-defined]
            first = model.query(cur, "first", Filters()).get(None, Agg())  # type: ignore[attr-defined]
            res = model.query(cur, "resolution", Filters()).get(None, Agg())  # type: ignore[attr-defined]

    assert {k: (a.n, a.value) for k, a in by_level.items()} == {
        k: (len(v), sum(v)) for k, v in expected.assignment.items() if v
    }
    for level, values in expected.assignment.items():
        assert_percentiles(by_level[level], values)
    assert (first.n, first.value) == (len(expected.first), sum(expected.first))
    if expected.first:
        assert_percentiles(first, expected.first)
    assert res.n == len(expected.resolution)
    assert res.value == sum(v for v, _ in expected.resolution)
    assert res.flag == sum(on_time for _, on_time in expected.resolution)


@FOLD_SETTINGS
@given(seed=st.integers(0, 10_000))
def test_distortion_matches_a_plain_computation(seed: int) -> None:
    with world(seed) as (service, projections, ids, _):
        expected = oracle.distortion(oracle.histories(service, ids))
        with projections.views.transaction() as cur:
            model = projections.model("distortion", cur)
            hops = model.query(cur, "hop", Filters(), "depth")  # type: ignore[attr-defined]
            drift = model.query(cur, "drift", Filters(), "depth")  # type: ignore[attr-defined]
            match = model.query(cur, "match", Filters()).get(None, Agg())  # type: ignore[attr-defined]

    assert set(hops) == set(expected.by_depth)
    for depth, rows in expected.by_depth.items():
        assert hops[depth].n == len(rows)
        assert hops[depth].flag == sum(d for _, d, _, _ in rows)
        assert hops[depth].value == sum(round(s * 1_000_000) for s, *_ in rows)
        assert drift[depth].flag == sum(c for _, _, c, _ in rows)
    assert (match.n, match.flag) == (len(expected.matched), sum(expected.matched))


@FOLD_SETTINGS
@given(seed=st.integers(0, 10_000))
def test_indicators_match_a_plain_computation(seed: int) -> None:
    with world(seed) as (service, projections, ids, _):
        expected = oracle.indicators(oracle.histories(service, ids))
        with projections.views.transaction() as cur:
            model = projections.model("indicators", cur)
            got = {
                k: model.query(cur, k, Filters()).get(None, Agg())  # type: ignore[attr-defined]
                for k in ("filed", "local", "mediation", "satisfaction")
            }
            units = model.query(cur, "assignment", Filters(), "unit")  # type: ignore[attr-defined]

    for kind, values in (
        ("filed", expected.timely),
        ("local", expected.local),
        ("mediation", expected.mediation),
        ("satisfaction", expected.satisfied),
    ):
        assert (got[kind].n, got[kind].flag) == (len(values), sum(values)), kind
    assert {u: (a.n, a.flag, a.value) for u, a in units.items()} == {
        u: (n, expected.returns[u], expected.unclear[u]) for u, n in expected.assignments.items()
    }


@FOLD_SETTINGS
@given(seed=st.integers(0, 10_000), cases=st.integers(1, 40))
def test_the_heat_map_counts_each_filing_in_its_village_category_and_week(
    seed: int, cases: int
) -> None:
    with world(seed, cases=cases, steps=20) as (service, projections, ids, _):
        filings = [h[0] for h in oracle.histories(service, ids)]
        heat = reports.heatmap(projections, Filters())
    beijing = timezone(timedelta(hours=8))
    expected: Counter[tuple[str, str, date]] = Counter()
    for e in filings:
        assert isinstance(e, PetitionFiled)
        day = e.timestamp.astimezone(beijing).date()
        expected[(e.household_unit[:12], e.category, day - timedelta(days=day.weekday()))] += 1
    first, last = min(m for _, _, m in expected), max(m for _, _, m in expected)
    weeks = [first + timedelta(weeks=i) for i in range((last - first).days // 7 + 1)]
    assert heat["weeks"] == [w.isoformat() for w in weeks]
    rows = []
    for v, c in sorted({(v, c) for v, c, _ in expected}):
        counts = [expected[(v, c, w)] for w in weeks]
        rows.append({"village": v, "category": c, "counts": counts, "total": sum(counts)})
    assert heat["rows"] == rows
    assert heat["total"] == len(filings) == cases


def expected_board(
    service: CaseService, ids: list[UUID], at: float, warn_share: float
) -> dict[str, Counter[str]]:
    """Per unit, open cases by light at `at`, from each case's aggregate as it was then."""
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for case_id in ids:
        events = [e for e in service.history(case_id) if e.timestamp.timestamp() <= at]
        if not events:
            continue
        case = service.get_case(case_id, version=events[-1].originator_version)
        if case.status.value not in OPEN:
            continue
        respond_from, resolve_from = _window_starts(events)
        eff = case.suspended_at.timestamp() if case.suspended_at else at
        dues = [
            (respond_from, case.respond_due.timestamp() if case.respond_due else None),
            (resolve_from, case.resolve_due.timestamp() if case.resolve_due else None),
        ]
        if any(d is not None and eff >= d for _, d in dues):
            light = "red"
        elif any(d is not None and eff >= f + warn_share * (d - f) for f, d in dues):
            light = "yellow"
        else:
            light = "green"
        out[case.unit][light] += 1
        out[case.unit]["supervised"] += case.supervised
    return out


def _window_starts(events: list[CaseEvent]) -> tuple[float, float]:
    """When the running respond and resolve windows opened, moved on by the time paused."""
    respond = resolve = 0.0
    paused_at = None
    for e in events:
        t = e.timestamp.timestamp()
        if hasattr(e, "respond_due") and not isinstance(e, CaseResumed):
            respond = resolve = t
        elif isinstance(e, CaseReopened):
            resolve = t
        elif isinstance(e, CaseSuspended):
            paused_at = t
        elif isinstance(e, CaseResumed) and paused_at is not None:
            respond += t - paused_at
            resolve += t - paused_at
            paused_at = None
    return respond, resolve


@FOLD_SETTINGS
@given(seed=st.integers(0, 10_000), moment=st.floats(0.1, 1.0))
def test_board_matches_the_cases_as_they_were_at_any_moment(seed: int, moment: float) -> None:
    with world(seed) as (service, projections, ids, clock):
        first = service.history(ids[0])[0].timestamp.timestamp()
        at = first + moment * (clock.now().timestamp() - first)
        expected = expected_board(service, ids, at, RULES.warn_share)
        with projections.views.transaction() as cur:
            units = projections.model("board", cur).board(  # type: ignore[attr-defined]
                cur, at=at, warn_share=RULES.warn_share
            )

    got = {
        u.unit: Counter(
            {"green": u.green, "yellow": u.yellow, "red": u.red, "supervised": u.supervised}
        )
        for u in units
    }
    assert {k: +v for k, v in got.items()} == {k: +v for k, v in expected.items()}


@FOLD_SETTINGS
@given(seed=st.integers(0, 10_000))
def test_case_list_matches_the_aggregates(seed: int) -> None:
    with world(seed) as (service, projections, ids, clock):
        with projections.views.transaction() as cur:
            model = projections.model("case_list", cur)
            rows = model.load_states(cur, [str(i) for i in ids])
        now = clock.now().timestamp()
        for case_id in ids:
            case, row = service.get_case(case_id), rows[str(case_id)]
            assert (row.unit, row.level, row.status, row.category, row.hops) == (
                case.unit, case.level.value, case.status.value, case.category, case.hops
            )  # fmt: skip
            assert row.respond_due == (case.respond_due.timestamp() if case.respond_due else None)
            assert row.resolve_due == (case.resolve_due.timestamp() if case.resolve_due else None)
            assert bool(row.supervised) == case.supervised
            assert light_of(row, now, 0.75) in ({""} if case.status.value not in OPEN else set(
                ("green", "yellow", "red")))  # fmt: skip


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(1, 400), min_size=1, max_size=6))
def test_folding_in_chunks_equals_folding_at_once(seed: int, cuts: list[int]) -> None:
    with world(seed, cases=6, steps=50) as (service, _, _, _):
        notifications = service.recorder.select_notifications(start=1, limit=10_000)
        decode = Decoder(service.mapper)
        tracked = [
            rec
            for n in notifications
            if (rec := decode(n.topic, n.originator_id, n.state)) is not None
        ]
        assert tracked[0].type == "PetitionFiled"
        bounds = sorted({0, len(tracked), *(c % (len(tracked) + 1) for c in cuts)})
        with tempfile.TemporaryDirectory() as tmp:
            at_once, in_chunks = (ViewStore(sqlite_path=f"{tmp}/{n}.db") for n in ("a", "b"))
            try:
                for name, cls in MODELS.items():
                    one, many = cls(1), cls(1)
                    with at_once.transaction() as cur:
                        one.create(cur)
                        one.apply(cur, tracked)
                    with in_chunks.transaction() as cur:
                        many.create(cur)
                    for lo, hi in itertools.pairwise(bounds):
                        with in_chunks.transaction() as cur:
                            many.apply(cur, tracked[lo:hi])
                    with at_once.transaction() as a, in_chunks.transaction() as b:
                        assert one.dump(a) == many.dump(b), name
            finally:
                at_once.close()
                in_chunks.close()


@FOLD_SETTINGS
@given(seed=st.integers(0, 10_000))
def test_the_events_a_model_does_not_read_change_none_of_its_states(seed: int) -> None:
    """`apply` skips the event types outside a model's `reads`: folding every event, each
    of those must leave the case's state as it was and emit nothing."""
    with world(seed, cases=8, steps=80) as (service, _, _, _):
        decode = Decoder(service.mapper)
        stored = service.recorder.select_notifications(start=1, limit=10_000)
        recs = [r for n in stored if (r := decode(n.topic, n.originator_id, n.state))]
        skipped: Counter[str] = Counter()
        for name, cls in MODELS.items():
            model = cls(1)
            if model.reads is None:
                continue
            states: dict[str, object] = {}
            for rec in recs:
                before = states.get(rec.key)
                states[rec.key], effects = model.evolve(before, rec)
                if rec.type not in model.reads:
                    assert states[rec.key] is before and not effects, (name, rec.type)
                    skipped[name] += 1
        assert skipped["distortion"] > 0 and sum(skipped.values()) > 10, skipped


@FOLD_SETTINGS
@given(seed=st.integers(0, 10_000))
def test_stored_events_decode_to_the_records_of_the_domain_events(seed: int) -> None:
    """The follower folds stored JSON without building pydantic models: it must read every
    case event exactly as the validated domain event would give it, and skip the rest."""
    with world(seed, cases=6, steps=60) as (service, _, _, _):
        decode = Decoder(service.mapper)
        seen: set[str] = set()
        for n in service.recorder.select_notifications(start=1, limit=10_000):
            event = service.mapper.to_domain_event(n)
            rec = decode(n.topic, n.originator_id, n.state)
            if not isinstance(event, CaseEvent) or event.INDEX:
                assert rec is None
                continue
            assert rec == record_of(event)
            assert rec.t == event.timestamp.timestamp()
            assert rec.key == str(event.originator_id) and rec.type == type(event).__name__
            seen.add(rec.type)
    assert {"PetitionFiled", "CaseRouted"} <= seen and len(seen) >= 4


@FOLD_SETTINGS
@given(seed=st.integers(0, 10_000))
def test_a_row_made_once_for_the_case_list_and_the_board_is_the_row_each_would_make(
    seed: int,
) -> None:
    """evolve_row reuses the row the other model made from the very same row object, and
    only then: from an equal but distinct row it makes its own."""
    with world(seed, cases=6, steps=60) as (service, _, _, _):
        decode = Decoder(service.mapper)
        stored = service.recorder.select_notifications(start=1, limit=10_000)
        recs = [r for n in stored if (r := decode(n.topic, n.originator_id, n.state))]
        plain: dict[str, CaseRow | None] = {}
        shared: dict[str, CaseRow | None] = {}
        apart: dict[str, CaseRow | None] = {}
        reused = 0
        for rec in recs:
            k = rec.key
            plain[k] = _evolve_row(plain.get(k), rec)  # no memo at all
            first = evolve_row(shared.get(k), rec)  # the case list ...
            second = evolve_row(shared.get(k), rec)  # ... then the board, from the same row
            assert second is first and first == plain[k]
            reused += rec.type != "PetitionFiled"
            shared[k] = first
            before = apart.get(k)
            own = evolve_row(None if before is None else CaseRow(*before), rec)
            assert own == plain[k] and (before is None or own is not first)
            apart[k] = own
        assert reused > 10


def test_records_carry_the_events_times_and_enum_values() -> None:
    event = PetitionFiled.model_validate(
        {
            "originator_id": "6a1f5c0e-0d3c-4f7e-9d59-1b2b9c7d6e01",
            "originator_version": 1,
            "timestamp": "2026-03-02T12:00:00.250000+08:00",
            "originator_topic": "engine.case:Case",
            "number": "N1",
            "household_unit": "510123001001001001",
            "channel": "visit",
            "category": "c",
            "urgency": "urgent",
            "title": "t",
            "description": "d",
            "location": "",
            "reporter": {},
            "raised_at": "2026-03-02T03:00:00Z",
            "fingerprint": "",
        }
    )
    rec: Rec = record_of(event)
    assert rec.t == event.timestamp.timestamp() == 1772424000.25
    assert rec.d["urgency"] == "urgent"


@FOLD_SETTINGS
@given(seed=st.integers(0, 10_000), moment=st.floats(0.0, 1.0))
def test_the_returned_count_is_the_boards(seed: int, moment: float) -> None:
    """Indicators count unowned (returned) cases without the board's lights: same number."""
    with world(seed, cases=12, steps=120) as (service, projections, ids, clock):
        first = service.history(ids[0])[0].timestamp.timestamp()
        at = first + moment * (clock.now().timestamp() - first)
        with projections.views.reading() as cur:
            board = projections.model("board", cur)
            for scope in (None, "510123001", "dept:water"):
                units = board.board(cur, at=at, warn_share=0.75, scope=scope)  # type: ignore[attr-defined]
                count = board.returned(cur, at=at, scope=scope)  # type: ignore[attr-defined]
                assert count == sum(u.returned for u in units)

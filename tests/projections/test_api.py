"""GET /v1/metrics/... and GET /v1/cases over the read models, including as_of."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from engine import commands as c
from engine.clock import FakeClock
from engine.service import CaseService
from engine.settings import Settings
from engine.values import Outcome
from projections.registry import Projections
from tests.projections.conftest import caught_up
from tests.projections.histories import drive

HOUSEHOLD = "510123001001-01-01"


@pytest.fixture
def client(service: CaseService, projections: Projections, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(service, Settings(data_dir=tmp_path, database_url=None, rules_dir=None))
    app.state.projections = projections
    with TestClient(app) as test_client:
        yield test_client


def file(service: CaseService, description: str = "增设社区健身器材") -> c.FilePetition:
    cmd = c.FilePetition(
        household_unit=HOUSEHOLD, category="service_demand", title="健身器材",
        description=description,
    )  # fmt: skip
    return cmd


def test_a_referral_retold_as_something_else_shows_as_distorted(
    client: TestClient, service: CaseService, projections: Projections, clock: FakeClock
) -> None:
    case_id = service.file_petition(file(service)).case_id
    unit = service.get_case(case_id).unit
    clock.advance(hours=2)
    service.accept_case(case_id, c.AcceptCase(unit=unit, actor="leader"))
    service.refer_case(
        case_id,
        c.ReferCase(unit=unit, to_unit="510123001", actor="leader", summary="优化绿化景观"),
    )
    caught_up(service, projections)

    body = client.get("/v1/metrics/distortion").json()
    chain = client.get(f"/v1/metrics/distortion/cases/{case_id}").json()["chain"]

    assert body["hops"] == 1
    assert body["distortion_rate"] == 1.0
    assert body["reporting_accuracy"] == 0.0
    assert body["groups"][0]["group"] == 1
    assert [link["text"] for link in chain] == ["增设社区健身器材", "优化绿化景观"]


def test_response_times_now_and_as_of_before_the_acceptance(
    client: TestClient, service: CaseService, projections: Projections, clock: FakeClock
) -> None:
    case_id = service.file_petition(file(service)).case_id
    unit = service.get_case(case_id).unit
    before = clock.advance(hours=3).isoformat()
    clock.advance(hours=1)
    service.accept_case(case_id, c.AcceptCase(unit=unit, actor="leader"))
    caught_up(service, projections)

    now = client.get("/v1/metrics/response-times", params={"kind": "first"}).json()
    then = client.get(
        "/v1/metrics/response-times", params={"kind": "first", "as_of": before}
    ).json()

    assert now["groups"] == [
        {"group": None, "count": 1, "mean_s": 14400.0, "p50": pytest.approx(14400, rel=0.025),
         "p90": pytest.approx(14400, rel=0.025), "p99": pytest.approx(14400, rel=0.025),
         "on_time_share": 0.0}
    ]  # fmt: skip
    assert then["groups"] == []


def test_the_board_turns_from_green_to_yellow_to_red_as_time_passes(
    client: TestClient, service: CaseService, projections: Projections, clock: FakeClock
) -> None:
    filed_at = clock.now()
    case_id = service.file_petition(file(service)).case_id
    case = service.get_case(case_id)
    assert case.respond_due is not None
    caught_up(service, projections)
    window = case.respond_due - filed_at

    def light_at(share: float) -> dict[str, int]:
        at = (filed_at + window * share).isoformat()
        totals: dict[str, int] = client.get("/v1/metrics/board", params={"as_of": at}).json()[
            "totals"
        ]
        return {k: totals[k] for k in ("green", "yellow", "red")}

    assert light_at(0.5) == {"green": 1, "yellow": 0, "red": 0}
    assert light_at(0.8) == {"green": 0, "yellow": 1, "red": 0}
    assert light_at(1.0) == {"green": 0, "yellow": 0, "red": 1}
    assert light_at(-0.1) == {"green": 0, "yellow": 0, "red": 0}  # before it was filed


def test_indicators_and_heatmap(
    client: TestClient, service: CaseService, projections: Projections, clock: FakeClock
) -> None:
    case_id = service.file_petition(file(service)).case_id
    unit = service.get_case(case_id).unit
    service.accept_case(case_id, c.AcceptCase(unit=unit, actor="l"))
    clock.advance(hours=1)
    service.resolve_case(
        case_id,
        c.ResolveCase(unit=unit, actor="l", outcome=Outcome.MEDIATED_SUCCESS, resolution="ok"),
    )
    service.rate_case(case_id, c.RateCase(score=5, request_matched=True))
    caught_up(service, projections)

    body = client.get("/v1/metrics/indicators", params={"unit": "510123"}).json()
    heat = client.get("/v1/metrics/heatmap").json()

    assert body["collection_timeliness"] == {"count": 1, "yes": 1, "share": 1.0}
    assert body["mediation_success"] == {"count": 1, "yes": 1, "share": 1.0}
    assert body["satisfaction"]["share"] == 1.0
    assert heat["weeks"] == ["2026-03-02"]
    assert heat["rows"] == [
        {"village": "510123001001", "category": "service_demand", "counts": [1], "total": 1}
    ]
    assert heat["total"] == 1


def test_the_case_list_filters_and_pages_by_cursor(
    client: TestClient, service: CaseService, projections: Projections, clock: FakeClock
) -> None:
    drive(service, clock, seed=3, cases=12, steps=20)
    caught_up(service, projections)

    seen, cursor = [], None
    while True:
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/cases", params=params).json()
        seen += [row["case_id"] for row in page["cases"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    scoped = client.get("/v1/cases", params={"unit": "510123001", "limit": 500}).json()
    red = client.get("/v1/cases", params={"light": "red", "limit": 500}).json()

    assert len(seen) == len(set(seen)) == 12
    assert all(row["unit"].startswith("510123001") for row in scoped["cases"])
    assert all(row["light"] == "red" for row in red["cases"])
    assert client.get("/v1/cases", params={"cursor": "nonsense"}).status_code == 400
    assert client.get("/v1/cases", params={"light": "blue"}).status_code == 422


def test_reports_write_times_as_the_rest_of_the_api_does() -> None:
    """Reports go to JSON straight through orjson (api.responses.report): a UTC `as_of`
    is written with Z, as pydantic writes the other routes' times."""
    from datetime import UTC, datetime

    from api.responses import report

    body = report({"as_of": datetime(2026, 3, 1, tzinfo=UTC), "n": {1: 2}}).body
    assert body == b'{"as_of":"2026-03-01T00:00:00Z","n":{"1":2}}'

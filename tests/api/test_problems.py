"""Bad requests: each is answered with a problem document with a hint, and records nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import httpx2
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.deps import get_service
from engine.errors import StoreUnavailable, VersionConflict
from engine.numbering import number_index_id
from engine.service import CaseService
from routing_rules import CalendarNotCovered
from tests.api.conftest import HOUSEHOLD, a_petition, log_position

JSON = {"Content-Type": "application/json"}


def assert_problem(response: httpx2.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["type"] == f"/problems/{slug}"
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    assert problem["hint"]
    assert problem["instance"] == response.request.url.path
    return problem


def fields(problem: dict[str, Any]) -> list[str]:
    return [error["field"] for error in problem["errors"]]


FILING_REFUSALS = [
    pytest.param(
        {"content": orjson.dumps(a_petition(description="长" * 30_000)), "headers": JSON},
        413, "payload-too-large", None, id="oversized-body",
    ),
    pytest.param(
        {"content": b'{"household_unit": "\xff\xfe", "title": "x"}', "headers": JSON},
        400, "bad-request", None, id="invalid-utf8",
    ),
    pytest.param(
        {"content": b'{"household_unit": "510123001001-01-01",', "headers": JSON},
        400, "bad-request", None, id="malformed-json",
    ),
    pytest.param(
        {"content": orjson.dumps(a_petition()), "headers": {"Content-Type": "text/plain"}},
        415, "unsupported-media-type", None, id="not-json",
    ),
    pytest.param(
        {"json": a_petition(priority="high")},
        422, "validation-error", ["priority"], id="unknown-field",
    ),
    pytest.param(
        {"json": a_petition(reporter={"name": "张三", "phone": "1" * 31})},
        422, "validation-error", ["reporter.phone"], id="nested-field-too-long",
    ),
    pytest.param(
        {"json": a_petition(raised_at="2026-03-09T00:00:00+08:00")},
        422, "invalid-petition", ["raised_at"], id="raised-in-the-future",
    ),
    pytest.param(
        {"json": a_petition(raised_at="1999-12-31T23:00:00+08:00")},
        422, "validation-error", ["raised_at"], id="raised-before-2000",
    ),
    pytest.param(
        {"json": a_petition(raised_at="2026-03-01T09:00:00")},
        422, "validation-error", ["raised_at"], id="raised-without-timezone",
    ),
    pytest.param(
        {"json": a_petition(household_unit="510123001001-01-99")},
        422, "unknown-reference", ["household_unit"], id="unknown-unit",
    ),
    pytest.param(
        {"json": a_petition(household_unit="510123001001")},
        422, "invalid-petition", ["household_unit"], id="not-a-household",
    ),
    pytest.param(
        {"json": a_petition(category="ufo_sighting")},
        422, "unknown-reference", ["category"], id="unknown-category",
    ),
    pytest.param(
        {"json": a_petition(), "headers": {"Idempotency-Key": "k" * 201}},
        422, "validation-error", ["idempotency-key"], id="idempotency-key-too-long",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("request_args", "status", "slug", "bad_fields"), FILING_REFUSALS)
def test_a_bad_filing_is_refused_with_a_problem_and_records_nothing(
    client: TestClient,
    service: CaseService,
    request_args: dict[str, Any],
    status: int,
    slug: str,
    bad_fields: list[str] | None,
) -> None:
    recorded = log_position(service)

    response = client.post("/v1/cases", **request_args)

    problem = assert_problem(response, status, slug)
    if bad_fields is not None:
        assert fields(problem) == bad_fields
    assert log_position(service) == recorded


def test_a_body_streamed_without_content_length_is_cut_off_at_the_limit(
    client: TestClient, service: CaseService
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"household_unit": "510123001001-01-01", "description": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    recorded = log_position(service)

    response = client.post("/v1/cases", content=chunks(), headers=JSON)

    assert "Content-Length" not in response.request.headers
    assert_problem(response, 413, "payload-too-large")
    assert log_position(service) == recorded


def test_resolving_before_accepting_is_an_illegal_transition(
    client: TestClient, service: CaseService
) -> None:
    ref = client.post("/v1/cases", json=a_petition()).json()["id"]
    recorded = log_position(service)

    response = client.post(
        f"/v1/cases/{ref}/resolve",
        json={"unit": HOUSEHOLD, "actor": "x", "outcome": "solved", "resolution": "已处理"},
    )

    problem = assert_problem(response, 409, "illegal-transition")
    assert problem["case_status"] == "routed"
    assert log_position(service) == recorded


def test_a_unit_not_holding_the_case_cannot_accept_it(
    client: TestClient, service: CaseService
) -> None:
    ref = client.post("/v1/cases", json=a_petition()).json()["id"]
    recorded = log_position(service)

    response = client.post(
        f"/v1/cases/{ref}/accept", json={"unit": "510123001001-01-02", "actor": "x"}
    )

    assert_problem(response, 409, "illegal-transition")
    assert log_position(service) == recorded


@pytest.mark.parametrize(
    "ref", ["260302-ZZZZZ", "00000000-0000-4000-8000-000000000000", "not-a-case"]
)
def test_an_unknown_case_is_not_found(client: TestClient, service: CaseService, ref: str) -> None:
    recorded = log_position(service)

    read = client.get(f"/v1/cases/{ref}")
    history = client.get(f"/v1/cases/{ref}/events")
    accept = client.post(f"/v1/cases/{ref}/accept", json={"unit": HOUSEHOLD, "actor": "x"})

    for response in (read, history, accept):
        assert_problem(response, 404, "not-found")
    assert log_position(service) == recorded


@pytest.mark.parametrize("if_match", ["3", '"1", "2"', 'W/"', ""])
def test_a_malformed_if_match_is_a_bad_request(
    client: TestClient, service: CaseService, if_match: str
) -> None:
    ref = client.post("/v1/cases", json=a_petition()).json()["id"]
    recorded = log_position(service)

    response = client.post(
        f"/v1/cases/{ref}/accept",
        json={"unit": HOUSEHOLD, "actor": "x"},
        headers={"If-Match": if_match},
    )

    assert_problem(response, 400, "bad-request")
    assert log_position(service) == recorded


def test_an_etag_this_api_never_gave_fails_the_precondition(client: TestClient) -> None:
    ref = client.post("/v1/cases", json=a_petition()).json()["id"]

    response = client.post(
        f"/v1/cases/{ref}/accept",
        json={"unit": HOUSEHOLD, "actor": "x"},
        headers={"If-Match": '"abc"'},
    )

    assert_problem(response, 412, "precondition-failed")


def test_a_missing_body_is_a_validation_error(client: TestClient) -> None:
    ref = client.post("/v1/cases", json=a_petition()).json()["id"]

    response = client.post(f"/v1/cases/{ref}/accept")

    assert_problem(response, 422, "validation-error")


def test_an_unknown_path_and_a_wrong_method_are_problems_too(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing-here"), 404, "not-found")
    assert_problem(client.delete("/v1/cases"), 405, "method-not-allowed")


class FailingService:
    """Stands in for the service when the store misbehaves."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def find_case(self, ref: str) -> str:
        return ref

    def accept_case(self, *args: object, **kwargs: object) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (VersionConflict(uuid4(), None, None), 409, "version-conflict"),
        (StoreUnavailable("connection refused"), 503, "store-unavailable"),
        (CalendarNotCovered(2031), 500, "rule-set-error"),
        (ZeroDivisionError("a bug"), 500, "internal-error"),
    ],
)
def test_store_rule_and_unexpected_errors_map_to_their_problems(
    app: FastAPI, error: Exception, status: int, slug: str
) -> None:
    app.dependency_overrides[get_service] = lambda: FailingService(error)
    client = TestClient(app, raise_server_exceptions=False)

    response = client.post("/v1/cases/x/accept", json={"unit": HOUSEHOLD, "actor": "x"})

    assert_problem(response, status, slug)
    if status == 503:
        assert int(response.headers["Retry-After"]) > 0


def test_the_id_of_a_case_number_index_is_not_a_case(client: TestClient) -> None:
    number = client.post("/v1/cases", json=a_petition()).json()["number"]
    index_id = number_index_id(number)

    assert_problem(client.get(f"/v1/cases/{index_id}"), 404, "not-found")
    assert_problem(client.get(f"/v1/cases/{index_id}/events"), 404, "not-found")

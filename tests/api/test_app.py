"""The application around the routes: OpenAPI, health, metrics, problem types, the auth hook."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from api.auth import ANONYMOUS, current_principal
from api.problems import PROBLEM_TYPES
from tests.api.conftest import a_petition

ACTIONS = [
    "accept",
    "return",
    "refer",
    "escalate",
    "extend",
    "suspend",
    "resume",
    "resolve",
    "reopen",
    "rate",
    "close",
    "withdraw",
]


def test_openapi_describes_every_case_operation(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    paths = schema["paths"]
    assert set(paths["/v1/cases"]) == {"get", "post"}  # GET: the case list (projections)
    assert set(paths["/v1/cases/{ref}"]) == {"get"}
    assert set(paths["/v1/cases/{ref}/events"]) == {"get"}
    for action in ACTIONS:
        assert set(paths[f"/v1/cases/{{ref}}/{action}"]) == {"post"}
    assert client.get("/docs").status_code == 200


def test_healthz_names_the_rule_set_in_force(client: TestClient) -> None:
    health = client.get("/healthz")

    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["rule_set_hash"].startswith("sha256:")


def test_metrics_count_requests_by_route_template_and_status(client: TestClient) -> None:
    ref = client.post("/v1/cases", json=a_petition()).json()["number"]
    client.get(f"/v1/cases/{ref}")
    client.get("/v1/cases/260302-ZZZZZ")

    text = client.get("/metrics").text

    assert 'lianhu_http_requests_total{method="POST",route="/v1/cases",status="201"} 1' in text
    assert 'lianhu_http_requests_total{method="GET",route="/v1/cases/{ref}",status="200"} 1' in text
    assert 'lianhu_http_requests_total{method="GET",route="/v1/cases/{ref}",status="404"} 1' in text
    assert re.search(r"^lianhu_event_log_position 3$", text, re.MULTILINE)  # filed, routed, number


@pytest.mark.parametrize("slug", sorted(PROBLEM_TYPES))
def test_every_problem_type_uri_resolves_to_its_description(client: TestClient, slug: str) -> None:
    kind = PROBLEM_TYPES[slug]

    described = client.get(kind.uri)

    assert described.status_code == 200
    assert described.json()["status"] == kind.status
    assert described.json()["hint"]


def test_every_v1_route_passes_through_the_one_principal_dependency(app: FastAPI) -> None:
    def refuse() -> None:
        raise HTTPException(401, "no token")

    app.dependency_overrides[current_principal] = refuse
    client = TestClient(app)
    operations = [
        (method, path.replace("{ref}", "260302-ZZZZZ"))
        for path, methods in client.get("/openapi.json").json()["paths"].items()
        if path.startswith("/v1/")
        for method in methods
    ]

    answers = {(m, p): client.request(m, p, json={}).status_code for m, p in operations}

    metrics = [p for _, p in operations if p.startswith("/v1/metrics/")]
    assert len(operations) == 4 + len(ACTIONS) + len(metrics)
    assert len(metrics) == 6
    assert set(answers.values()) == {401}, answers
    assert client.get("/healthz").status_code == 200


def test_today_every_caller_is_anonymous() -> None:
    assert current_principal() is ANONYMOUS
    assert not ANONYMOUS.sees_personal_data


def test_docs_list_every_problem_type() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")

    for kind in PROBLEM_TYPES.values():
        assert f"| `{kind.uri}` | {kind.status} |" in docs

"""The case resource over HTTP: a whole lifecycle, idempotent filing, ETags and If-Match."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from engine.clock import FakeClock
from engine.service import CaseService
from tests.api.conftest import GROUP, HOUSEHOLD, a_petition, log_position


def act(client: TestClient, ref: str, action: str, etag: str, **body: Any) -> dict[str, Any]:
    """POST an action with If-Match, check it succeeded and moved the ETag on by one."""
    response = client.post(f"/v1/cases/{ref}/{action}", json=body, headers={"If-Match": etag})
    assert response.status_code == 200, response.json()
    assert response.headers["ETag"] == f'"{int(etag.strip(chr(34))) + 1}"'
    view: dict[str, Any] = response.json()
    assert response.headers["ETag"] == f'"{view["version"]}"'
    return view


def test_a_case_goes_from_filing_to_closing_over_http(client: TestClient, clock: FakeClock) -> None:
    filed = client.post("/v1/cases", json=a_petition())
    assert filed.status_code == 201
    case = filed.json()
    ref = case["id"]
    assert filed.headers["Location"] == f"/v1/cases/{ref}"
    assert filed.headers["ETag"] == '"2"'  # filed and routed
    assert case["status"] == "routed"
    assert case["unit"] == HOUSEHOLD
    assert case["rule_id"] == "neighbour-dispute"
    assert case["rule_set_hash"].startswith("sha256:")

    clock.advance(hours=1)
    case = act(client, ref, "accept", '"2"', unit=HOUSEHOLD, actor="household-leader-7")
    assert case["status"] == "accepted"
    clock.advance(hours=1)
    summary = "住户反映楼上夜间装修噪音，需小组协调"
    case = act(
        client,
        ref,
        "refer",
        '"3"',
        unit=HOUSEHOLD,
        to_unit=GROUP,
        actor="household-leader-7",
        summary=summary,
    )
    assert (case["unit"], case["level"], case["hops"]) == (GROUP, "group", 1)
    assert case["summary"] == summary
    clock.advance(hours=1)
    case = act(client, ref, "accept", '"4"', unit=GROUP, actor="group-leader-2")
    clock.advance(days=1)
    case = act(
        client,
        ref,
        "resolve",
        '"5"',
        unit=GROUP,
        actor="group-leader-2",
        outcome="mediated_success",
        resolution="双方约定晚十点后停工",
    )
    assert case["outcome"] == "mediated_success"
    case = act(client, ref, "rate", '"6"', score=5, request_matched=True)
    case = act(client, ref, "close", '"7"', actor="group-leader-2")
    assert case["status"] == "closed"
    assert case["close_reason"] == "rated"

    history = client.get(f"/v1/cases/{case['number']}/events")
    assert history.status_code == 200
    assert history.headers["ETag"] == '"8"'
    events = history.json()["events"]
    assert [e["name"] for e in events] == [
        "PetitionFiled",
        "CaseRouted",
        "CaseAccepted",
        "CaseReferred",
        "CaseAccepted",
        "CaseResolved",
        "SatisfactionRated",
        "CaseClosed",
    ]
    assert [e["version"] for e in events] == list(range(1, 9))
    timestamps = [e["timestamp"] for e in events]
    assert timestamps == sorted(timestamps)
    assert events[3]["data"]["summary"] == summary
    assert events[3]["data"]["hop"] == 1


def test_a_case_is_read_by_id_or_by_number_with_its_version_as_etag(client: TestClient) -> None:
    filed = client.post("/v1/cases", json=a_petition()).json()

    by_id = client.get(f"/v1/cases/{filed['id']}")
    by_number = client.get(f"/v1/cases/{filed['number'].lower()}")

    assert by_id.status_code == by_number.status_code == 200
    assert by_id.json() == by_number.json() == filed
    assert by_id.headers["ETag"] == '"2"'


def test_if_none_match_with_the_current_etag_answers_304(client: TestClient) -> None:
    ref = client.post("/v1/cases", json=a_petition()).json()["id"]

    current = client.get(f"/v1/cases/{ref}", headers={"If-None-Match": '"2"'})
    weak = client.get(f"/v1/cases/{ref}", headers={"If-None-Match": 'W/"2"'})
    stale = client.get(f"/v1/cases/{ref}", headers={"If-None-Match": '"1"'})

    assert current.status_code == weak.status_code == 304
    assert current.headers["ETag"] == '"2"'
    assert current.content == b""
    assert stale.status_code == 200


def test_personal_data_is_masked_in_the_case_and_its_history(client: TestClient) -> None:
    filed = client.post("/v1/cases", json=a_petition())

    history = client.get(f"/v1/cases/{filed.json()['id']}/events").json()

    assert filed.json()["reporter"] == {"name": "张*", "phone": "138****5678", "address": ""}
    petition = history["events"][0]["data"]
    assert petition["reporter"] == {"name": "张*", "phone": "138****5678", "address": ""}
    assert "13812345678" not in filed.text + str(history)
    assert "fingerprint" not in petition  # a hash of the unmasked petition: guessable


def test_a_retried_filing_with_the_same_key_returns_the_same_case(
    client: TestClient, service: CaseService
) -> None:
    key = {"Idempotency-Key": "tablet-7/2026-03-02/0001"}
    first = client.post("/v1/cases", json=a_petition(), headers=key)
    recorded = log_position(service)

    retry = client.post("/v1/cases", json=a_petition(), headers=key)

    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json() == first.json()
    assert retry.headers["Location"] == first.headers["Location"]
    assert retry.headers["ETag"] == first.headers["ETag"]
    assert log_position(service) == recorded
    assert len(client.get(f"/v1/cases/{first.json()['id']}/events").json()["events"]) == 2


def test_a_key_reused_for_a_different_petition_is_refused(
    client: TestClient, service: CaseService
) -> None:
    key = {"Idempotency-Key": "tablet-7/2026-03-02/0002"}
    client.post("/v1/cases", json=a_petition(), headers=key)
    recorded = log_position(service)

    reused = client.post("/v1/cases", json=a_petition(title="另一件事"), headers=key)

    assert reused.status_code == 422
    assert reused.json()["type"] == "/problems/idempotency-key-reused"
    assert reused.json()["hint"]
    assert log_position(service) == recorded


def test_two_clerks_acting_on_the_same_version_one_wins_the_other_gets_412(
    client: TestClient, service: CaseService
) -> None:
    ref = client.post("/v1/cases", json=a_petition()).json()["id"]
    etag = client.get(f"/v1/cases/{ref}").headers["ETag"]  # both clerks read "2"
    accepted = client.post(
        f"/v1/cases/{ref}/accept",
        json={"unit": HOUSEHOLD, "actor": "clerk-a"},
        headers={"If-Match": etag},
    )
    recorded = log_position(service)

    late = client.post(
        f"/v1/cases/{ref}/suspend",
        json={"actor": "clerk-b", "reason": "等待住户补充材料"},
        headers={"If-Match": etag},
    )

    assert accepted.status_code == 200
    assert late.status_code == 412
    problem = late.json()
    assert problem["type"] == "/problems/precondition-failed"
    assert (problem["expected_version"], problem["current_version"]) == (2, 3)
    assert problem["hint"]
    assert log_position(service) == recorded
    assert client.get(f"/v1/cases/{ref}").json()["status"] == "accepted"

    fresh = client.get(f"/v1/cases/{ref}").headers["ETag"]
    retried = client.post(
        f"/v1/cases/{ref}/suspend",
        json={"actor": "clerk-b", "reason": "等待住户补充材料"},
        headers={"If-Match": fresh},
    )
    assert retried.status_code == 200
    assert retried.headers["ETag"] == '"4"'


def test_if_match_star_weak_or_absent_applies_to_the_current_version(client: TestClient) -> None:
    ref = client.post("/v1/cases", json=a_petition()).json()["id"]
    body = {"actor": "clerk", "reason": "等待住户"}

    star = client.post(f"/v1/cases/{ref}/suspend", json=body, headers={"If-Match": "*"})
    weak = client.post(f"/v1/cases/{ref}/resume", json=body, headers={"If-Match": 'W/"3"'})
    absent = client.post(f"/v1/cases/{ref}/suspend", json=body)

    assert [r.status_code for r in (star, weak, absent)] == [200, 200, 200]
    assert absent.headers["ETag"] == '"5"'


def test_a_resident_may_withdraw_and_a_department_may_return(client: TestClient) -> None:
    lift = a_petition(category="infrastructure", title="电梯故障", description="3号楼电梯停运三天")
    case = client.post("/v1/cases", json=lift).json()
    assert case["unit"] == "dept:housing"

    returned = client.post(
        f"/v1/cases/{case['id']}/return",
        json={"unit": "dept:housing", "actor": "clerk", "reason": "not_our_responsibility"},
    )
    withdrawn = client.post(
        f"/v1/cases/{case['id']}/withdraw", json={"actor": "resident", "reason": "已自行解决"}
    )

    assert returned.status_code == 200
    assert returned.json()["status"] == "returned"
    assert withdrawn.status_code == 200
    assert withdrawn.json()["close_reason"] == "withdrawn"

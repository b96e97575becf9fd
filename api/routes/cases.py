"""/v1/cases: file a petition, read a case and its history, act on it.

Each route takes a command model as its body, calls one service verb and
returns a view. Errors are raised, never caught here (api/problems.py maps
them). Routes touching the store are plain `def`: FastAPI runs them in its
thread pool, since the event store is synchronous.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Response, status

from api.auth import current_principal
from api.deps import ExpectedVersion, ServiceDep
from api.etags import etag, none_match
from api.problems import documented
from api.routes import V1
from api.views import CaseView, HistoryView
from engine import commands as c
from engine.case import Case

router = APIRouter(
    prefix=f"{V1}/cases",
    tags=["cases"],
    dependencies=[Depends(current_principal)],
    responses=documented(400, 404, 409, 412, 413, 415, 422, 503),
)

CaseRef = Annotated[
    str,
    Path(
        max_length=64,
        description="the case id (UUID) or its short number, e.g. 260302-7KQ2M",
        examples=["260302-7KQ2M"],
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="Any unique string per petition (a UUID is fine). A retry with the same key "
        "and the same body returns the case filed the first time (200) instead of filing again.",
    ),
]


def _view(response: Response, case: Case) -> CaseView:
    response.headers["ETag"] = etag(case.version)
    return CaseView.of(case)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="File a petition",
    responses={200: {"model": CaseView, "description": "a retry: the case filed before"}},
)
def file_petition(
    cmd: c.FilePetition,
    response: Response,
    service: ServiceDep,
    idempotency_key: IdempotencyKey = None,
) -> CaseView:
    """Record a resident's petition and route it at once (201, `Location` names the case)."""
    filed = service.file_petition(cmd, idempotency_key=idempotency_key)
    response.status_code = status.HTTP_201_CREATED if filed.created else status.HTTP_200_OK
    response.headers["Location"] = f"{V1}/cases/{filed.case_id}"
    return _view(response, filed.case)


@router.get(
    "/{ref}",
    summary="Read a case",
    response_model=CaseView,
    responses={304: {"description": "If-None-Match named the current version"}},
)
def get_case(
    ref: CaseRef,
    response: Response,
    service: ServiceDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> CaseView | Response:
    """The case as it stands now; `ETag` is its version (`If-None-Match` gives 304)."""
    case = service.get_case(service.find_case(ref))
    if none_match(if_none_match, case.version):
        return Response(
            status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag(case.version)}
        )
    return _view(response, case)


@router.get("/{ref}/events", summary="A case's history")
def case_history(ref: CaseRef, response: Response, service: ServiceDep) -> HistoryView:
    """Every recorded event of the case, oldest first (personal data masked)."""
    case_id = service.find_case(ref)
    history = HistoryView.of(case_id, service.history(case_id))
    response.headers["ETag"] = etag(history.version)
    return history


@router.post("/{ref}/accept", summary="Accept a case (受理)")
def accept_case(
    ref: CaseRef,
    cmd: c.AcceptCase,
    response: Response,
    service: ServiceDep,
    expected: ExpectedVersion,
) -> CaseView:
    """The unit holding the case signs for it."""
    case = service.accept_case(service.find_case(ref), cmd, expected_version=expected)
    return _view(response, case)


@router.post("/{ref}/return", summary="Return a case to its dispatcher (退回)")
def return_case(
    ref: CaseRef,
    cmd: c.ReturnCase,
    response: Response,
    service: ServiceDep,
    expected: ExpectedVersion,
) -> CaseView:
    """The unit holding the case gives it back, with a reason."""
    case = service.return_case(service.find_case(ref), cmd, expected_version=expected)
    return _view(response, case)


@router.post("/{ref}/refer", summary="Refer a case to another unit (转办)")
def refer_case(
    ref: CaseRef,
    cmd: c.ReferCase,
    response: Response,
    service: ServiceDep,
    expected: ExpectedVersion,
) -> CaseView:
    """Pass the case on, retold in the sender's words (`summary`)."""
    case = service.refer_case(service.find_case(ref), cmd, expected_version=expected)
    return _view(response, case)


@router.post("/{ref}/escalate", summary="Escalate a case up its ladder")
def escalate_case(
    ref: CaseRef,
    cmd: c.EscalateCase,
    response: Response,
    service: ServiceDep,
    expected: ExpectedVersion,
) -> CaseView:
    """Move the case up its escalation ladder (one rung unless `to_unit` names one)."""
    case = service.escalate_case(service.find_case(ref), cmd, expected_version=expected)
    return _view(response, case)


@router.post("/{ref}/extend", summary="Extend a deadline (延期)")
def extend_deadline(
    ref: CaseRef,
    cmd: c.ExtendDeadline,
    response: Response,
    service: ServiceDep,
    expected: ExpectedVersion,
) -> CaseView:
    """Move a running deadline later, with an approver and a reason."""
    case = service.extend_deadline(service.find_case(ref), cmd, expected_version=expected)
    return _view(response, case)


@router.post("/{ref}/suspend", summary="Suspend a case (stop the clock)")
def suspend_case(
    ref: CaseRef,
    cmd: c.SuspendCase,
    response: Response,
    service: ServiceDep,
    expected: ExpectedVersion,
) -> CaseView:
    """Stop the clock while waiting for the resident."""
    case = service.suspend_case(service.find_case(ref), cmd, expected_version=expected)
    return _view(response, case)


@router.post("/{ref}/resume", summary="Resume a suspended case")
def resume_case(
    ref: CaseRef,
    cmd: c.ResumeCase,
    response: Response,
    service: ServiceDep,
    expected: ExpectedVersion,
) -> CaseView:
    """Restart the clock; the deadlines move by the time paused."""
    case = service.resume_case(service.find_case(ref), cmd, expected_version=expected)
    return _view(response, case)


@router.post("/{ref}/resolve", summary="Resolve a case (办结)")
def resolve_case(
    ref: CaseRef,
    cmd: c.ResolveCase,
    response: Response,
    service: ServiceDep,
    expected: ExpectedVersion,
) -> CaseView:
    """The unit holding the case says it is done, and how."""
    case = service.resolve_case(service.find_case(ref), cmd, expected_version=expected)
    return _view(response, case)


@router.post("/{ref}/reopen", summary="Reopen a resolved case")
def reopen_case(
    ref: CaseRef,
    cmd: c.ReopenCase,
    response: Response,
    service: ServiceDep,
    expected: ExpectedVersion,
) -> CaseView:
    """The resident is not satisfied; the same unit works on it again."""
    case = service.reopen_case(service.find_case(ref), cmd, expected_version=expected)
    return _view(response, case)


@router.post("/{ref}/rate", summary="Rate a resolved case (群众评议)")
def rate_case(
    ref: CaseRef,
    cmd: c.RateCase,
    response: Response,
    service: ServiceDep,
    expected: ExpectedVersion,
) -> CaseView:
    """The resident's score (1–5) and whether what was done matched the request."""
    case = service.rate_case(service.find_case(ref), cmd, expected_version=expected)
    return _view(response, case)


@router.post("/{ref}/close", summary="Close a resolved case")
def close_case(
    ref: CaseRef,
    cmd: c.CloseCase,
    response: Response,
    service: ServiceDep,
    expected: ExpectedVersion,
) -> CaseView:
    """Close a resolved case: after its rating, or automatically (`reason: auto`)."""
    case = service.close_case(service.find_case(ref), cmd, expected_version=expected)
    return _view(response, case)


@router.post("/{ref}/withdraw", summary="Withdraw an open case")
def withdraw_case(
    ref: CaseRef,
    cmd: c.WithdrawCase,
    response: Response,
    service: ServiceDep,
    expected: ExpectedVersion,
) -> CaseView:
    """The resident withdraws the petition; the case closes."""
    case = service.withdraw_case(service.find_case(ref), cmd, expected_version=expected)
    return _view(response, case)

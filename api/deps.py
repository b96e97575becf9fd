"""Dependencies routes declare: the service, and the version an If-Match names."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from api.etags import expected_version
from engine.service import CaseService


def get_service(request: Request) -> CaseService:
    """The application's CaseService (tests override it or pass their own to create_app)."""
    service: CaseService = request.app.state.service
    return service


def if_match_version(
    if_match: Annotated[
        str | None,
        Header(
            description='The ETag you read, e.g. `"3"`: the command applies only if the case '
            "is still at that version (412 otherwise). `*` or absent: any version."
        ),
    ] = None,
) -> int | None:
    return expected_version(if_match)


ServiceDep = Annotated[CaseService, Depends(get_service)]
ExpectedVersion = Annotated[int | None, Depends(if_match_version)]

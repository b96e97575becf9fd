"""Every error the API answers, as an RFC 9457 problem document, mapped in this one module.

A problem document is `application/problem+json` with `type`, `title`, `status`,
`detail`, `instance`, plus two extensions: `hint` (what to do next) and, for
validation failures, `errors` (one entry per field). Routes never catch: the
engine's error tree, request validation and the HTTP layer's own errors all
arrive at the handlers below.

`type` is a relative URI, `/problems/<slug>`, served by the API itself
(`GET /problems/<slug>` describes the problem type); clients compare it as a
string. The catalogue is `PROBLEM_TYPES`; docs/api.md has the same table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from engine.errors import (
    CaseError,
    CaseNotFound,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidPetition,
    StoreUnavailable,
    UnknownReference,
    VersionConflict,
)
from routing_rules import RuleSetError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class ProblemType:
    """One kind of problem: its status, title, when it happens and what to do about it."""

    slug: str
    status: int
    title: str
    when: str
    hint: str

    @property
    def uri(self) -> str:
        return f"/problems/{self.slug}"


_TYPES = (
    ProblemType(
        "bad-request",
        400,
        "Bad request",
        "The body is not well-formed JSON or not UTF-8, or a header (If-Match, Content-Length) "
        "cannot be parsed.",
        "Send a UTF-8 encoded JSON object and well-formed headers.",
    ),
    ProblemType(
        "not-found",
        404,
        "Not found",
        "No case has this id or number (or no such path exists).",
        "Check the case id or number (like 260302-7KQ2M).",
    ),
    ProblemType(
        "method-not-allowed",
        405,
        "Method not allowed",
        "The path exists but not with this HTTP method.",
        "See /docs for the methods each path takes.",
    ),
    ProblemType(
        "illegal-transition",
        409,
        "Not allowed in the case's current state",
        "The command does not apply to the case as it is now (resolve before accept, a unit "
        "acting on a case it does not hold, ...). Nothing was recorded.",
        "GET the case, look at its status and unit, and send a command that applies.",
    ),
    ProblemType(
        "version-conflict",
        409,
        "Changed concurrently",
        "Someone else changed the case while this command was being applied (no If-Match "
        "given). Nothing was recorded.",
        "GET the case again, check the command still applies, and retry.",
    ),
    ProblemType(
        "precondition-failed",
        412,
        "The case is not at the version you read",
        "If-Match named a version that is no longer current. Nothing was recorded.",
        "GET the case for its current ETag, check the command still applies, retry with it.",
    ),
    ProblemType(
        "payload-too-large",
        413,
        "Request body too large",
        "The body is larger than the server accepts (LIANHU_MAX_BODY_BYTES).",
        "Shorten the texts; descriptions take at most 5000 characters.",
    ),
    ProblemType(
        "unsupported-media-type",
        415,
        "Unsupported media type",
        "The body is not declared as JSON.",
        "Send the body with `Content-Type: application/json` (UTF-8).",
    ),
    ProblemType(
        "validation-error",
        422,
        "Invalid request",
        "The request does not fit the schema: a missing or unknown field, a wrong type, "
        "a value out of range (`raised_at` before 2000, no timezone), a header too long.",
        "Correct the fields listed in `errors` and send the request again (schema: /docs).",
    ),
    ProblemType(
        "invalid-petition",
        422,
        "Invalid command",
        "The command is well-formed but its content cannot be accepted (raised_at in the "
        "future, a unit that is not a household, ...).",
        "Correct the field named in `errors` and send the command again.",
    ),
    ProblemType(
        "unknown-reference",
        422,
        "Unknown unit or category",
        "A unit code or category that the rule set in force does not know.",
        "Use a code from the rule set in force (`lianhu rules units`, `lianhu rules categories`).",
    ),
    ProblemType(
        "idempotency-key-reused",
        422,
        "Idempotency-Key reused with a different petition",
        "The Idempotency-Key was already used to file a different petition.",
        "Use a new Idempotency-Key for a new petition; reuse one only to retry the same request.",
    ),
    ProblemType(
        "internal-error",
        500,
        "Internal error",
        "An unexpected error; the server log has the traceback.",
        "Retry later; if it persists, report it with the time and the instance path.",
    ),
    ProblemType(
        "rule-set-error",
        500,
        "The rule set in force cannot decide this",
        "The routing rules could not compute a decision or a deadline for this case "
        "(for example a calendar year the rule set does not cover).",
        "Ask the administrator to run `lianhu rules lint` and fix the rule set.",
    ),
    ProblemType(
        "store-unavailable",
        503,
        "Event store unavailable",
        "The event store could not be reached or refused the write. Nothing was recorded.",
        "Retry after the number of seconds in Retry-After.",
    ),
)

PROBLEM_TYPES: dict[str, ProblemType] = {t.slug: t for t in _TYPES}
_BY_STATUS: dict[int, ProblemType] = {
    t.status: t
    for t in reversed(_TYPES)  # the first type listed for a status is its generic one
}


class Problem(BaseModel):
    """An RFC 9457 problem document, as this API sends it (for the OpenAPI schema)."""

    type: str = Field(description="/problems/<slug>: compare as a string; GET it for docs")
    title: str
    status: int
    detail: str
    instance: str = Field(description="the path of the request that failed")
    hint: str = Field(description="what to do next")
    errors: list[dict[str, str]] | None = Field(
        default=None,
        description="validation only: location, field (dotted), pointer (JSON Pointer into the "
        "body), detail and type of each invalid field",
    )


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these problem statuses."""
    return {
        status: {
            "content": {PROBLEM_MEDIA_TYPE: {"schema": Problem.model_json_schema()}},
            "description": "; ".join(t.title for t in _TYPES if t.status == status),
        }
        for status in statuses
    }


class ApiProblem(Exception):
    """Raised by the API layer itself (a malformed If-Match or If-None-Match header)."""

    def __init__(self, slug: str, detail: str, *, hint: str | None = None) -> None:
        super().__init__(detail)
        self.problem = PROBLEM_TYPES[slug]
        self.detail = detail
        self.hint = hint


def problem_response(
    slug: str,
    detail: str,
    *,
    instance: str,
    hint: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """The problem document for `slug`, as a response."""
    kind = PROBLEM_TYPES[slug]
    body = problem_document(slug, detail, instance=instance, hint=hint, **extensions)
    return Response(
        orjson.dumps(body), status_code=kind.status, headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


def problem_document(
    slug: str, detail: str, *, instance: str, hint: str | None = None, **extensions: Any
) -> dict[str, Any]:
    """The problem document for `slug` as a dict (HTTP bodies and NATS replies alike)."""
    kind = PROBLEM_TYPES[slug]
    return {
        "type": kind.uri,
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        "instance": instance,
        "hint": hint or kind.hint,
        **extensions,
    }


def case_problem_document(exc: CaseError, *, instance: str) -> dict[str, Any]:
    """An engine error as a problem document, exactly as HTTP answers it."""
    slug, extensions, _ = _engine_problem(exc)
    return problem_document(
        slug, exc.message, instance=instance, hint=exc.hint or None, **extensions
    )


def validation_problem_document(
    errors: Sequence[Mapping[str, Any]], *, instance: str, location: str = "body"
) -> dict[str, Any]:
    """A pydantic validation failure of a command body as a problem document."""
    entries = [_validation_entry({**e, "loc": (location, *e["loc"])}) for e in errors]
    fields = ", ".join(e["field"] or e["location"] for e in entries)
    return problem_document(
        "validation-error",
        f"{len(entries)} invalid field{'s' if len(entries) != 1 else ''}: {fields}",
        instance=instance,
        errors=entries,
    )


# -- handlers -------------------------------------------------------------------------------


async def _case_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CaseError)
    slug, extensions, headers = _engine_problem(exc)
    return problem_response(
        slug,
        exc.message,
        instance=request.url.path,
        hint=exc.hint or None,
        headers=headers,
        **extensions,
    )


def _engine_problem(exc: CaseError) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The problem slug, extension members and headers for an engine error."""
    match exc:
        case CaseNotFound():
            return "not-found", {}, {}
        case IllegalTransition():
            return "illegal-transition", {"case_status": exc.status, "command": exc.command}, {}
        case VersionConflict():
            # `expected` is set only when the client named a version (If-Match): 412 then.
            slug = "version-conflict" if exc.expected is None else "precondition-failed"
            versions = {"expected_version": exc.expected, "current_version": exc.actual}
            return slug, versions, {}
        case UnknownReference():
            return "unknown-reference", {"errors": _field_errors(exc)}, {}
        case InvalidPetition():
            return "invalid-petition", {"errors": _field_errors(exc)}, {}
        case IdempotencyKeyReused():
            return "idempotency-key-reused", {}, {}
        case StoreUnavailable():
            return "store-unavailable", {}, {"Retry-After": str(RETRY_AFTER_SECONDS)}
        case _:
            log.error("unmapped engine error %s: %s", type(exc).__name__, exc)
            return "internal-error", {}, {}


def _field_errors(exc: InvalidPetition) -> list[dict[str, str]]:
    if exc.field is None:
        return []
    path = exc.field.split(".")
    return [_error_entry("body", path, exc.message, type(exc).__name__)]


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    malformed = [e for e in errors if e.get("type") == "json_invalid"]
    if malformed:
        ctx = malformed[0].get("ctx") or {}
        position = malformed[0]["loc"][-1]
        reason = ctx.get("error", "decode error")
        detail = f"the body is not valid JSON: {reason} at character {position}"
        return problem_response("bad-request", detail, instance=request.url.path)
    entries = [_validation_entry(e) for e in errors]
    fields = ", ".join(e["field"] or e["location"] for e in entries)
    return problem_response(
        "validation-error",
        f"{len(entries)} invalid field{'s' if len(entries) != 1 else ''}: {fields}",
        instance=request.url.path,
        errors=entries,
    )


def _validation_entry(error: Mapping[str, Any]) -> dict[str, str]:
    location, *path = [str(part) for part in error["loc"]] or ["body"]
    message = str(error["msg"]).removeprefix("Value error, ")
    return _error_entry(location, path, message, str(error["type"]))


def _error_entry(location: str, path: Sequence[str], detail: str, kind: str) -> dict[str, str]:
    """One entry of `errors`: where (location + dotted field + JSON pointer), what and why.

    The input value is never echoed back: it may be personal data.
    """
    entry = {"location": location, "field": ".".join(path), "detail": detail, "type": kind}
    if location == "body":
        escaped = (p.replace("~", "~0").replace("/", "~1") for p in path)
        entry["pointer"] = "#/" + "/".join(escaped) if path else "#"
    return entry


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc.__cause__, UnicodeDecodeError):
        detail = f"the body is not UTF-8: {exc.__cause__.reason} at byte {exc.__cause__.start}"
        return problem_response("bad-request", detail, instance=request.url.path)
    kind = _BY_STATUS.get(exc.status_code)
    if exc.status_code in (404, 405):
        detail = f"no {request.method} {request.url.path} in this API"
        return problem_response(
            "not-found" if exc.status_code == 404 else "method-not-allowed",
            detail,
            instance=request.url.path,
            hint="See /docs for the paths and methods of the API.",
            headers=exc.headers,
        )
    if kind is None:
        # Not one of ours: keep the status, say so plainly (RFC 9457 about:blank semantics).
        body = {
            "type": "about:blank",
            "title": str(exc.detail),
            "status": exc.status_code,
            "instance": request.url.path,
        }
        return Response(
            orjson.dumps(body),
            status_code=exc.status_code,
            headers=exc.headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )
    return problem_response(
        kind.slug, str(exc.detail), instance=request.url.path, headers=exc.headers
    )


async def _api_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    return problem_response(exc.problem.slug, exc.detail, instance=request.url.path, hint=exc.hint)


async def _rule_set_error(request: Request, exc: Exception) -> Response:
    log.error("rule set could not decide %s: %s", request.url.path, exc)
    return problem_response("rule-set-error", str(exc), instance=request.url.path)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # The server logs the traceback: Starlette re-raises the error once this answer is sent.
    detail = f"unexpected {type(exc).__name__}; the server log has the details"
    return problem_response("internal-error", detail, instance=request.url.path)


def install(app: FastAPI) -> None:
    """Register every handler on the app: the one mapping from errors to HTTP."""
    app.add_exception_handler(CaseError, _case_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ApiProblem, _api_problem)
    app.add_exception_handler(RuleSetError, _rule_set_error)
    app.add_exception_handler(Exception, _unexpected)

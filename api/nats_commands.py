"""Departments (and any unit) act on cases over NATS request/reply, validated as over HTTP.

Subject: `<command prefix>.<level>.<unit token>.<verb>`, e.g.
`lianhu.commands.department.housing.accept`; the acting unit is the one the subject names
(token mapping of engine.subjects), so NATS permissions on subjects can scope a
department to its own commands. Body: JSON with the command's other fields, the case
(`"case"`: id or number) and optionally `"expected_version"` (like HTTP If-Match).

Reply: `{"case": <the case as GET /v1/cases/{id} shows it>}` with header
`Content-Type: application/json`, or an RFC 9457 problem document (the same slugs,
statuses and fields as HTTP, `instance` = the request subject) with
`Content-Type: application/problem+json`. The transport is engine.bus.serve_requests.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError

from api.problems import (
    PROBLEM_MEDIA_TYPE,
    case_problem_document,
    problem_document,
    validation_problem_document,
)
from api.views import CaseView
from engine import commands as c
from engine.case import Case
from engine.errors import CaseError
from engine.service import CaseService
from engine.subjects import unit_of_token
from routing_rules import Level, RuleSetError

log = logging.getLogger(__name__)

Verb = Callable[..., Case]
VERBS: dict[str, tuple[type[c.Command], Callable[[CaseService], Verb]]] = {
    "accept": (c.AcceptCase, lambda s: s.accept_case),
    "return": (c.ReturnCase, lambda s: s.return_case),
    "resolve": (c.ResolveCase, lambda s: s.resolve_case),
}
JSON_HEADERS = {"Content-Type": "application/json"}
PROBLEM_HEADERS = {"Content-Type": PROBLEM_MEDIA_TYPE}


def command_subject(prefix: str, level: Level, token: str, verb: str) -> str:
    return f"{prefix}.{level.value}.{token}.{verb}"


class CommandHandler:
    """Turns a request on a command subject into a service call and its reply."""

    def __init__(self, service: CaseService, prefix: str) -> None:
        self.service = service
        self.prefix = prefix

    @property
    def subscription(self) -> str:
        return f"{self.prefix}.*.*.*"

    def __call__(self, subject: str, body: bytes) -> tuple[bytes, dict[str, str]]:
        try:
            document = self._handle(subject, body)
        except _Problem as e:
            return _problem(problem_document(e.slug, str(e), instance=subject, hint=e.hint))
        except _Invalid as e:
            return _problem(validation_problem_document(e.errors, instance=subject))
        except CaseError as e:
            return _problem(case_problem_document(e, instance=subject))
        except RuleSetError as e:
            return _problem(problem_document("rule-set-error", str(e), instance=subject))
        except Exception:  # answered, never left hanging; the traceback goes to the log
            log.exception("command on %s failed", subject)
            detail = "unexpected error; the server log has the details"
            return _problem(problem_document("internal-error", detail, instance=subject))
        return orjson.dumps(document), JSON_HEADERS

    def _handle(self, subject: str, body: bytes) -> dict[str, Any]:
        parts = subject[len(self.prefix) + 1 :].split(".")
        if not subject.startswith(self.prefix + ".") or len(parts) != 3:
            raise _Problem("not-found", f"no command subject {subject}")
        level_token, unit_token, verb = parts
        if verb not in VERBS or level_token not in Level.__members__.values():
            known = ", ".join(VERBS)
            raise _Problem("not-found", f"no command {verb!r} at level {level_token!r}", known)
        unit = unit_of_token(unit_token, Level(level_token))
        try:
            fields = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _Problem("bad-request", f"the body is not valid JSON: {e}") from None
        if not isinstance(fields, dict):
            raise _Problem("bad-request", "the body must be a JSON object")
        ref = fields.pop("case", None)
        expected = fields.pop("expected_version", None)
        errors: list[dict[str, Any]] = []
        if not isinstance(ref, str):
            errors.append(
                {"loc": ("case",), "msg": "a case id or number is required", "type": "missing"}
            )
        if expected is not None and (not isinstance(expected, int) or isinstance(expected, bool)):
            errors.append(
                {"loc": ("expected_version",), "msg": "must be an integer", "type": "int_type"}
            )
        if errors:
            raise _Invalid(errors)
        assert isinstance(ref, str)
        model, verb_of = VERBS[verb]
        try:
            cmd = model.model_validate({**fields, "unit": unit})
        except ValidationError as e:
            raise _Invalid(list(e.errors(include_input=False))) from None
        case_id = self.service.find_case(ref)
        case = verb_of(self.service)(case_id, cmd, expected_version=expected)
        return {"case": CaseView.of(case).model_dump(mode="json")}


class _Problem(Exception):
    """A request that is not a command (unknown subject, a body that is not JSON)."""

    def __init__(self, slug: str, detail: str, hint: str | None = None) -> None:
        super().__init__(detail)
        self.slug = slug
        self.hint = hint


class _Invalid(Exception):
    """A command body that does not validate."""

    def __init__(self, errors: list[Any]) -> None:
        super().__init__("invalid command")
        self.errors = errors


def _problem(document: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return orjson.dumps(document), PROBLEM_HEADERS

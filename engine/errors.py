"""One small tree of errors, translated from library errors at the boundary.

Each error carries a `hint`: what the caller should do next. The API maps the
classes to HTTP problem documents in one place (api/problems.py).
"""

from __future__ import annotations

from uuid import UUID


class CaseError(Exception):
    """Root of every error a command can raise."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class CaseNotFound(CaseError):
    hint = "Check the case id or the short number (like 261128-7KQ2M) and try again."

    def __init__(self, ref: UUID | str) -> None:
        super().__init__(f"no case {ref}")
        self.ref = ref


class InvalidPetition(CaseError):
    """The input of a command is malformed or refers to something unknown."""

    hint = "Correct the field named in the message and send the command again."

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


class UnknownReference(InvalidPetition):
    """A unit, department or category that the rule set in force does not know."""

    hint = "Use a code of the rule set in force: `lianhu rules units`, `lianhu rules categories`."


class IllegalTransition(CaseError):
    """The command is not allowed in the case's current state. Nothing was recorded."""

    def __init__(self, case_id: UUID, command: str, status: str, why: str, *, hint: str) -> None:
        super().__init__(f"cannot {command} case {case_id} while it is {status}: {why}", hint=hint)
        self.case_id = case_id
        self.command = command
        self.status = status


class WrongUnit(IllegalTransition):
    """The acting unit does not hold the case."""


class VersionConflict(CaseError):
    """Someone else changed the case first. Nothing was recorded."""

    hint = "Read the case again (GET it for the new ETag), check the change still applies, retry."

    def __init__(self, case_id: UUID, expected: int | None, actual: int | None) -> None:
        what = (
            f"expected version {expected}, found {actual}"
            if expected is not None
            else ("it was changed concurrently")
        )
        super().__init__(f"case {case_id} was changed by someone else: {what}")
        self.case_id = case_id
        self.expected = expected
        self.actual = actual


class IdempotencyKeyReused(CaseError):
    """An idempotency key came back with a different petition."""

    hint = "Use a new Idempotency-Key for a new petition; reuse one only to retry the same request."


class StoreUnavailable(CaseError):
    """The event store could not be reached or refused the write. Nothing was recorded."""

    hint = "Retry in a few seconds; if it persists, check that the database is up and reachable."

"""How the CLI reports engine, validation and rule-set errors: `error:` and `hint:` on stderr."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from engine.errors import CaseError, InvalidPetition
from projections.pipeline import WriterFailed
from routing_rules import RuleSetError

P = ParamSpec("P")
R = TypeVar("R")

EXIT_FAILED = 1
EXIT_INVALID = 2


def fail(message: str, hint: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
    raise typer.Exit(code)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Engine, validation, rule-set and view-writer errors become `error:`/`hint:` lines and an
    exit code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except InvalidPetition as e:
            fail(e.message, e.hint, EXIT_INVALID)
        except CaseError as e:
            fail(e.message, e.hint, EXIT_FAILED)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'input'}: "
                f"{str(err['msg']).removeprefix('Value error, ')}"
                for err in e.errors()
            )
            fail(f"invalid {problems}", "Correct the option named and run it again.", EXIT_INVALID)
        except RuleSetError as e:
            fail(str(e), "Check the rule set with `lianhu rules lint`.", EXIT_FAILED)
        except WriterFailed as e:
            fail(
                str(e),
                "Fix the cause named (disk space, permissions), then run the same command "
                "again: it resumes after the last whole batch.",
                EXIT_FAILED,
            )

    return run

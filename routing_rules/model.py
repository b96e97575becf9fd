"""What rule files declare: urgencies, categories and routes."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from routing_rules.errors import (
    CalendarNotCovered,
    InvalidUnitCode,
    MissingSla,
    RuleSetError,
    UnknownCategory,
    UnknownUnit,
)
from routing_rules.units import Level, level_of_code

__all__ = [
    "CalendarNotCovered",
    "Category",
    "InvalidUnitCode",
    "MissingSla",
    "Route",
    "RuleSetError",
    "UnknownCategory",
    "UnknownUnit",
    "Urgency",
    "When",
]


class Urgency(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"
    EMERGENCY = "emergency"

    @property
    def rank(self) -> int:
        """0, 1, 2: compare ranks to tell whether urgency was lowered."""
        return _URGENCY_ORDER.index(self)


_URGENCY_ORDER = (Urgency.NORMAL, Urgency.URGENT, Urgency.EMERGENCY)


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
RouteId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$")]
Word = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
TREE_TARGETS = ("household", "group", "village", "township", "county")


def _check_target(value: str) -> str:
    if value in TREE_TARGETS or re.fullmatch(r"dept:[a-z][a-z0-9_]*", value):
        return value
    raise ValueError(f"not a target; use one of {', '.join(TREE_TARGETS)} or dept:<code>")


# A target: a tree level resolved from the filing household ("village"), or a department.
Target = Annotated[str, AfterValidator(_check_target)]


class Category(_Rule):
    code: Code
    name: Word
    description: str
    keywords: tuple[Word, ...] = ()


class When(_Rule):
    """Conditions of a route; every condition given must hold, an absent one always holds."""

    categories: tuple[Code, ...] | None = Field(default=None, min_length=1)
    urgencies: tuple[Urgency, ...] | None = Field(default=None, min_length=1)
    keywords_any: tuple[Word, ...] | None = Field(default=None, min_length=1)
    units: tuple[str, ...] | None = Field(default=None, min_length=1)

    @field_validator("units")
    @classmethod
    def _scopes_are_unit_codes(cls, scopes: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for scope in scopes or ():
            try:
                level_of_code(scope)
            except InvalidUnitCode as error:
                raise ValueError(str(error)) from None
        return scopes

    @property
    def is_empty(self) -> bool:
        return all(
            value is None
            for value in (self.categories, self.urgencies, self.keywords_any, self.units)
        )


class Route(_Rule):
    id: RouteId
    description: str = ""
    when: When = When()
    handle_at: Target
    co_handlers: tuple[Target, ...] = ()
    escalate: tuple[Target, ...] = ()

    @property
    def is_catch_all(self) -> bool:
        """A route without conditions takes every petition that reaches it."""
        return self.when.is_empty

    def targets(self) -> tuple[tuple[str, str], ...]:
        """(field, target) for every target the route names, in file order."""
        return (
            ("handle_at", self.handle_at),
            *(("co_handlers", t) for t in self.co_handlers),
            *(("escalate", t) for t in self.escalate),
        )


def target_level(target: str) -> Level:
    """The level a target names: 'village' → VILLAGE, 'dept:x' → DEPARTMENT."""
    return Level.DEPARTMENT if target.startswith("dept:") else Level(target)


def check_targets(route: Route) -> None:
    """Checks across fields: no handler among its co-handlers, no repeats, a climbing ladder."""
    for field, targets in (("co_handlers", route.co_handlers), ("escalate", route.escalate)):
        seen = {route.handle_at}
        for target in targets:
            if target in seen:
                raise RuleSetError(
                    f"'{target}' repeats the handler or an earlier entry",
                    rule_id=route.id,
                    field=field,
                )
            seen.add(target)
    floor = target_level(route.handle_at)
    for target in route.escalate:
        level = target_level(target)
        if not level.in_tree:
            continue
        if floor.in_tree and level.rank <= floor.rank:
            raise RuleSetError(
                f"rung '{target}' is not above '{floor}'; the ladder must climb",
                rule_id=route.id,
                field="escalate",
            )
        floor = level

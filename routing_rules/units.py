"""Units of the jurisdiction: levels, code shapes and the tree."""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from routing_rules.errors import InvalidUnitCode, RuleSetError, UnknownUnit


class Level(StrEnum):
    HOUSEHOLD = "household"
    GROUP = "group"
    VILLAGE = "village"
    TOWNSHIP = "township"
    COUNTY = "county"
    DEPARTMENT = "department"

    @property
    def in_tree(self) -> bool:
        """True for the levels of the household → county tree; departments sit outside it."""
        return self is not Level.DEPARTMENT

    @property
    def rank(self) -> int:
        """Height in the tree: household 0 … county 4; departments -1 (not comparable)."""
        return _TREE.index(self) if self.in_tree else -1


_TREE = (Level.HOUSEHOLD, Level.GROUP, Level.VILLAGE, Level.TOWNSHIP, Level.COUNTY)

_SHAPES = (
    (re.compile(r"\d{6}"), Level.COUNTY),
    (re.compile(r"\d{9}"), Level.TOWNSHIP),
    (re.compile(r"\d{12}"), Level.VILLAGE),
    (re.compile(r"\d{12}-\d{2}"), Level.GROUP),
    (re.compile(r"\d{12}-\d{2}-\d{2}"), Level.HOUSEHOLD),
    (re.compile(r"dept:[a-z][a-z0-9_]*"), Level.DEPARTMENT),
)

# The length of a tree code at each level: an ancestor's code is a prefix of this length.
_CODE_LENGTH = {
    Level.COUNTY: 6,
    Level.TOWNSHIP: 9,
    Level.VILLAGE: 12,
    Level.GROUP: 15,
    Level.HOUSEHOLD: 18,
}

CODE_SHAPES_HINT = (
    "county 6 digits, township 9, village 12, group village-GG, household group-HH, "
    "department dept:<lowercase_name>"
)


def level_of_code(code: str) -> Level:
    """The level a code denotes, from its shape alone; raises InvalidUnitCode."""
    for pattern, level in _SHAPES:
        if pattern.fullmatch(code):
            return level
    raise InvalidUnitCode(code, reason=f"expected {CODE_SHAPES_HINT}")


def parent_code(code: str) -> str | None:
    """The code of the parent in the tree (by shape); None for counties and departments."""
    level = level_of_code(code)
    if level in (Level.COUNTY, Level.DEPARTMENT):
        return None
    return code[: _CODE_LENGTH[_TREE[level.rank + 1]]]


class Unit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    name: str
    level: Level
    parent: str | None


class Jurisdiction:
    """The units a rule set knows: the county tree plus the departments."""

    def __init__(self, units: Iterable[Unit]) -> None:
        self._units: dict[str, Unit] = {}
        self._children: dict[str, list[Unit]] = {}
        for unit in units:
            _check_unit(unit)
            if unit.code in self._units:
                raise RuleSetError("duplicate unit code", rule_id=unit.code, field="code")
            self._units[unit.code] = unit
        for unit in self._units.values():
            if unit.parent is None:
                continue
            if unit.parent not in self._units:
                raise UnknownUnit(
                    unit.parent, hint="parent not listed", rule_id=unit.code, field="parent"
                )
            self._children.setdefault(unit.parent, []).append(unit)

    def unit(self, code: str) -> Unit:
        try:
            return self._units[code]
        except KeyError:
            raise UnknownUnit(code) from None

    def __contains__(self, code: object) -> bool:
        return code in self._units

    def __len__(self) -> int:
        return len(self._units)

    def units(self) -> Iterable[Unit]:
        return self._units.values()

    def departments(self) -> list[Unit]:
        return [u for u in self._units.values() if u.level is Level.DEPARTMENT]

    def children(self, code: str) -> list[Unit]:
        self.unit(code)
        return list(self._children.get(code, ()))

    def ancestor_at(self, code: str, level: Level) -> Unit | None:
        """The unit's ancestor at `level` (the unit itself if already there); None if none."""
        unit = self.unit(code)
        if unit.level is level:
            return unit
        if not (unit.level.in_tree and level.in_tree) or level.rank < unit.level.rank:
            return None
        return self.unit(code[: _CODE_LENGTH[level]])

    def ancestors(self, code: str) -> list[Unit]:
        """Ancestors of the unit, nearest first, excluding itself."""
        found: list[Unit] = []
        parent = self.unit(code).parent
        while parent is not None:
            unit = self.unit(parent)
            found.append(unit)
            parent = unit.parent
        return found

    def in_subtree(self, code: str, scope: str) -> bool:
        """Is `code` the unit `scope` or below it? Tree codes by prefix; departments by equality."""
        if code.startswith("dept:") or scope.startswith("dept:"):
            return code == scope
        return code.startswith(scope)


def _check_unit(unit: Unit) -> None:
    where = {"rule_id": unit.code}
    if not unit.name.strip():
        raise RuleSetError("empty name", field="name", **where)
    try:
        shape = level_of_code(unit.code)
    except InvalidUnitCode as error:
        raise error.at(field="code", **where) from None
    if shape is not unit.level:
        raise RuleSetError(
            f"level '{unit.level}' does not fit the code, whose shape is a {shape} code",
            field="level",
            **where,
        )
    expected = parent_code(unit.code)
    if unit.parent != expected:
        wanted = f"'{expected}'" if expected else "empty"
        raise RuleSetError(f"parent must be {wanted}", field="parent", **where)

"""Where a case event goes on NATS: the units it concerns and their subjects (docs/nats.md).

An event is published once per unit it concerns, on

    <prefix>.<level>.<unit token>.<EventName>
    e.g. cases.household.510123104201-03-07.CaseRouted, cases.department.housing.CaseAccepted

The units an event concerns are the unit holding the case after it; for a hand-over
(routed, returned, referred, escalated) also the unit that held it before; and every
co-handler of the case (joint handling: they see the whole case).

A unit code becomes one subject token: a department drops its `dept:` prefix (the level
token already says `department`); every character outside `[A-Za-z0-9_-]` (`:`, `.`, `*`,
`>`, `~`, spaces, non-ASCII) is written `~XX`, one per UTF-8 byte in upper-case hex. The
mapping is reversible (`unit_of_token`) and the tokens are valid in every NATS client.

Which unit holds a case at an event is a fold over the case's own events (`Holding`), so
re-reading the log after a crash gives the same subjects, hence the same message ids.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from engine.events import (
    CaseEscalated,
    CaseEvent,
    CaseReferred,
    CaseReturned,
    CaseRouted,
    PetitionFiled,
)
from routing_rules import Level

DEPARTMENT_PREFIX = "dept:"
_PLAIN = re.compile(r"[A-Za-z0-9_-]")
_ESCAPE = re.compile(r"~([0-9A-F]{2})")
HANDOVERS = (CaseRouted, CaseReturned, CaseReferred, CaseEscalated)
HANDOVER_NAMES = frozenset(cls.__name__ for cls in HANDOVERS)
_MOVES = frozenset(cls.__name__ for cls in (CaseReturned, CaseReferred, CaseEscalated))


@functools.lru_cache(maxsize=65_536)
def unit_token(unit: str, level: Level) -> str:
    """The subject token of a unit code (reversible: see `unit_of_token`)."""
    if level is Level.DEPARTMENT and unit.startswith(DEPARTMENT_PREFIX):
        unit = unit[len(DEPARTMENT_PREFIX) :]
    if not unit:
        raise ValueError("an empty unit code has no subject token")
    return "".join(
        ch if _PLAIN.fullmatch(ch) else "".join(f"~{b:02X}" for b in ch.encode()) for ch in unit
    )


def unit_of_token(token: str, level: Level) -> str:
    """The unit code a subject token stands for."""
    code, i = bytearray(), 0
    while i < len(token):
        if token[i] == "~" and _ESCAPE.match(token, i):
            code.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            code += token[i].encode()
            i += 1
    unit = code.decode()
    return DEPARTMENT_PREFIX + unit if level is Level.DEPARTMENT else unit


def subject(prefix: str, level: Level, unit: str, event_name: str) -> str:
    return f"{prefix}.{level.value}.{unit_token(unit, level)}.{event_name}"


@dataclass(frozen=True)
class Holding:
    """Who holds a case after one of its events: enough to address its messages."""

    number: str
    unit: str
    level: Level
    co_handlers: tuple[str, ...] = ()

    def after(self, event: CaseEvent) -> Holding:
        """The holding after `event` (the same fold as the aggregate's, for these fields)."""
        match event:
            case CaseRouted():
                return replace(
                    self,
                    unit=event.handler,
                    level=event.handler_level,
                    co_handlers=event.co_handlers,
                )
            case CaseReturned() | CaseReferred() | CaseEscalated():
                return replace(self, unit=event.to_unit, level=event.to_level)
            case _:
                return self

    def after_stored(self, name: str, state: dict[str, Any]) -> Holding:
        """`after` for an event of type `name` given as its stored JSON fields (the relay's
        fast path: no pydantic model)."""
        if name == "CaseRouted":
            return Holding(
                self.number,
                state["handler"],
                Level(state["handler_level"]),
                tuple(state["co_handlers"]),
            )
        if name in _MOVES:
            return Holding(
                self.number, state["to_unit"], Level(state["to_level"]), self.co_handlers
            )
        return self

    @staticmethod
    def filed(event: PetitionFiled) -> Holding:
        return Holding(event.number, event.household_unit, Level.HOUSEHOLD)

    @staticmethod
    def filed_stored(state: dict[str, Any]) -> Holding:
        return Holding(state["number"], state["household_unit"], Level.HOUSEHOLD)


LevelOf = Callable[[str], Level]


def concerned(
    before: Holding | None, after: Holding, event: CaseEvent, level_of: LevelOf
) -> list[tuple[Level, str]]:
    """The (level, unit) pairs an event concerns, each once, holder first."""
    return concerned_units(before, after, isinstance(event, HANDOVERS), level_of)


def concerned_units(
    before: Holding | None, after: Holding, handover: bool, level_of: LevelOf
) -> list[tuple[Level, str]]:
    """`concerned`, for an event that is a hand-over (`handover`) or not."""
    if before is None or not handover or before.unit == after.unit:
        if not after.co_handlers:
            return [(after.level, after.unit)]
        units = [(after.level, after.unit)]
    else:
        units = [(after.level, after.unit), (before.level, before.unit)]
    units += [(level_of(unit), unit) for unit in after.co_handlers]
    seen: set[str] = set()
    unique = []
    for level, unit in units:
        if unit not in seen:
            seen.add(unit)
            unique.append((level, unit))
    return unique

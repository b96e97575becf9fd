"""Deadlines: respond and resolve windows per level and urgency, in hours or working days."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from routing_rules.calendar import WorkCalendar
from routing_rules.errors import MissingSla, RuleSetError
from routing_rules.model import Urgency
from routing_rules.units import Level

if TYPE_CHECKING:
    from routing_rules.ruleset import RuleSet


class Window(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: int = Field(gt=0)
    unit: Literal["hours", "working_days"]

    def __str__(self) -> str:
        return f"{self.amount} {self.unit.replace('_', ' ')}"


class SlaEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    level: Level
    urgency: Urgency
    respond: Window
    resolve: Window


class Deadlines(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    respond_due: datetime
    resolve_due: datetime


class SlaTable:
    """One SLA row per level × urgency."""

    def __init__(self, entries: Iterable[SlaEntry]) -> None:
        self._entries: dict[tuple[Level, Urgency], SlaEntry] = {}
        for entry in entries:
            key = (entry.level, entry.urgency)
            if key in self._entries:
                raise RuleSetError(
                    "duplicate SLA row", rule_id=f"{entry.level}/{entry.urgency}", field="level"
                )
            self._entries[key] = entry

    def entry(self, level: Level, urgency: Urgency) -> SlaEntry:
        try:
            return self._entries[(level, urgency)]
        except KeyError:
            raise MissingSla(level, urgency) from None

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def entries(self) -> list[SlaEntry]:
        return list(self._entries.values())


def due_time(window: Window, start: datetime, calendar: WorkCalendar) -> datetime:
    """When a window opened at `start` closes: clock hours, or working days on the calendar."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if window.unit == "hours":
        # Elapsed time, computed in UTC so a zone with daylight saving cannot bend it.
        return (start.astimezone(UTC) + timedelta(hours=window.amount)).astimezone(start.tzinfo)
    return calendar.add_working_days(start, window.amount)


def deadlines_for(rule_set: RuleSet, level: Level, urgency: Urgency, start: datetime) -> Deadlines:
    """Respond and resolve due times for a case assigned at `level` at `start`."""
    respond_due, resolve_due = due_times(rule_set, level, urgency, start)
    return Deadlines(respond_due=respond_due, resolve_due=resolve_due)


def due_times(
    rule_set: RuleSet, level: Level, urgency: Urgency, start: datetime
) -> tuple[datetime, datetime]:
    """(respond_due, resolve_due) of `deadlines_for`, without the model (for the filing)."""
    entry = rule_set.sla.entry(level, urgency)
    return (
        due_time(entry.respond, start, rule_set.calendar),
        due_time(entry.resolve, start, rule_set.calendar),
    )

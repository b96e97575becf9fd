"""Chinese working days: weekends, public holidays and adjusted working weekends (调休).

Holiday data comes from the `chinese_calendar` package; calendar.toml may override single
dates and declare whole years the package does not know yet. Precedence: a dated override,
then a declared year, then the package.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import chinese_calendar
from pydantic import BaseModel, ConfigDict, model_validator

from routing_rules.errors import CalendarNotCovered

DEFAULT_TIMEZONE = "Asia/Shanghai"
AFTER_MEMO_LIMIT = 100_000  # memoised (day, n) answers kept; a full memo starts over


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Override(_Entry):
    """One date declared a holiday (day off) or a working day, whatever the package says."""

    date: date
    kind: Literal["holiday", "workday"]
    name: str = ""


class DeclaredYear(_Entry):
    """A whole year: weekdays work except `holidays`; weekends rest except `workdays` (调休)."""

    year: int
    holidays: tuple[date, ...] = ()
    workdays: tuple[date, ...] = ()
    source: str = ""

    @model_validator(mode="after")
    def _dates_inside_the_year(self) -> DeclaredYear:
        for day in (*self.holidays, *self.workdays):
            if day.year != self.year:
                raise ValueError(f"{day} is not in {self.year}")
        both = set(self.holidays) & set(self.workdays)
        if both:
            raise ValueError(f"{min(both)} is both a holiday and a working day")
        return self

    def is_workday(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays


def package_years() -> range:
    """The years the installed chinese_calendar covers."""
    years = [day.year for day in chinese_calendar.holidays]
    return range(min(years), max(years) + 1)


Fallback = Literal["error", "weekends"]
"""For a year neither the package nor calendar.toml covers: refuse, or count Monday-Friday."""


class WorkCalendar:
    """Answers 'is this a working day' and 'N working days after this moment'."""

    def __init__(
        self,
        *,
        timezone: str = DEFAULT_TIMEZONE,
        overrides: Iterable[Override] = (),
        years: Iterable[DeclaredYear] = (),
        fallback: Fallback = "error",
    ) -> None:
        self.timezone = ZoneInfo(timezone)
        self.fallback: Fallback = fallback
        self._memo: dict[date, bool] = {}
        self._after: dict[tuple[date, int], date] = {}  # (day, n) -> n-th working day after
        self._overrides = {o.date: o.kind == "workday" for o in overrides}
        self._years = {y.year: y for y in years}
        self._package_years = package_years()

    @property
    def covered_years(self) -> frozenset[int]:
        return frozenset(self._package_years) | frozenset(self._years)

    def is_workday(self, day: date) -> bool:
        """Raises CalendarNotCovered for a year neither the package nor calendar.toml covers."""
        known = self._memo.get(day)
        if known is None:
            known = self._memo[day] = self._is_workday(day)
        return known

    def _is_workday(self, day: date) -> bool:
        # the package validates every date it is asked about (~35 µs); answers are memoised
        if day in self._overrides:
            return self._overrides[day]
        if day.year in self._years:
            return self._years[day.year].is_workday(day)
        if day.year in self._package_years:
            return bool(chinese_calendar.is_workday(day))
        if self.fallback == "weekends":
            # explicit, opted into in calendar.toml, reported by `lianhu rules lint`
            return day.weekday() < 5
        raise CalendarNotCovered(day.year, covered=self._describe_coverage())

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The same local time of day on the `days`-th working day after start's local date.

        `start` must be timezone-aware; the result is in start's timezone. Zero days: `start`.
        """
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if days < 0:
            raise ValueError("days must not be negative")
        if days == 0:
            return start
        local = start.astimezone(self.timezone)
        key = (local.date(), days)
        day = self._after.get(key)
        if day is None:  # the date arithmetic depends on the date alone: memoised
            day = self._working_day_after(*key)
            if len(self._after) >= AFTER_MEMO_LIMIT:
                self._after.clear()
            self._after[key] = day
        due = datetime.combine(day, local.time(), tzinfo=self.timezone)
        return due.astimezone(start.tzinfo)

    def _working_day_after(self, day: date, days: int) -> date:
        """The `days`-th working day after `day`; raises CalendarNotCovered on the way."""
        remaining = days
        while remaining:
            day += timedelta(days=1)
            if self.is_workday(day):
                remaining -= 1
        return day

    def _describe_coverage(self) -> str:
        parts = [
            f"{self._package_years.start}–{self._package_years.stop - 1} from chinese_calendar"
        ]
        if self._years:
            parts.append(", ".join(str(y) for y in sorted(self._years)) + " from calendar.toml")
        return "; ".join(parts)

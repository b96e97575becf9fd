"""Working days on the Chinese calendar: holidays, adjusted weekends, overrides, coverage."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing_rules import (
    CalendarNotCovered,
    DeclaredYear,
    Override,
    RuleSetError,
    WorkCalendar,
    load_rule_set,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkCalendar()


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        # National Day week: 10-01…10-07 off, so one working day after Wed 09-30 is Thu 10-08.
        (local(2026, 9, 30, 10), 1, local(2026, 10, 8, 10)),
        # Sun 09-20 is an adjusted working day (调休): Sun, Mon, Tue.
        (local(2026, 9, 18, 10), 3, local(2026, 9, 22, 10)),
        # Sat 02-14 is an adjusted working day, then Spring Festival 02-15…02-23 off.
        (local(2026, 2, 13, 10), 2, local(2026, 2, 24, 10)),
    ],
)
def test_worked_examples(start: datetime, days: int, due: datetime) -> None:
    in_utc = start.astimezone(UTC)

    result = CALENDAR.add_working_days(in_utc, days)

    assert result == due
    assert result.tzinfo is UTC  # out in the timezone it came in


def test_local_date_decides_not_the_utc_date() -> None:
    # Fri 2026-09-18 23:30 UTC is already Sat 09-19 07:30 in Shanghai.
    start = datetime(2026, 9, 18, 23, 30, tzinfo=UTC)

    due = CALENDAR.add_working_days(start, 1)

    assert due.astimezone(SHANGHAI) == local(2026, 9, 20, 7, 30)


def test_zero_days_is_the_start_and_bad_input_is_refused() -> None:
    start = local(2026, 10, 1, 9)

    assert CALENDAR.add_working_days(start, 0) == start
    with pytest.raises(ValueError, match="timezone-aware"):
        CALENDAR.add_working_days(datetime(2026, 10, 1, 9), 1)
    with pytest.raises(ValueError, match="negative"):
        CALENDAR.add_working_days(start, -1)


def count_workdays_after(start: date, end: date) -> int:
    """Independent oracle: workdays in (start, end], day by day, straight from the package."""
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        count += chinese_calendar.is_workday(day)
    return count


@settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2004, 1, 2), max_value=datetime(2026, 10, 31),
                       timezones=st.just(UTC)),
    days=st.integers(min_value=1, max_value=30),
)  # fmt: skip
def test_n_working_days_land_on_the_nth_workday(start: datetime, days: int) -> None:
    due = CALENDAR.add_working_days(start, days)
    later = CALENDAR.add_working_days(start, days + 1)

    start_local, due_local = start.astimezone(SHANGHAI), due.astimezone(SHANGHAI)
    assert chinese_calendar.is_workday(due_local.date())
    assert CALENDAR.is_workday(due_local.date())
    assert count_workdays_after(start_local.date(), due_local.date()) == days
    assert due_local.time() == start_local.time()
    assert start < due < later


@settings(max_examples=200, deadline=None)
@given(st.dates(min_value=date(2004, 1, 1), max_value=date(2026, 12, 31)))
def test_without_overrides_the_package_decides(day: date) -> None:
    assert CALENDAR.is_workday(day) == chinese_calendar.is_workday(day)


def test_uncovered_year_fails_loudly_naming_the_year() -> None:
    with pytest.raises(CalendarNotCovered) as raised:
        CALENDAR.is_workday(date(2027, 1, 4))

    message = str(raised.value)
    assert raised.value.year == 2027
    assert "2027" in message and "calendar.toml" in message and "2004–2026" in message
    with pytest.raises(CalendarNotCovered):
        CALENDAR.add_working_days(local(2026, 12, 30, 9), 5)
    with pytest.raises(CalendarNotCovered, match="2003"):
        CALENDAR.is_workday(date(2003, 12, 31))


def test_overrides_win_over_the_package() -> None:
    calendar = WorkCalendar(
        overrides=[
            Override(date=date(2026, 6, 1), kind="holiday", name="本县防汛调休"),
            Override(date=date(2026, 6, 6), kind="workday"),
        ]
    )

    assert not calendar.is_workday(date(2026, 6, 1))  # a Monday
    assert calendar.is_workday(date(2026, 6, 6))  # a Saturday
    # Fri 05-29 + 1: Sat 05-30 off, Sun 05-31 off, Mon 06-01 now off → Tue 06-02.
    assert calendar.add_working_days(local(2026, 5, 29, 9), 1) == local(2026, 6, 2, 9)


YEAR_2027 = """
timezone = "Asia/Shanghai"

[[override]]
date = 2026-10-09
kind = "holiday"
name = "made-up local day off"

[[year]]
year = 2027
source = "made up for this test"
holidays = [2027-01-01, 2027-02-08, 2027-02-09, 2027-02-10, 2027-02-11, 2027-02-12]
workdays = [2027-02-20]
"""


def test_calendar_file_declares_a_whole_new_year(rule_copy: Path) -> None:
    (rule_copy / "calendar.toml").write_text(YEAR_2027, encoding="utf-8")

    calendar = load_rule_set(rule_copy).calendar

    assert 2027 in calendar.covered_years and 2026 in calendar.covered_years
    assert not calendar.is_workday(date(2027, 1, 1))  # declared holiday, a Friday
    assert calendar.is_workday(date(2027, 1, 4))  # an ordinary Monday
    assert not calendar.is_workday(date(2027, 1, 9))  # an ordinary Saturday
    assert calendar.is_workday(date(2027, 2, 20))  # adjusted working Saturday
    assert not calendar.is_workday(date(2026, 10, 9))  # dated override beats the package
    # Thu 2026-12-31 + 1 → Mon 2027-01-04 (Fri 01-01 off, weekend).
    assert calendar.add_working_days(local(2026, 12, 31, 15), 1) == local(2027, 1, 4, 15)
    # Fri 2027-02-05 + 2 → Sat 02-20? No: Mon 02-15, Tue 02-16 (02-08…02-12 off).
    assert calendar.add_working_days(local(2027, 2, 5, 8), 2) == local(2027, 2, 16, 8)
    with pytest.raises(CalendarNotCovered, match="2028"):
        calendar.is_workday(date(2028, 1, 3))


def test_a_declared_year_keeps_its_dates_inside_it() -> None:
    with pytest.raises(ValueError, match="not in 2027"):
        DeclaredYear(year=2027, holidays=(date(2028, 1, 1),))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[[year]]\nyear = 2027\nholidays = [2028-01-03]\n", ["year '2027'", "not in 2027"]),
        ("[[year]]\nyear = 2027\n\n[[year]]\nyear = 2027\n", ["year '2027'", "declared twice"]),
        ('[[override]]\ndate = 2026-06-01\nkind = "rest"\n', ["2026-06-01", "field 'kind'"]),
        ('[[override]]\ndate = 2026-06-01\nkind = "holiday"\n\n'
         '[[override]]\ndate = 2026-06-01\nkind = "workday"\n', ["overridden twice"]),
        ('[[holiday]]\ndate = 2026-06-01\n', ["field 'holiday'", "unknown top-level key"]),
    ],
)  # fmt: skip
def test_a_broken_calendar_file_is_named(rule_copy: Path, text: str, words: list[str]) -> None:
    (rule_copy / "calendar.toml").write_text(text, encoding="utf-8")

    with pytest.raises(RuleSetError) as raised:
        load_rule_set(rule_copy)

    assert str(raised.value).startswith("calendar.toml: ")
    for word in words:
        assert word in str(raised.value)


def test_local_time_of_day_is_kept_at_midnight() -> None:
    start = datetime.combine(date(2026, 9, 30), time(0, 0), tzinfo=SHANGHAI)

    assert CALENDAR.add_working_days(start, 1) == local(2026, 10, 8, 0, 0)


@settings(max_examples=200, deadline=None)
@given(
    starts=st.lists(
        st.datetimes(min_value=datetime(2004, 1, 2), max_value=datetime(2026, 10, 31),
                     timezones=st.sampled_from([UTC, SHANGHAI, ZoneInfo("America/New_York")])),
        min_size=1, max_size=20),
    days=st.integers(min_value=1, max_value=30),
)  # fmt: skip
def test_memoised_working_days_equal_a_fresh_count(starts: list[datetime], days: int) -> None:
    shared = WorkCalendar()
    for start in starts + [s + timedelta(hours=h) for s in starts for h in (1, 7, 23)]:
        assert shared.add_working_days(start, days) == WorkCalendar().add_working_days(start, days)


def test_an_uncovered_year_is_refused_every_time_not_just_the_first() -> None:
    calendar = WorkCalendar()
    start = local(max(calendar.covered_years) + 1, 3, 2, 9)
    for _ in range(2):
        with pytest.raises(CalendarNotCovered):
            calendar.add_working_days(start, 3)

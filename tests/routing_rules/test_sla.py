"""SLA windows and the deadlines they give."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from routing_rules import (
    Deadlines,
    Level,
    MissingSla,
    RuleSet,
    SlaTable,
    Urgency,
    Window,
    WorkCalendar,
    deadlines_for,
    default_rule_set_path,
    due_time,
    due_times,
    load_rule_set,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULES = load_rule_set(default_rule_set_path())


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2004, 1, 1), max_value=datetime(2026, 12, 1),
                       timezones=st.sampled_from([UTC, SHANGHAI, ZoneInfo("Europe/Berlin")])),
    hours=st.integers(min_value=1, max_value=24 * 30),
)  # fmt: skip
def test_hour_windows_are_plain_clock_arithmetic(start: datetime, hours: int) -> None:
    due = due_time(Window(amount=hours, unit="hours"), start, WorkCalendar())

    assert due.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=hours)


def test_hour_windows_ignore_holidays() -> None:
    start = datetime(2026, 10, 1, 9, tzinfo=SHANGHAI)  # National Day

    due = due_time(Window(amount=12, unit="hours"), start, WorkCalendar())

    assert due == datetime(2026, 10, 1, 21, tzinfo=SHANGHAI)


def test_department_deadlines_over_national_day(rules: RuleSet) -> None:
    start = datetime(2026, 9, 30, 10, tzinfo=SHANGHAI).astimezone(UTC)

    deadlines = deadlines_for(rules, Level.DEPARTMENT, Urgency.NORMAL, start)

    # respond 1 working day, resolve 5: Oct 8, 9, Sat 10 (调休), 12, 13.
    assert deadlines == Deadlines(
        respond_due=datetime(2026, 10, 8, 10, tzinfo=SHANGHAI),
        resolve_due=datetime(2026, 10, 13, 10, tzinfo=SHANGHAI),
    )


def test_household_deadlines_answer_before_the_night_is_over(rules: RuleSet) -> None:
    start = datetime(2026, 3, 2, 19, tzinfo=SHANGHAI)

    deadlines = deadlines_for(rules, Level.HOUSEHOLD, Urgency.NORMAL, start)

    assert deadlines.respond_due == datetime(2026, 3, 3, 7, tzinfo=SHANGHAI)


@pytest.mark.parametrize("level", list(Level))
def test_emergencies_resolve_within_24_hours_everywhere(rules: RuleSet, level: Level) -> None:
    entry = rules.sla.entry(level, Urgency.EMERGENCY)

    assert entry.resolve == Window(amount=24, unit="hours")
    assert entry.respond.unit == "hours" and entry.respond.amount <= 2


def test_a_missing_row_names_level_and_urgency(rules: RuleSet) -> None:
    table = SlaTable(e for e in rules.sla.entries() if e.level is not Level.COUNTY)
    partial = dataclasses.replace(rules, sla=table)

    with pytest.raises(MissingSla, match="level 'county' and urgency 'urgent'"):
        deadlines_for(partial, Level.COUNTY, Urgency.URGENT, datetime(2026, 3, 2, tzinfo=UTC))


def test_windows_must_be_positive_hours_or_working_days() -> None:
    with pytest.raises(ValidationError):
        Window(amount=0, unit="hours")
    with pytest.raises(ValidationError):
        Window.model_validate({"amount": 3, "unit": "days"})


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        due_time(Window(amount=1, unit="hours"), datetime(2026, 3, 2), WorkCalendar())


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([lv for lv in Level if (lv, Urgency.NORMAL) in RULES.sla]),
    st.sampled_from(list(Urgency)),
    st.datetimes(datetime(2004, 1, 2), datetime(2026, 10, 31), timezones=st.just(UTC)),
)
def test_due_times_are_the_deadlines_without_the_model(
    level: Level, urgency: Urgency, start: datetime
) -> None:
    deadlines = deadlines_for(RULES, level, urgency, start)

    assert due_times(RULES, level, urgency, start) == (deadlines.respond_due, deadlines.resolve_due)

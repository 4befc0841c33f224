"""Operator hours (ivr.hours): "always", a weekly schedule with boundaries, public holidays, and
bad values refused with HoursError."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from ivr.hours import HoursError, is_open, parse_schedule

WEEK = {"mon-fri": "08:00-20:00", "sat": "09:00-13:00"}
ZONE = ZoneInfo("America/Argentina/Buenos_Aires")
# 2026-03-02 is a Monday.
MONDAY, FRIDAY, SATURDAY, SUNDAY = (
    date(2026, 3, 2),
    date(2026, 3, 6),
    date(2026, 3, 7),
    date(2026, 3, 8),
)


def at(day: date, clock: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=ZONE)


@pytest.mark.parametrize("hours", ["always", "Always", " ALWAYS "])
def test_always_is_open_at_any_moment(hours: str) -> None:
    assert parse_schedule(hours) is None
    for moment in (at(SUNDAY, "03:00"), at(MONDAY, "00:00"), at(SATURDAY, "23:59:59")):
        assert is_open(hours, moment)


def test_always_means_always_even_on_a_holiday() -> None:
    assert is_open("always", at(MONDAY, "10:00"), holidays=[MONDAY])


@pytest.mark.parametrize(
    ("day", "clock", "open_"),
    [
        (MONDAY, "07:59:59", False),
        (MONDAY, "08:00", True),  # the start is inclusive
        (MONDAY, "12:30", True),
        (MONDAY, "19:59:59", True),
        (MONDAY, "20:00", False),  # the end is exclusive
        (MONDAY, "23:00", False),
        (FRIDAY, "08:00", True),
        (FRIDAY, "19:59", True),
        (date(2026, 3, 4), "14:00", True),  # Wednesday, inside the mon-fri range
        (SATURDAY, "08:59", False),
        (SATURDAY, "09:00", True),
        (SATURDAY, "12:59:59", True),
        (SATURDAY, "13:00", False),
        (SUNDAY, "10:00", False),  # no line for Sunday: closed all day
    ],
)
def test_a_weekly_schedule(day: date, clock: str, open_: bool) -> None:
    assert is_open(WEEK, at(day, clock)) is open_


def test_parse_schedule_maps_weekdays_to_spans() -> None:
    schedule = parse_schedule(WEEK)
    assert schedule is not None
    assert sorted(schedule) == [0, 1, 2, 3, 4, 5]
    assert schedule[0] == [(time(8), time(20))]
    assert schedule[5] == [(time(9), time(13))]


def test_several_spans_a_day_and_days_named_twice() -> None:
    hours = {"mon-fri": "08:00-12:00, 14:00-18:00", "fri": "19:00-21:00", "Sun": "10:00-11:00"}
    assert is_open(hours, at(MONDAY, "11:59"))
    assert not is_open(hours, at(MONDAY, "13:00"))
    assert is_open(hours, at(MONDAY, "14:00"))
    assert not is_open(hours, at(MONDAY, "19:30"))
    assert is_open(hours, at(FRIDAY, "19:30"))
    assert is_open(hours, at(SUNDAY, "10:30"))


def test_holidays_are_closed_and_the_next_day_opens_again() -> None:
    holidays = [MONDAY, date(2026, 5, 25)]
    assert not is_open(WEEK, at(MONDAY, "10:00"), holidays)
    assert is_open(WEEK, at(date(2026, 3, 3), "10:00"), holidays)
    assert not is_open(WEEK, at(date(2026, 5, 25), "10:00"), holidays)


def test_the_local_wall_clock_is_what_counts() -> None:
    # 22:30 UTC on a Monday is 19:30 in Buenos Aires (UTC-3): still open there.
    utc_evening = datetime(2026, 3, 2, 22, 30, tzinfo=ZoneInfo("UTC"))
    assert is_open(WEEK, utc_evening.astimezone(ZONE))
    assert not is_open(WEEK, utc_evening.replace(tzinfo=None))


@pytest.mark.parametrize("hours", ["never", "", "08:00-20:00", "24/7"])
def test_a_string_other_than_always_is_refused(hours: str) -> None:
    with pytest.raises(HoursError, match="always"):
        parse_schedule(hours)


@pytest.mark.parametrize(
    ("hours", "reason"),
    [
        ({"lun-vie": "08:00-20:00"}, "unknown day 'lun-vie'"),
        ({"monday": "08:00-20:00"}, "unknown day 'monday'"),
        ({"mon-xyz": "08:00-20:00"}, "unknown day"),
        ({"mon-tue-wed": "08:00-20:00"}, "unknown day"),
        ({"fri-mon": "08:00-20:00"}, "unknown day 'fri-mon'"),  # backwards: no day at all
        ({"mon": "8am-8pm"}, "bad time span '8am-8pm'"),
        ({"mon": "08:00"}, "bad time span '08:00'"),
        ({"mon": "08:00-20:00-22:00"}, "bad time span"),
        ({"mon": "08:00-25:00"}, "bad time span"),
        ({"mon": ""}, "bad time span ''"),
        ({"mon": "08:00-12:00,"}, "bad time span"),
        ({"mon": "20:00-08:00"}, "ends before it starts"),  # overnight: split it by day
        ({"mon": "08:00-08:00"}, "ends before it starts"),
    ],
)
def test_bad_values_are_refused_naming_them(hours: dict[str, str], reason: str) -> None:
    with pytest.raises(HoursError, match=reason):
        parse_schedule(hours)
    with pytest.raises(HoursError):
        is_open(hours, at(MONDAY, "10:00"))

"""SLA due dates in business hours (weekly schedule, public holidays), as pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ivr.hours import parse_schedule

MAX_DAYS = 366


def add_business_hours(
    start: datetime,
    hours: float,
    schedule: str | Mapping[str, str],
    holidays: Sequence[date],
    zone: ZoneInfo,
) -> datetime:
    """The moment `hours` of working time after `start` ("always" counts every hour)."""
    spans = parse_schedule(schedule)
    if spans is None:
        return start + timedelta(hours=hours)
    remaining = timedelta(hours=hours)
    local = start.astimezone(zone)
    day = local.date()
    for _ in range(MAX_DAYS):
        if day not in holidays:
            for begin, end in sorted(spans.get(day.weekday(), [])):
                span_start = datetime.combine(day, begin, tzinfo=zone)
                span_end = (
                    datetime.combine(day, end, tzinfo=zone)
                    if end != time(0)
                    else (datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone))
                )
                begin_at = max(span_start, local)
                if begin_at >= span_end:
                    continue
                available = span_end - begin_at
                if remaining <= available:
                    return (begin_at + remaining).astimezone(start.tzinfo)
                remaining -= available
        day += timedelta(days=1)
    raise ValueError("no business hours in the schedule for a year")


def sla_hours(config_raw: Mapping[str, object], category: str, urgent: bool) -> float:
    sla = config_raw.get("sla", {})
    assert isinstance(sla, Mapping)
    if urgent:
        return float(sla.get("urgent_hours", 4))
    categories = sla.get("categories", {})
    assert isinstance(categories, Mapping)
    return float(categories.get(category, sla.get("default_hours", 72)))


def due_at(
    config_raw: Mapping[str, object], zone: ZoneInfo, created: datetime, category: str, urgent: bool
) -> datetime:
    """When a new case is due: urgent ones in calendar hours, the rest in business hours."""
    sla = config_raw.get("sla", {})
    assert isinstance(sla, Mapping)
    hours = sla_hours(config_raw, category, urgent)
    if urgent:
        return created + timedelta(hours=hours)
    holidays = [date.fromisoformat(str(d)) for d in sla.get("holidays", [])]
    schedule = sla.get("business_hours", "always")
    assert isinstance(schedule, str | Mapping)
    return add_business_hours(created, hours, schedule, holidays, zone)

"""Operator hours: "always", or a weekly schedule with public holidays, in the local time zone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class HoursError(ValueError):
    """The [operators] hours setting cannot be read."""


def _span(text: str) -> tuple[time, time]:
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError as exc:
        raise HoursError(f"bad time span {text!r}; expected like 08:00-20:00") from exc
    if end <= start:  # would never be open: say so rather than close silently
        raise HoursError(f"time span {text!r} ends before it starts; split it by day")
    return start, end


def _days(key: str) -> list[int]:
    if "-" in key:
        first, last = (DAYS.index(k.strip()) for k in key.split("-"))
        if last < first:  # "fri-mon" would silently be no day at all
            raise ValueError(key)
        return list(range(first, last + 1))
    return [DAYS.index(key.strip())]


def parse_schedule(hours: str | Mapping[str, str]) -> dict[int, list[tuple[time, time]]] | None:
    """None means always open; else weekday -> spans. Keys like "mon-fri", "sat"."""
    if isinstance(hours, str):
        if hours.strip().lower() == "always":
            return None
        raise HoursError(
            'operators.hours must be "always" or a table like {mon-fri = "08:00-20:00"}'
        )
    schedule: dict[int, list[tuple[time, time]]] = {}
    for key, spans in hours.items():
        try:
            days = _days(key.lower())
        except ValueError as exc:
            raise HoursError(f"unknown day {key!r}; use mon..sun or ranges like mon-fri") from exc
        for day in days:
            schedule.setdefault(day, []).extend(_span(s) for s in str(spans).split(","))
    return schedule


def is_open(
    hours: str | Mapping[str, str], local_now: datetime, holidays: Sequence[date] = ()
) -> bool:
    """Whether operators answer at `local_now` (a time in the deployment's zone)."""
    schedule = parse_schedule(hours)
    if schedule is None:
        return True
    if local_now.date() in holidays:
        return False
    moment = local_now.time()
    return any(start <= moment < end for start, end in schedule.get(local_now.weekday(), []))

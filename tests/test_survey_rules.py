"""Survey rules without I/O: quiet hours across midnight and time zones, answer shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from feedback.rules import QuietHoursError, due_time, next_allowed, parse_rating

BA = ZoneInfo("America/Argentina/Buenos_Aires")  # UTC-3, no DST
MADRID = ZoneInfo("Europe/Madrid")  # DST changes


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("wall", "expected"),
    [
        ((2026, 11, 22, 20, 59), (2026, 11, 22, 20, 59)),  # before quiet hours: unchanged
        ((2026, 11, 22, 21, 0), (2026, 11, 23, 9, 0)),  # start is quiet
        ((2026, 11, 22, 23, 45), (2026, 11, 23, 9, 0)),  # before midnight -> next morning
        ((2026, 11, 23, 0, 30), (2026, 11, 23, 9, 0)),  # after midnight -> same morning
        ((2026, 11, 23, 8, 59), (2026, 11, 23, 9, 0)),
        ((2026, 11, 23, 9, 0), (2026, 11, 23, 9, 0)),  # end is allowed
    ],
)
def test_quiet_hours_across_midnight(wall: tuple[int, ...], expected: tuple[int, ...]) -> None:
    when = local(BA, *wall).astimezone(UTC)
    assert next_allowed(when, "21:00-09:00", BA) == local(BA, *expected).astimezone(UTC)


def test_quiet_hours_are_the_deployments_local_time() -> None:
    # 23:30 UTC is 20:30 in Buenos Aires (allowed) but 00:30 in Madrid in winter (quiet).
    when = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    assert next_allowed(when, "21:00-09:00", BA) == when
    assert next_allowed(when, "21:00-09:00", MADRID) == local(MADRID, 2026, 11, 23, 9, 0)


def test_quiet_hours_over_a_dst_change_end_at_local_nine() -> None:
    # Madrid moves clocks forward on 2027-03-28 at 02:00: 09:00 local is 07:00 UTC that day.
    when = local(MADRID, 2027, 3, 27, 23, 0).astimezone(UTC)
    moved = next_allowed(when, "21:00-09:00", MADRID)
    assert moved.astimezone(MADRID).hour == 9
    assert moved == datetime(2027, 3, 28, 7, 0, tzinfo=UTC)


def test_daytime_quiet_span_and_none() -> None:
    noon = local(BA, 2026, 11, 22, 13, 0).astimezone(UTC)
    assert next_allowed(noon, "12:00-14:00", BA) == local(BA, 2026, 11, 22, 14, 0).astimezone(UTC)
    assert next_allowed(noon, "", BA) == noon
    with pytest.raises(QuietHoursError):
        next_allowed(noon, "tarde", BA)


def test_due_time_adds_the_delay_then_leaves_quiet_hours() -> None:
    closed = local(BA, 2026, 11, 22, 20, 30).astimezone(UTC)
    assert due_time(closed, 60, "21:00-09:00", BA) == local(BA, 2026, 11, 23, 9, 0).astimezone(UTC)
    assert due_time(closed, 15, "21:00-09:00", BA) == closed + timedelta(minutes=15)


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("5", 5),
        ("1", 1),
        ("5 excelente", 5),
        ("Excelente, 5", 5),
        ("cinco", 5),
        ("Cuatro", 4),
        ("tres!", 3),
        ("dos", 2),
        ("uno", 1),
        ("five", 5),
        ("Two", 2),
        ("5 estrellas", 5),
        ("4 stars", 4),
        ("4/5", 4),
        (" 3. ", 3),
        ("me atendieron bien", None),
        ("6", None),
        ("0", None),
        ("12", None),
        ("3 o 4", None),
        ("uno o dos", None),
        ("", None),
    ],
)
def test_answer_shapes(text: str, rating: int | None) -> None:
    assert parse_rating(text).value == rating

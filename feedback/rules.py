"""Survey rules as pure functions: when a survey may go out, and what a reply means."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sms.keywords import fold


class QuietHoursError(ValueError):
    """survey.quiet_hours is not "HH:MM-HH:MM" or ""."""


def parse_quiet_hours(text: str) -> tuple[time, time] | None:
    """ "21:00-09:00" -> (21:00, 09:00); "" -> None (no quiet hours)."""
    if not text.strip():
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError as exc:
        raise QuietHoursError(f"bad quiet hours {text!r}; expected like 21:00-09:00") from exc
    return start, end


def _quiet(moment: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end  # the span crosses midnight


def next_allowed(when: datetime, quiet_hours: str, zone: ZoneInfo) -> datetime:
    """`when`, or the end of the quiet span it falls in, in the deployment's time zone."""
    span = parse_quiet_hours(quiet_hours)
    if span is None:
        return when
    start, end = span
    local = when.astimezone(zone)
    if not _quiet(local.time(), start, end):
        return when
    candidate = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    # Rebuild from the wall clock so a DST change in between gives the right instant.
    wall = datetime.combine(candidate.date(), end, tzinfo=zone)
    return wall.astimezone(when.tzinfo)


def due_time(closed_at: datetime, delay_minutes: int, quiet_hours: str, zone: ZoneInfo) -> datetime:
    """When the survey for a case closed at `closed_at` should go out."""
    return next_allowed(closed_at + timedelta(minutes=delay_minutes), quiet_hours, zone)


WORDS = {
    "uno": 1, "una": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5,
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
}  # fmt: skip
_DIGIT = re.compile(r"(?<!\d)([1-5])(?!\d)")
_ANY_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class Rating:
    """A reply read as a rating: `value` 1-5, or None when unclear; `comment` is what's left."""

    value: int | None
    comment: str = ""


def parse_rating(text: str) -> Rating:
    """Accept "5", "5 excelente", "cinco", "five", "5 estrellas", "4/5"; else unclear."""
    folded = fold(text)
    numbers = _ANY_NUMBER.findall(folded)
    if re.search(r"\d\s*/\s*5", folded):  # "4/5": drop the scale
        folded = re.sub(r"/\s*5", "", folded)
        numbers = _ANY_NUMBER.findall(folded)
    digits = [int(n) for n in numbers if len(n) == 1 and n in "12345"]
    if numbers and (len(numbers) != 1 or not digits):
        return Rating(None)  # several numbers, or one out of range: ask again
    if digits:
        rest = _DIGIT.sub("", folded, count=1).strip(" .,!-:")
        return Rating(digits[0], _comment(text, rest))
    words = [WORDS[w] for w in re.findall(r"[a-z]+", folded) if w in WORDS]
    if len(set(words)) == 1:
        return Rating(words[0])
    return Rating(None)


_NOISE = frozenset({"estrellas", "estrella", "stars", "star", "puntos", "points", "de", "of"})


def _comment(original: str, rest: str) -> str:
    words = [w for w in rest.split() if w not in _NOISE]
    return original.strip() if words else ""


def is_low(rating: int, threshold: int = 2) -> bool:
    return rating <= threshold


# ---------------------------------------------------------------- voice surveys


class KeypadMove(enum.StrEnum):
    """What one keypad answer to the voice question leads to."""

    RATE = "rate"  # a key from 1 to 5
    REPEAT = "repeat"  # the first unclear answer (or silence): the question once more
    UNCLEAR = "unclear"  # keys pressed, never 1-5: thank and stop asking
    SILENT = "silent"  # nothing pressed, twice: thank; the survey may go on by SMS


@dataclass(frozen=True)
class KeypadAnswer:
    move: KeypadMove
    rating: int | None = None


def read_keypad(digits: str | None, attempt: int, keyed_before: bool) -> KeypadAnswer:
    """Answer number `attempt` (1 or 2) to the voice question; `keyed_before`: keys were
    pressed on an earlier attempt of this call."""
    keys = (digits or "").strip().rstrip("#")
    if len(keys) == 1 and keys in "12345":
        return KeypadAnswer(KeypadMove.RATE, int(keys))
    if attempt < 2:
        return KeypadAnswer(KeypadMove.REPEAT)
    return KeypadAnswer(KeypadMove.UNCLEAR if keys or keyed_before else KeypadMove.SILENT)


class AfterCall(enum.StrEnum):
    """What follows a survey call that ended without a rating."""

    RETRY = "retry"  # call once more, later
    SMS = "sms"  # fall back: ask the same survey by SMS
    SMS_OPEN = "sms_open"  # the SMS question asked first still waits: leave it to that
    GIVE_UP = "give_up"


def after_unrated_call(
    *,
    picked_up: bool,
    refused: bool,
    calls_made: int,
    calls_allowed: int,
    fallback_from: str | None,
    sms_fallback: bool,
) -> AfterCall:
    """A call that rang out, was busy or failed is tried again while calls remain; one the
    citizen picked up (and left unrated) or the provider refused for good is not. Then the
    survey falls back to SMS once, if configured and it has not fallen back already."""
    if not picked_up and not refused and calls_made < calls_allowed:
        return AfterCall.RETRY
    if fallback_from == "sms":
        return AfterCall.SMS_OPEN
    if sms_fallback and fallback_from is None:
        return AfterCall.SMS
    return AfterCall.GIVE_UP

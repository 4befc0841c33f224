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
# Words around a rating that carry nothing: "un 4", "le doy 5", "5 estrellas", "4 de 5".
_LEAD = frozenset({"un", "una", "le", "les", "doy", "pongo", "mi", "nota", "puntaje", "a", "i",
                   "give", "my", "score", "calificacion", "es", "con"})  # fmt: skip
_NOISE = frozenset({"estrellas", "estrella", "stars", "star", "puntos", "points", "de", "of"})
_CONNECTORS = frozenset({"o", "y", "or", "and", "entre", "between"})
_ARTICLES = frozenset({"un", "una", "a"})
_SCALE = re.compile(
    r"(?<![0-9a-z])([1-5]|" + "|".join(WORDS) + r")\s*(?:/|de|sobre|out of)\s*5(?![0-9])"
)
_TOKEN = re.compile(r"[0-9]+|[^\W\d_]+")


@dataclass(frozen=True)
class Rating:
    """A reply read as a rating: `value` 1-5, or None when unclear; `comment` is what's left."""

    value: int | None
    comment: str = ""


def _tokens(text: str) -> list[str]:
    folded = _SCALE.sub(r"\1", fold(text))  # "4/5", "4 de 5": drop the scale
    return _TOKEN.findall(folded)


def _number(tokens: list[str], i: int) -> int | None:
    """The number token `i` stands for, if it is one ("un"/"a" before a number is an article)."""
    token = tokens[i]
    if token.isascii() and token.isdigit():
        return int(token)
    if token in _ARTICLES and i + 1 < len(tokens) and _number(tokens, i + 1) is not None:
        return None
    return WORDS.get(token)


def rating_shape(text: str) -> Rating | None:
    """The rating in a reply shaped like one ("5", "cinco", "4/5", "un 4", "5 excelente",
    "Excelente, 5"); None for anything else, however it might be read.

    Shaped like a rating: exactly one number, from 1 to 5, that opens the message (after words
    like "le doy un") or closes it (before words like "estrellas"). A number inside a sentence
    ("tengo 3 hijos y no tengo comida") is not a rating.
    """
    tokens = [t for t in _tokens(text) if t not in _NOISE]
    numbers = [(i, n) for i in range(len(tokens)) if (n := _number(tokens, i)) is not None]
    if len(numbers) != 1:
        return None
    index, value = numbers[0]
    if not 1 <= value <= 5:
        return None
    opens = all(t in _LEAD for t in tokens[:index])
    closes = index == len(tokens) - 1
    if not (opens or closes):
        return None
    words = [t for j, t in enumerate(tokens) if j != index and t not in _LEAD]
    return Rating(value, text.strip() if words else "")


def unclear_rating_shape(text: str) -> bool:
    """Numbers and little else, but not one rating: "6", "0", "3 o 4", "uno o dos"."""
    tokens = [t for t in _tokens(text) if t not in _NOISE and t not in _CONNECTORS]
    if not tokens or rating_shape(text) is not None:
        return False
    return all(
        (t.isascii() and t.isdigit() and len(t) <= 2) or t in WORDS or t in _ARTICLES
        for t in tokens
    ) and any(t not in _ARTICLES for t in tokens)


def parse_rating(text: str) -> Rating:
    """Accept "5", "5 excelente", "cinco", "five", "5 estrellas", "4/5"; else unclear."""
    return rating_shape(text) or Rating(None)


class ReplyMove(enum.StrEnum):
    """What an SMS from a phone whose survey waits (or whose case just closed) is."""

    RATE = "rate"  # the rating (with a short comment, maybe)
    CLARIFY = "clarify"  # numbers, but no 1-5: ask once more
    COMMENT = "comment"  # the optional comment after a rating
    CASE = "case"  # anything else: a request, handled as any SMS (the survey keeps waiting)


@dataclass(frozen=True)
class SurveyReading:
    move: ReplyMove
    rating: Rating | None = None


def read_survey_reply(
    text: str, *, awaiting: str, mentions_request: bool, comment_max_chars: int
) -> SurveyReading:
    """Read a reply while a survey waits for `awaiting` ("rating", "comment", or "early": a
    rating sent before the question). When in doubt, a case: a comment can be read on a case,
    a request hidden in a comment is lost. `mentions_request`: the text matched a category."""
    if awaiting == "comment":
        comment = text.strip()
        if comment and len(comment) <= comment_max_chars and not mentions_request:
            return SurveyReading(ReplyMove.COMMENT)
        return SurveyReading(ReplyMove.CASE)
    rating = rating_shape(text)
    if rating is not None:
        if rating.comment and (mentions_request or len(rating.comment) > comment_max_chars):
            return SurveyReading(ReplyMove.CASE)
        return SurveyReading(ReplyMove.RATE, rating)
    if awaiting == "rating" and unclear_rating_shape(text):
        return SurveyReading(ReplyMove.CLARIFY)
    return SurveyReading(ReplyMove.CASE)


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

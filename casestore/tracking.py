"""Tracking numbers: random digits ending in a Damm check digit.

The Damm check digit catches every single mistyped digit and every swap of two adjacent
digits, which are the errors citizens make when they read a number back over SMS or the phone.
"""

from __future__ import annotations

import random
import re
import secrets
from dataclasses import dataclass
from typing import Literal

MIN_LENGTH = 9
MAX_LENGTH = 12
DEFAULT_LENGTH = 10

# The totally anti-symmetric quasigroup of order 10 from Damm (2004), as printed on Wikipedia.
_DAMM_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

_ASCII_DIGITS = frozenset("0123456789")
# Only ASCII digits: str.isdigit() would also accept "²" or Arabic-Indic digits.
_TYPED_NUMBER = re.compile(r"[0-9]+(?:[ -]+[0-9]+)*")
_DIGIT_RUN = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
_SEPARATORS = re.compile(r"[ -]")

_SYSTEM_RANDOM = secrets.SystemRandom()

# Numbers allocated while the database is unreachable (the gateway's spool) start with this
# digit and numbers the database allocates never do, so the two can never collide.
SPOOL_LEADING_DIGIT = "9"

TrackingStatus = Literal["ok", "mistyped", "malformed"]


@dataclass(frozen=True)
class ParsedTracking:
    """What a citizen typed as a tracking number.

    `digits` holds the digits for "ok" and "mistyped" (so a reply can quote them back) and is
    None for "malformed".
    """

    digits: str | None
    status: TrackingStatus


def _is_ascii_digits(text: str) -> bool:
    return bool(text) and all(ch in _ASCII_DIGITS for ch in text)


def _damm_interim(digits: str) -> int:
    interim = 0
    for ch in digits:
        interim = _DAMM_TABLE[interim][ord(ch) - 48]
    return interim


def damm_check_digit(digits: str) -> str:
    """Return the Damm check digit for a string of ASCII digits."""
    if digits and not _is_ascii_digits(digits):
        raise ValueError(f"not a string of digits: {digits!r}")
    return str(_damm_interim(digits))


def is_valid(digits: str) -> bool:
    """True when `digits` (ASCII digits only) ends in its correct Damm check digit."""
    return _is_ascii_digits(digits) and _damm_interim(digits) == 0


def generate(
    length: int = DEFAULT_LENGTH, rng: random.Random | None = None, *, spooled: bool = False
) -> str:
    """Return a new random tracking number of `length` digits (9 to 12), never starting with 0.

    Uses `secrets` unless `rng` (a `random.Random`, `secrets.SystemRandom` included) is given.
    Numbers for the database start with 1 to 8; `spooled` ones (allocated during a database
    outage) with `SPOOL_LEADING_DIGIT`.
    """
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(f"tracking number length must be {MIN_LENGTH} to {MAX_LENGTH}: {length}")
    source = rng if rng is not None else _SYSTEM_RANDOM
    # A leading 0 gets lost in spreadsheets and when a number is read aloud.
    first = SPOOL_LEADING_DIGIT if spooled else str(source.randint(1, 8))
    body = first + "".join(str(source.randint(0, 9)) for _ in range(length - 2))
    return body + damm_check_digit(body)


def format_tracking(number: str) -> str:
    """Write a tracking number in groups of four from the left: "4821 3307 52"."""
    if not _is_ascii_digits(number):
        raise ValueError(f"not a string of digits: {number!r}")
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))


def parse_tracking(text: str, lengths: range = range(MIN_LENGTH, MAX_LENGTH + 1)) -> ParsedTracking:
    """Read a tracking number typed with or without spaces or hyphens between digits."""
    stripped = text.strip()
    if not _TYPED_NUMBER.fullmatch(stripped):
        return ParsedTracking(digits=None, status="malformed")
    digits = _SEPARATORS.sub("", stripped)
    if len(digits) not in lengths:
        return ParsedTracking(digits=None, status="malformed")
    if not is_valid(digits):
        return ParsedTracking(digits=digits, status="mistyped")
    return ParsedTracking(digits=digits, status="ok")


def find_digit_runs(message: str) -> list[str]:
    """Return the digits of every run in `message`, in order.

    Digits separated by a single space or a single hyphen belong to the same run, because that
    is how a reader sees them: "Caso 4821 3307 52" carries one run, "4821330752".
    """
    return [_SEPARATORS.sub("", m.group()) for m in _DIGIT_RUN.finditer(message)]

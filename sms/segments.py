"""SMS encoding: GSM-7 or UCS-2, and how many segments a text costs.

One character outside GSM-7 turns the whole message into UCS-2, which fits 70 characters per
segment instead of 160, so templates are checked (and transliterated) with these functions.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

# GSM 03.38 default alphabet (3GPP TS 23.038 section 6.2.1), without 0x1B, the escape to the
# extension table, which is not a character of its own.
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)

# Default extension table (3GPP TS 23.038 section 6.2.1.1): each costs an escape plus itself.
GSM7_EXTENDED: frozenset[str] = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE = 160
GSM7_PER_PART = 153
UCS2_SINGLE = 70
UCS2_PER_PART = 67

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class SegmentInfo:
    """How a text goes out as SMS.

    `units` are septets for GSM-7 and UTF-16 code units for UCS-2; `per_segment` is the
    capacity that applies (160/70 for a single segment, 153/67 per part when split);
    `offending` lists the characters that forced UCS-2, once each, in order of appearance.
    """

    encoding: Encoding
    segments: int
    units: int
    per_segment: int
    offending: tuple[str, ...]


def is_gsm7(text: str) -> bool:
    """True when every character of `text` is in the GSM-7 alphabet or its extension table."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text)


def _septet_cost(ch: str) -> int:
    return 2 if ch in GSM7_EXTENDED else 1


def _utf16_cost(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def septets(text: str) -> int:
    """Septets `text` takes in GSM-7 (extension characters count 2); assumes `is_gsm7(text)`."""
    return sum(_septet_cost(ch) for ch in text)


def _count_parts(costs: list[int], per_part: int) -> int:
    # Phones and providers never split an escape sequence or a surrogate pair between two
    # parts, so a two-unit character that does not fit moves whole to the next part.
    parts, used = 1, 0
    for cost in costs:
        if used + cost > per_part:
            parts, used = parts + 1, 0
        used += cost
    return parts


def segment_info(text: str) -> SegmentInfo:
    """Encoding and number of segments `text` needs.

    An empty text counts as 1 segment: sending it still costs one message.
    """
    offending = tuple(
        dict.fromkeys(ch for ch in text if ch not in GSM7_BASIC and ch not in GSM7_EXTENDED)
    )
    if offending:
        costs = [_utf16_cost(ch) for ch in text]
        encoding: Encoding = "UCS-2"
        single, per_part = UCS2_SINGLE, UCS2_PER_PART
    else:
        costs = [_septet_cost(ch) for ch in text]
        encoding = "GSM-7"
        single, per_part = GSM7_SINGLE, GSM7_PER_PART
    units = sum(costs)
    if units <= single:
        return SegmentInfo(encoding, 1, units, single, offending)
    return SegmentInfo(encoding, _count_parts(costs, per_part), units, per_part, offending)


# Folds chosen by hand; accented letters not listed here go through the NFD fallback below.
_FOLDS: dict[str, str] = {
    "ç": "c",
    "º": "o",
    "ª": "a",
    "\u2018": "'",  # ‘
    "\u2019": "'",  # ’
    "\u201a": "'",  # ‚
    "\u201b": "'",  # ‛
    "\u2032": "'",  # ′
    "`": "'",
    "´": "'",
    "\u201c": '"',  # “
    "\u201d": '"',  # ”
    "\u201e": '"',  # „
    "\u2033": '"',  # ″
    "«": '"',
    "»": '"',
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2212": "-",  # minus sign
    "\u2026": "...",  # …
    "\t": " ",
}


def _fold_char(ch: str) -> str:
    if ch in GSM7_BASIC or ch in GSM7_EXTENDED:
        return ch
    if ch in _FOLDS:
        return _FOLDS[ch]
    if unicodedata.category(ch) == "Zs":  # non-breaking, thin and other spaces
        return " "
    if unicodedata.combining(ch):  # a mark NFC could not attach: keep the letter before it
        return ""
    # Canonical decomposition only (NFD, not NFKD): á -> a, Ô -> O, but "½" or "™" stay as
    # they are rather than turning into look-alikes.
    base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    if base and base != ch and is_gsm7(base):
        return base
    return ch


def to_gsm7(text: str) -> str:
    """Replace characters outside GSM-7 by their natural GSM-7 fold (á -> a, “ -> ", … -> ...).

    Characters already in GSM-7 (é ñ ü ¿ ¡ …) are kept; characters with no fold are left as
    they are, so the result may still need UCS-2.
    """
    # NFC first: text typed on some phones arrives decomposed ("e" + combining acute), and
    # composing it turns "é" back into a GSM-7 character.
    return "".join(_fold_char(ch) for ch in unicodedata.normalize("NFC", text))

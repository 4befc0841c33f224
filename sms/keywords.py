"""Keywords matched against a whole SMS, and phrases found inside one.

A keyword counts only as the whole message, so "me dieron de baja la asignación" is a request
and not an opt-out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Commands whose keyword may be followed by a number: "ESTADO 4821 3307 52".
TAKES_ARGUMENT = frozenset({"status"})

# Punctuation people add around a one-word message: "Baja.", "STOP!", "¡Alta!".
_LEADING_PUNCTUATION = "¡¿"
_TRAILING_PUNCTUATION = ".!?,;:"
_NUMBER_ARGUMENT = re.compile(r"[0-9]+(?:[ -]+[0-9]+)*")


@dataclass(frozen=True)
class KeywordMatch:
    """A message that is a keyword: the command, the keyword's language and its argument."""

    command: str
    language: str
    argument: str


def fold(text: str) -> str:
    """Fold text for comparison: casefold, drop accents, collapse whitespace, strip.

    ñ folds to n as well, because people type "tramite" and "senor" for "trámite" and "señor".
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.split())


def _bare(folded: str) -> str:
    return folded.lstrip(_LEADING_PUNCTUATION).rstrip(_TRAILING_PUNCTUATION).strip()


def _split_words(text: str, count: int) -> tuple[str, str] | None:
    """Split `text` after its first `count` words: (those words, the rest, stripped)."""
    words = text.split(maxsplit=count)
    if len(words) < count:
        return None
    rest = words[count] if len(words) > count else ""
    return " ".join(words[:count]), rest.strip()


def _argument(rest: str) -> str | None:
    argument = rest.rstrip(_TRAILING_PUNCTUATION).strip()
    if not argument or _NUMBER_ARGUMENT.fullmatch(argument):
        return argument
    return None


def match_keyword(
    text: str, keywords: Mapping[str, Mapping[str, Sequence[str]]]
) -> KeywordMatch | None:
    """Return the keyword `text` is, or None when it is an ordinary message.

    `keywords` maps command -> language -> words. A keyword must be the whole message, up to
    case, accents, whitespace and surrounding punctuation; commands in TAKES_ARGUMENT may also
    be followed by one number (digits, spaces and hyphens), returned as `argument`. The first
    match in the mapping's order wins.
    """
    message = _bare(fold(text))
    if not message:
        return None
    for command, languages in keywords.items():
        for language, words in languages.items():
            for word in words:
                keyword = _bare(fold(word))
                if not keyword:
                    continue
                if message == keyword:
                    return KeywordMatch(command, language, "")
                if command not in TAKES_ARGUMENT:
                    continue
                split = _split_words(
                    text.strip().lstrip(_LEADING_PUNCTUATION), len(keyword.split())
                )
                if split is None or _bare(fold(split[0])) != keyword:
                    continue
                argument = _argument(split[1])
                if argument is not None:
                    return KeywordMatch(command, language, argument)
    return None


def find_phrases(text: str, phrases: Sequence[str]) -> list[str]:
    """Return the folded phrases that occur in `text` as whole words, in the order given.

    "asignacion" is found in "la asignación", but "plan" is not found in "planilla".
    """
    folded = fold(text)
    found: list[str] = []
    for phrase in phrases:
        target = fold(phrase)
        if not target or target in found:
            continue
        if re.search(rf"(?<!\w){re.escape(target)}(?!\w)", folded):
            found.append(target)
    return found

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casestore.tracking import (
    ParsedTracking,
    damm_check_digit,
    find_digit_runs,
    format_tracking,
    generate,
    is_valid,
    parse_tracking,
)

# A valid 10-digit number (Damm check digit 5), used where a fixed example reads better.
VALID = "4821330755"

fast = settings(max_examples=200, database=None, deadline=None)
tracking_numbers = st.builds(
    generate, st.integers(min_value=9, max_value=12), st.randoms(use_true_random=False)
)


def substitutions(number: str) -> list[str]:
    return [
        number[:i] + digit + number[i + 1 :]
        for i, original in enumerate(number)
        for digit in "0123456789"
        if digit != original
    ]


def adjacent_transpositions(number: str) -> list[str]:
    return [
        number[:i] + number[i + 1] + number[i] + number[i + 2 :]
        for i in range(len(number) - 1)
        if number[i] != number[i + 1]
    ]


def test_check_digit_matches_the_published_example() -> None:
    assert damm_check_digit("572") == "4"
    assert is_valid("5724")
    assert not is_valid("5723")


def test_check_digit_rejects_non_digits() -> None:
    for bad in ("57a", "５７２", "²", "57 2"):
        with pytest.raises(ValueError):
            damm_check_digit(bad)


@pytest.mark.parametrize("text", ["", "482133075a", "4821 3307 55", "٤٨٢١٣٣٠٧٥٥"])
def test_is_valid_is_false_for_anything_but_ascii_digits(text: str) -> None:
    assert not is_valid(text)


@fast
@given(tracking_numbers)
def test_every_single_digit_substitution_is_caught(number: str) -> None:
    assert is_valid(number)
    assert not any(is_valid(typo) for typo in substitutions(number))


@fast
@given(tracking_numbers)
def test_every_adjacent_transposition_is_caught(number: str) -> None:
    assert not any(is_valid(swap) for swap in adjacent_transpositions(number))


def test_errors_are_caught_exhaustively_for_short_numbers() -> None:
    for digits in itertools.product("0123456789", repeat=3):
        body = "".join(digits)
        number = body + damm_check_digit(body)
        assert is_valid(number)
        for wrong in substitutions(number) + adjacent_transpositions(number):
            assert not is_valid(wrong), (number, wrong)


@pytest.mark.parametrize("length", [9, 10, 11, 12])
def test_generate_gives_valid_numbers_of_the_length_asked(length: int) -> None:
    rng = random.Random(length)
    for _ in range(200):
        number = generate(length, rng)
        assert len(number) == length
        assert number.isascii() and number.isdigit()
        assert number[0] != "0"
        assert is_valid(number)


def test_default_length_is_ten() -> None:
    assert len(generate()) == 10


@pytest.mark.parametrize("length", [0, 8, 13])
def test_generate_refuses_other_lengths(length: int) -> None:
    with pytest.raises(ValueError):
        generate(length)


def test_generate_is_random_not_sequential() -> None:
    rng = random.Random(20240611)
    numbers = [generate(rng=rng) for _ in range(1000)]
    assert len(set(numbers)) == 1000
    bodies = [int(number[:-1]) for number in numbers]
    assert all(abs(b - a) > 1000 for a, b in itertools.pairwise(bodies))
    first_digits = {number[0] for number in numbers}
    assert first_digits == set("12345678")


def test_spooled_numbers_never_collide_with_database_numbers() -> None:
    rng = random.Random(20240611)
    spooled = [generate(rng=rng, spooled=True) for _ in range(200)]
    assert all(n[0] == "9" and is_valid(n) and len(n) == 10 for n in spooled)
    assert len(set(spooled)) == 200
    assert not any(generate(rng=rng)[0] == "9" for _ in range(2000))


def test_generate_uses_system_randomness_by_default() -> None:
    # 50 draws from 9 * 10**8 numbers: a repeat would mean the source is not random.
    assert len({generate() for _ in range(50)}) == 50


@pytest.mark.parametrize(
    ("number", "written"),
    [
        ("482133075", "4821 3307 5"),
        ("4821330755", "4821 3307 55"),
        ("48213307552", "4821 3307 552"),
        ("482133075521", "4821 3307 5521"),
    ],
)
def test_format_writes_groups_of_four_from_the_left(number: str, written: str) -> None:
    assert format_tracking(number) == written


def test_format_refuses_non_digits() -> None:
    with pytest.raises(ValueError):
        format_tracking("4821 3307 55")


@fast
@given(tracking_numbers, st.sampled_from(["space", "hyphen", "none"]))
def test_format_and_parse_round_trip(number: str, style: str) -> None:
    written = format_tracking(number)
    typed = {"space": written, "hyphen": written.replace(" ", "-"), "none": number}[style]
    assert parse_tracking(typed) == ParsedTracking(digits=number, status="ok")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4821 3307 55", ParsedTracking(VALID, "ok")),
        ("4821-3307-55", ParsedTracking(VALID, "ok")),
        ("482133 0755", ParsedTracking(VALID, "ok")),
        ("  4821330755\n", ParsedTracking(VALID, "ok")),
        ("4821 - 3307  55", ParsedTracking(VALID, "ok")),
        # one digit wrong, two digits swapped: mistyped, and the digits are kept to quote back
        ("4821 3307 56", ParsedTracking("4821330756", "mistyped")),
        ("4812 3307 55", ParsedTracking("4812330755", "mistyped")),
        ("", ParsedTracking(None, "malformed")),
        ("4821 3307 5S", ParsedTracking(None, "malformed")),
        ("N° 4821330755", ParsedTracking(None, "malformed")),
        ("4821.3307.55", ParsedTracking(None, "malformed")),
        ("-4821330755", ParsedTracking(None, "malformed")),
        ("4821330755-", ParsedTracking(None, "malformed")),
        ("48213307", ParsedTracking(None, "malformed")),  # 8 digits
        ("4821330755" + "123", ParsedTracking(None, "malformed")),  # 13 digits
        ("٤٨٢١٣٣٠٧٥٥", ParsedTracking(None, "malformed")),
    ],
)
def test_parse_tells_mistyped_from_malformed(text: str, expected: ParsedTracking) -> None:
    assert parse_tracking(text) == expected


def test_parse_accepts_only_the_lengths_given() -> None:
    assert parse_tracking("4821 3307 55", lengths=range(10, 11)).status == "ok"
    assert parse_tracking("4821 3307 55", lengths=range(12, 13)).status == "malformed"


@pytest.mark.parametrize(
    ("message", "runs"),
    [
        ("Su número de trámite es 4821 3307 55.", ["4821330755"]),
        ("Caso 4821-3307-55 recibido", ["4821330755"]),
        ("Llame al 11 5555 0001", ["1155550001"]),
        ("+54 9 11 5555-0001", ["5491155550001"]),
        ("Caso 4821 3307 55, tel. 11 5555 0001", ["4821330755", "1155550001"]),
        ("4821  3307", ["4821", "3307"]),  # two spaces split a run
        ("4821 - 3307", ["4821", "3307"]),
        ("4821--3307", ["4821", "3307"]),
        ("del 1 al 5 de mayo", ["1", "5"]),
        ("sin números", []),
    ],
)
def test_find_digit_runs(message: str, runs: list[str]) -> None:
    assert find_digit_runs(message) == runs

"""Survey rules without I/O: quiet hours across midnight and time zones, answer shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedback.rules import (
    QuietHoursError,
    ReplyMove,
    due_time,
    next_allowed,
    parse_rating,
    rating_shape,
    read_survey_reply,
)

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


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("5!", 5),
        ("un 4", 4),
        ("le doy un 5", 5),
        ("4 de 5", 4),
        ("cuatro de 5 estrellas", 4),
        ("Muy bien, un 5", 5),
        ("tengo 3 hijos y no tengo comida", None),  # a number inside a sentence
        ("hace mas de 5 dias que espero", None),
        ("4821 3307 52", None),  # a tracking number
        ("ayuda mi pareja me pego, violencia de genero, tengo miedo", None),
    ],
)
def test_rating_shapes(text: str, rating: int | None) -> None:
    shape = rating_shape(text)
    assert (shape.value if shape else None) == rating


def read(text: str, awaiting: str, mentions_request: bool = False) -> ReplyMove:
    return read_survey_reply(
        text, awaiting=awaiting, mentions_request=mentions_request, comment_max_chars=100
    ).move


def test_only_a_rating_shape_answers_the_rating_question() -> None:
    assert read("5", "rating") is ReplyMove.RATE
    assert read("5 excelente", "rating") is ReplyMove.RATE
    assert read("3 o 4", "rating") is ReplyMove.CLARIFY
    assert read("mas o menos", "rating") is ReplyMove.CASE
    assert read("5 pero necesito chapas", "rating", mentions_request=True) is ReplyMove.CASE
    assert read("5 " + "y ademas " * 20, "rating") is ReplyMove.CASE  # too long for a comment


def test_a_comment_is_short_and_names_no_request() -> None:
    assert read("Que atiendan mas rapido", "comment") is ReplyMove.COMMENT
    assert read("necesito chapas", "comment", mentions_request=True) is ReplyMove.CASE
    assert read("x" * 101, "comment") is ReplyMove.CASE
    assert read("   ", "comment") is ReplyMove.CASE


def test_early_answers_are_clear_ratings_only() -> None:
    assert read("5", "early") is ReplyMove.RATE
    assert read("6", "early") is ReplyMove.CASE
    assert read("hola", "early") is ReplyMove.CASE


_DECOR = st.sampled_from(["", " ", "  ", ".", "!", "!!", ",", " :)"])
_WORD = {1: "uno", 2: "dos", 3: "tres", 4: "cuatro", 5: "cinco"}


@given(
    value=st.integers(1, 5),
    form=st.sampled_from(["{n}", "{w}", "{n}/5", "un {n}", "{n} estrellas", "{W}", "le doy {n}"]),
    before=_DECOR,
    after=_DECOR,
)
def test_rating_shapes_are_read_whatever_the_decoration(
    value: int, form: str, before: str, after: str
) -> None:
    text = before + form.format(n=value, w=_WORD[value], W=_WORD[value].upper()) + after
    shape = rating_shape(text)
    assert shape is not None and shape.value == value


@given(st.text(max_size=300))
def test_rating_shape_never_fails_and_reads_only_1_to_5(text: str) -> None:
    shape = rating_shape(text)
    assert shape is None or shape.value in range(1, 6)
    if shape is not None:
        assert shape.comment in ("", text.strip())


_SENTENCE = st.lists(
    st.sampled_from(["tengo", "hijos", "necesito", "ayuda", "casa", "hace", "dias", "que", "no"]),
    min_size=1,
    max_size=6,
)


@given(before=_SENTENCE, number=st.integers(0, 99), after=_SENTENCE)
def test_a_number_inside_a_sentence_is_never_a_rating(
    before: list[str], number: int, after: list[str]
) -> None:
    assert rating_shape(f"{' '.join(before)} {number} {' '.join(after)}") is None

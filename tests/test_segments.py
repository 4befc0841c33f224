from __future__ import annotations

import pytest

from sms.segments import (
    GSM7_BASIC,
    GSM7_EXTENDED,
    SegmentInfo,
    is_gsm7,
    segment_info,
    septets,
    to_gsm7,
)

EXTENSION = "€[]{}\\^~|\f"


def test_alphabet_has_the_gsm_03_38_sizes() -> None:
    # 128 code points minus the escape to the extension table.
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENDED) == 10
    assert set(EXTENSION) == GSM7_EXTENDED
    assert not GSM7_BASIC & GSM7_EXTENDED
    assert "\x1b" not in GSM7_BASIC


@pytest.mark.parametrize("ch", list("éÉñÑüÜ¿¡àèìòùÇ@£$¥§ÄÖäöÅåØøÆæßΔΦΓΛΩΠΨΣΘΞ¤\n\r"))
def test_spanish_and_other_basic_characters_are_gsm7(ch: str) -> None:
    assert ch in GSM7_BASIC


@pytest.mark.parametrize("ch", list("áíóúÁÍÓÚçâêîôûãõ`€"))
def test_characters_outside_the_basic_alphabet(ch: str) -> None:
    assert ch not in GSM7_BASIC


@pytest.mark.parametrize(
    ("text", "gsm7", "count"),
    [
        ("", True, 0),
        ("Hola", True, 4),
        ("¿Cuál?", False, None),
        ("¿Qué pasó con mi señor?", False, None),
        ("¿Qué necesita, señor Muñoz? ¡Gracias!", True, 37),
        ("€10", True, 4),
        ("{[~]}", True, 10),
    ],
)
def test_is_gsm7_and_septets(text: str, gsm7: bool, count: int | None) -> None:
    assert is_gsm7(text) is gsm7
    if count is not None:
        assert septets(text) == count


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SegmentInfo("GSM-7", 1, 0, 160, ())),
        ("a" * 160, SegmentInfo("GSM-7", 1, 160, 160, ())),
        ("a" * 161, SegmentInfo("GSM-7", 2, 161, 153, ())),
        ("a" * 306, SegmentInfo("GSM-7", 2, 306, 153, ())),
        ("a" * 307, SegmentInfo("GSM-7", 3, 307, 153, ())),
        # extension characters take two septets, so fewer fit in one segment
        ("a" * 158 + "€", SegmentInfo("GSM-7", 1, 160, 160, ())),
        ("a" * 159 + "€", SegmentInfo("GSM-7", 2, 161, 153, ())),
        ("€" * 80, SegmentInfo("GSM-7", 1, 160, 160, ())),
        ("€" * 81, SegmentInfo("GSM-7", 2, 162, 153, ())),
        # an escape sequence is never split between parts: the € moves whole to part 2
        ("a" * 152 + "€" + "a" * 152, SegmentInfo("GSM-7", 3, 306, 153, ())),
        ("a" * 151 + "€" + "a" * 153, SegmentInfo("GSM-7", 2, 306, 153, ())),
        ("é" * 160, SegmentInfo("GSM-7", 1, 160, 160, ())),
        # one character outside GSM-7 makes the whole text UCS-2
        ("á" * 70, SegmentInfo("UCS-2", 1, 70, 70, ("á",))),
        ("á" * 71, SegmentInfo("UCS-2", 2, 71, 67, ("á",))),
        ("a" * 134 + "á", SegmentInfo("UCS-2", 3, 135, 67, ("á",))),
        ("información", SegmentInfo("UCS-2", 1, 11, 70, ("ó",))),
        ("Trámite: información", SegmentInfo("UCS-2", 1, 20, 70, ("á", "ó"))),
        # UCS-2 counts UTF-16 code units: an emoji is a surrogate pair
        ("👍", SegmentInfo("UCS-2", 1, 2, 70, ("👍",))),
        ("👍" * 35, SegmentInfo("UCS-2", 1, 70, 70, ("👍",))),
        ("👍" * 36, SegmentInfo("UCS-2", 2, 72, 67, ("👍",))),
        ("a" * 66 + "👍" + "a" * 66, SegmentInfo("UCS-2", 3, 134, 67, ("👍",))),
        # extension characters cost one unit in UCS-2
        ("€" * 69 + "á", SegmentInfo("UCS-2", 1, 70, 70, ("á",))),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, str) else None,
)
def test_segment_info(text: str, expected: SegmentInfo) -> None:
    assert segment_info(text) == expected


def test_one_accent_more_than_doubles_the_cost() -> None:
    text = "Su trámite fue recibido. Número de seguimiento: 4821 3307 55. " * 2
    assert len(text) <= 160
    assert segment_info(text).segments == 2
    assert segment_info(to_gsm7(text)) == SegmentInfo("GSM-7", 1, len(text), 160, ())


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("información", "informacion"),
        ("Trámite Útil, Ídolo, Álvaro, Óscar", "Tramite Util, Idolo, Alvaro, Oscar"),
        ("â ê î ô û Â Ê Î Ô Û", "a e i o u A E I O U"),
        ("ã õ Ã Õ", "a o A O"),
        ("ç", "c"),
        ("Ç", "Ç"),
        ("‘hola’ “chau”", "'hola' \"chau\""),
        ("10–20 — fin…", "10-20 - fin..."),
        ("calle\u00a0123", "calle 123"),
        ("1º piso, 2ª vez", "1o piso, 2a vez"),
        ("e\u0301xito", "éxito"),  # decomposed é composes into the GSM-7 é
        # already in GSM-7: untouched
        ("¿Qué pasó, señor Müller? ¡Ñandú!", "¿Qué paso, señor Müller? ¡Ñandu!"),
        ("é É ñ Ñ ü Ü ¿ ¡ à è ì ò ù €", "é É ñ Ñ ü Ü ¿ ¡ à è ì ò ù €"),
        # no natural fold: left as it is
        ("👍 ½ ™ 中", "👍 ½ ™ 中"),
    ],
)
def test_to_gsm7(text: str, folded: str) -> None:
    assert to_gsm7(text) == folded


def test_to_gsm7_leaves_only_unfoldable_characters() -> None:
    assert segment_info(to_gsm7("Sí, ½ “kilo”")).offending == ("½",)

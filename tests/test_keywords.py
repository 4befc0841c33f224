from __future__ import annotations

import pytest

from sms.keywords import TAKES_ARGUMENT, KeywordMatch, find_phrases, fold, match_keyword

KEYWORDS: dict[str, dict[str, list[str]]] = {
    "status": {"es": ["ESTADO"], "en": ["STATUS"]},
    "stop": {"es": ["BAJA"], "en": ["STOP", "UNSUBSCRIBE"]},
    "start": {"es": ["ALTA"], "en": ["START"]},
    "help": {"es": ["AYUDA"], "en": ["HELP", "INFO"]},
}


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Trámite", "tramite"),
        ("  ME   dieron\tde\nBAJA  ", "me dieron de baja"),
        ("Señor MUÑOZ", "senor munoz"),  # ñ folds to n: people type both
        ("ÜBER", "uber"),
        ("e\u0301xito", "exito"),  # already decomposed
        ("ﬁn", "fin"),  # compatibility ligature
        ("calle\u00a0123", "calle 123"),
        ("", ""),
    ],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Baja", KeywordMatch("stop", "es", "")),
        ("BAJA", KeywordMatch("stop", "es", "")),
        (" STOP. ", KeywordMatch("stop", "en", "")),
        ("stop!!", KeywordMatch("stop", "en", "")),
        ("¡Baja!", KeywordMatch("stop", "es", "")),
        ("unsubscribe", KeywordMatch("stop", "en", "")),
        ("Alta", KeywordMatch("start", "es", "")),
        ("start", KeywordMatch("start", "en", "")),
        ("¿Ayuda?", KeywordMatch("help", "es", "")),
        ("HELP", KeywordMatch("help", "en", "")),
        ("Info", KeywordMatch("help", "en", "")),
        ("estado", KeywordMatch("status", "es", "")),
        ("estado 4821 3307 55", KeywordMatch("status", "es", "4821 3307 55")),
        ("ESTADO 4821-3307-55", KeywordMatch("status", "es", "4821-3307-55")),
        ("Estado: 4821330755", KeywordMatch("status", "es", "4821330755")),
        ("  status   4821 3307 55.  ", KeywordMatch("status", "en", "4821 3307 55")),
        ("Estado 4821 3307 56", KeywordMatch("status", "es", "4821 3307 56")),  # checked later
        ("ÉSTADO 123", KeywordMatch("status", "es", "123")),
        # ordinary messages: a keyword inside a sentence is not a keyword
        ("me dieron de baja la asignación", None),
        ("baja la asignación", None),
        ("Quiero darme de alta", None),
        ("stop it please", None),
        ("Estado de mi tramite", None),
        ("estado del caso 4821 3307 55", None),
        ("estado4821330755", None),
        ("bajas", None),
        ("4821 3307 55", None),
        ("", None),
        ("  ...  ", None),
    ],
)
def test_match_keyword(text: str, expected: KeywordMatch | None) -> None:
    assert match_keyword(text, KEYWORDS) == expected


def test_only_status_takes_an_argument() -> None:
    assert sorted(TAKES_ARGUMENT) == ["status"]
    assert match_keyword("BAJA 4821 3307 55", KEYWORDS) is None


def test_keywords_from_configuration_are_folded_too() -> None:
    keywords = {"stop": {"es": ["Dar de baja", "Cancelación"]}, "status": {"es": ["Consulta"]}}
    assert match_keyword("DAR DE BAJA", keywords) == KeywordMatch("stop", "es", "")
    assert match_keyword("cancelacion.", keywords) == KeywordMatch("stop", "es", "")
    assert match_keyword("consulta 12", keywords) == KeywordMatch("status", "es", "12")
    assert match_keyword("dar de", keywords) is None


@pytest.mark.parametrize(
    ("text", "phrases", "found"),
    [
        ("Me sacaron la asignación", ["asignacion"], ["asignacion"]),
        ("Me sacaron la ASIGNACIÓN!", ["Asignación"], ["asignacion"]),
        ("Completé la planilla", ["plan"], []),
        ("El plan social", ["plan"], ["plan"]),
        ("plan-social", ["plan"], ["plan"]),
        ("no tengo  agua   potable", ["agua potable"], ["agua potable"]),
        ("agua potablemente", ["agua potable"], []),
        (
            "Hay un incendio y violencia",
            ["violencia", "incendio", "robo"],
            ["violencia", "incendio"],
        ),
        ("señor", ["senor", "Señor"], ["senor"]),
        ("algo", ["", "  "], []),
        ("precio (u$s 100)", ["u$s 100"], ["u$s 100"]),
    ],
)
def test_find_phrases(text: str, phrases: list[str], found: list[str]) -> None:
    assert find_phrases(text, phrases) == found

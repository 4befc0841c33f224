"""SMS conversation rules with the shipped configuration: keywords, categories, urgency, the
conversation window, reply caps and the replies themselves. Pure: no database, no clock."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from casestore.config import Limits, load_config
from casestore.tracking import ParsedTracking, find_digit_runs, format_tracking, generate
from sms.conversation import (
    Action,
    CaseSummary,
    ContactState,
    Decision,
    OpenCase,
    Plan,
    classify_sms,
    decide,
    may_reply,
    render_reply,
)

CONFIG = load_config(env={})
NOW = datetime(2025, 3, 14, 15, 0, tzinfo=UTC)
TRACKING = generate(10, random.Random(20250314))
# The same number with its check digit changed: one mistyped digit.
MISTYPED = TRACKING[:-1] + str((int(TRACKING[-1]) + 1) % 10)
TRIAGE = CONFIG.triage_category


def state(
    *,
    language: str | None = None,
    case_status: str | None = None,
    minutes_ago: float | None = None,
    replies: int = 0,
    lookups: int = 0,
) -> ContactState:
    """A citizen's state: an open conversation on a case `minutes_ago`, and this hour's counts."""
    case = None if case_status is None else OpenCase(41, "4821330752", case_status)
    at = None if minutes_ago is None else NOW - timedelta(minutes=minutes_ago)
    return ContactState(
        language=language,
        opted_out=False,
        conversation_case=case,
        conversation_at=at,
        replies_this_hour=replies,
        lookups_this_hour=lookups,
    )


def run(text: str, contact: ContactState | None = None) -> Decision:
    return decide(classify_sms(text, CONFIG), contact or state(), NOW, CONFIG)


def test_the_test_numbers_are_what_they_claim() -> None:
    assert len(TRACKING) == 10
    assert MISTYPED != TRACKING and len(MISTYPED) == 10


# ---------------------------------------------------------------- ESTADO / STATUS
@pytest.mark.parametrize(
    ("text", "language"),
    [
        (f"ESTADO {TRACKING}", "es"),
        (f"estado {format_tracking(TRACKING)}", "es"),
        (f"Estado {'-'.join(format_tracking(TRACKING).split())}", "es"),
        (f"  Estado:  {TRACKING}. ", "es"),
        (f"CONSULTA ESTADO {TRACKING}", "es"),
        (f"status {format_tracking(TRACKING)}", "en"),
        (f"STATUS {TRACKING}", "en"),
    ],
)
def test_status_with_a_valid_number(text: str, language: str) -> None:
    plan = classify_sms(text, CONFIG)
    assert plan.command == "status"
    assert plan.tracking == ParsedTracking(TRACKING, "ok")
    assert decide(plan, state(), NOW, CONFIG) == Decision(Action.STATUS, language, "status")


@pytest.mark.parametrize(
    "text",
    [f"ESTADO {MISTYPED}", f"estado {format_tracking(MISTYPED)}", f"status {MISTYPED}"],
)
def test_status_with_a_mistyped_number(text: str) -> None:
    decision = run(text)
    assert (decision.action, decision.reply_template) == (Action.STATUS, "status_mistyped")


def test_status_with_two_digits_swapped_is_mistyped_too() -> None:
    i = next(i for i in range(len(TRACKING) - 1) if TRACKING[i] != TRACKING[i + 1])
    swapped = TRACKING[:i] + TRACKING[i + 1] + TRACKING[i] + TRACKING[i + 2 :]
    assert run(f"ESTADO {swapped}").reply_template == "status_mistyped"


@pytest.mark.parametrize("text", ["ESTADO", "estado.", "Status", "ESTADO 123", "ESTADO 1234567"])
def test_status_without_a_usable_number_explains_usage(text: str) -> None:
    decision = run(text)
    assert (decision.action, decision.reply_template) == (Action.STATUS, "status_usage")


@pytest.mark.parametrize(
    "text", ["Estado de mi tramite", "estado del caso 4821 3307 52", "cual es el estado?"]
)
def test_status_inside_a_sentence_is_a_new_request(text: str) -> None:
    decision = run(text)
    assert decision.action == Action.NEW_CASE
    assert decision.reply_template == "receipt"


def test_status_look_ups_are_limited_per_hour() -> None:
    limit = CONFIG.status_lookups_per_hour
    below = run(f"ESTADO {TRACKING}", state(lookups=limit - 1))
    at_limit = run(f"ESTADO {TRACKING}", state(lookups=limit))
    assert below.reply_template == "status"
    assert at_limit == Decision(Action.STATUS, "es", "status_limited")


# ---------------------------------------------------------------- BAJA / ALTA / AYUDA
@pytest.mark.parametrize(
    ("text", "action", "language"),
    [
        ("BAJA", Action.STOP, "es"),
        ("baja", Action.STOP, "es"),
        ("Bája", Action.STOP, "es"),
        ("¡Baja!", Action.STOP, "es"),
        ("basta", Action.STOP, "es"),
        ("STOP", Action.STOP, "en"),
        ("Stop.", Action.STOP, "en"),
        ("ALTA", Action.START, "es"),
        ("Álta", Action.START, "es"),
        ("start", Action.START, "en"),
        ("AYUDA", Action.HELP, "es"),
        ("¿ayúda?", Action.HELP, "es"),
        ("help", Action.HELP, "en"),
        ("Info", Action.HELP, "en"),
    ],
)
def test_whole_message_keywords(text: str, action: Action, language: str) -> None:
    assert run(text) == Decision(action, language, action.value)


@pytest.mark.parametrize(
    "text",
    [
        "me dieron de baja la asignación",
        "Me dieron de BAJA la asignacion",
        "quiero darme de alta en el plan",
    ],
)
def test_keyword_inside_a_sentence_is_a_request(text: str) -> None:
    plan = classify_sms(text, CONFIG)
    assert plan.command is None
    assert plan.category == "programas-ingreso"
    decision = decide(plan, state(), NOW, CONFIG)
    assert (decision.action, decision.category) == (Action.NEW_CASE, "programas-ingreso")


def test_a_keyword_answers_even_inside_an_open_conversation() -> None:
    assert run("BAJA", state(case_status="new", minutes_ago=5)).action == Action.STOP


# ---------------------------------------------------------------- categories and language
@pytest.mark.parametrize(
    ("text", "category", "language"),
    [
        ("Necesito turno para el DNI de mi hijo", "documentacion", "es"),
        ("No me llegó la Tarjeta Alimentar", "tarjeta-alimentar", "es"),
        ("Donde hay un comedor cerca?", "comedores", "es"),
        ("Se me vino el techo abajo con la lluvia", "habitat", "es"),
        ("Estamos inundados, evacuados en la escuela", "emergencia-climatica", "es"),
        ("Consulta por la pensión por discapacidad", "pensiones", "es"),
        ("My food card was blocked", "tarjeta-alimentar", "en"),
        ("Question about disability support", "pensiones", "en"),
        ("Our house is flooded", "emergencia-climatica", "en"),
        ("hola buenas tardes", TRIAGE, None),
    ],
)
def test_category_keywords(text: str, category: str, language: str | None) -> None:
    plan = classify_sms(text, CONFIG)
    assert plan == Plan(command=None, language=language, category=category, urgent=False)
    decision = decide(plan, state(), NOW, CONFIG)
    assert decision == Decision(Action.NEW_CASE, language or "es", "receipt", category)


def test_an_english_message_is_answered_in_english() -> None:
    assert run("Where can I get food for my kids?").language == "en"


def test_the_citizens_known_language_wins_over_the_guess() -> None:
    assert run("Where can I get food?", state(language="es")).language == "es"


def test_an_unknown_language_falls_back_to_the_default() -> None:
    assert run("hola", state(language="qu")).language == CONFIG.default_language


# ---------------------------------------------------------------- urgent
@pytest.mark.parametrize(
    ("text", "category", "language"),
    [
        ("Mi pareja me pega y me amenaza", "violencia-genero", "es"),
        ("me quiero morir", "crisis-salud-mental", "es"),
        ("Hay un nene solo en la calle hace horas", "ninez-en-riesgo", "es"),
        ("My husband beats me", "violencia-genero", "en"),
        ("I want to die", "crisis-salud-mental", "en"),
        # urgent wins over an ordinary category found in the same message
        ("Por la inundacion mi pareja me golpea", "violencia-genero", "es"),
    ],
)
def test_urgent_keywords(text: str, category: str, language: str) -> None:
    decision = run(text)
    assert decision == Decision(Action.NEW_CASE, language, "urgent", category, urgent=True)
    reply = render_reply(CONFIG, "urgent", language, tracking=TRACKING)
    assert CONFIG.emergency_lines[language] in reply
    assert format_tracking(TRACKING) in reply


def test_urgent_opens_its_own_case_inside_an_open_conversation() -> None:
    decision = run("no quiero vivir mas", state(case_status="in_progress", minutes_ago=3))
    assert (decision.action, decision.urgent) == (Action.NEW_CASE, True)


# ---------------------------------------------------------------- conversation window
WINDOW = CONFIG.conversation_window_minutes


@pytest.mark.parametrize(
    ("case_status", "minutes_ago", "action"),
    [
        ("new", 1, Action.JOIN_CASE),
        ("assigned", WINDOW / 2, Action.JOIN_CASE),
        ("in_progress", WINDOW - 1, Action.JOIN_CASE),
        ("waiting_citizen", WINDOW - 0.01, Action.JOIN_CASE),
        ("in_progress", WINDOW, Action.NEW_CASE),
        ("in_progress", WINDOW + 60, Action.NEW_CASE),
        ("resolved", 1, Action.NEW_CASE),
        ("closed", 1, Action.NEW_CASE),
        (None, None, Action.NEW_CASE),
    ],
)
def test_conversation_window(
    case_status: str | None, minutes_ago: float | None, action: Action
) -> None:
    decision = run(
        "Les mando la foto del DNI", state(case_status=case_status, minutes_ago=minutes_ago)
    )
    assert decision.action == action
    assert decision.reply_template == ("joined" if action == Action.JOIN_CASE else "receipt")


def test_window_follows_configuration() -> None:
    short = load_config(env={"VENTANILLA__SMS__CONVERSATION_WINDOW_MINUTES": "10"})
    plan = classify_sms("otra cosa", short)
    assert (
        decide(plan, state(case_status="new", minutes_ago=9), NOW, short).action == Action.JOIN_CASE
    )
    assert (
        decide(plan, state(case_status="new", minutes_ago=11), NOW, short).action == Action.NEW_CASE
    )


# ---------------------------------------------------------------- auto-reply cap
CAP = CONFIG.auto_replies_per_hour


@pytest.mark.parametrize(
    ("text", "replies", "expected"),
    [
        ("Necesito un turno", 0, True),
        ("Necesito un turno", CAP - 1, True),
        ("Necesito un turno", CAP, False),
        ("Necesito un turno", CAP + 5, False),
        (f"ESTADO {TRACKING}", CAP, False),
        ("AYUDA", CAP, False),
        ("BAJA", CAP, True),
        ("STOP", CAP + 5, True),
        ("ALTA", CAP, True),
        ("START", CAP + 5, True),
        ("me quiero morir", CAP, True),
        ("he beats me", CAP + 5, True),
    ],
)
def test_auto_reply_cap(text: str, replies: int, expected: bool) -> None:
    contact = state(replies=replies)
    assert may_reply(run(text, contact), contact, CONFIG) is expected


def test_no_template_no_reply() -> None:
    decision = Decision(Action.RECORD_ONLY, "es", None)
    assert may_reply(decision, state(), CONFIG) is False


# ---------------------------------------------------------------- replies
def test_receipt_carries_the_tracking_number_in_groups() -> None:
    reply = render_reply(CONFIG, "receipt", "es", tracking=TRACKING)
    assert format_tracking(TRACKING) in reply
    assert reply.startswith(CONFIG.signature)
    assert find_digit_runs(reply) == [TRACKING]


def test_status_reply_names_status_and_department_only() -> None:
    case = CaseSummary(TRACKING, "waiting_citizen", "ATC")
    es = render_reply(CONFIG, "status", "es", case=case)
    en = render_reply(CONFIG, "status", "en", case=case)
    # "Atención Ciudadana" loses its accent so the SMS stays in GSM-7.
    assert "esperando su respuesta" in es and "Atencion Ciudadana" in es
    assert "waiting for your reply" in en and "Citizen Services" in en
    assert format_tracking(TRACKING) in es and format_tracking(TRACKING) in en


def test_status_reply_keeps_gsm7_letters() -> None:
    reply = render_reply(CONFIG, "status", "es", case=CaseSummary(TRACKING, "new", "NAF"))
    assert "Niñez, Adolescencia y Familia" in reply


def test_reply_in_an_unknown_language_uses_the_default() -> None:
    assert render_reply(CONFIG, "help", "qu") == render_reply(CONFIG, "help", "es")


# ---------------------------------------------------------------- abuse limits
LIMITED = replace(CONFIG, limits=Limits(sms_per_minute=3, new_cases_per_day=2))


def limited(text: str, contact: ContactState) -> Decision:
    return decide(classify_sms(text, LIMITED), contact, NOW, LIMITED)


def test_over_the_sms_limit_nothing_is_answered_and_no_case_opens() -> None:
    talking = replace(state(case_status="new", minutes_ago=1), inbound_this_minute=4)
    assert limited("otra cosa", talking) == Decision(
        Action.JOIN_CASE, "es", None, limit="sms_per_minute"
    )
    silent = replace(state(), inbound_this_minute=4)
    assert limited("otra cosa", silent).action is Action.RECORD_ONLY
    assert limited(f"ESTADO {TRACKING}", silent).action is Action.RECORD_ONLY
    assert limited("BAJA", silent) == Decision(Action.STOP, "es", None, limit="sms_per_minute")
    assert limited("otra cosa", replace(state(), inbound_this_minute=3)).reply_template


def test_urgent_is_never_refused_by_a_limit() -> None:
    flood = replace(state(case_status="new", minutes_ago=300), inbound_this_minute=99)
    busy = replace(flood, inbound_this_minute=1, cases_today=99)
    for contact in (flood, busy):
        decision = limited("me quiere matar", contact)
        assert (decision.action, decision.urgent, decision.limit) == (Action.NEW_CASE, True, None)


def test_over_the_daily_case_limit_a_request_joins_the_open_case() -> None:
    open_case = replace(state(case_status="in_progress", minutes_ago=300), cases_today=2)
    assert limited("Necesito chapas", open_case) == Decision(
        Action.JOIN_CASE, "es", "limit_cases", limit="new_cases_per_day"
    )
    closed = replace(state(case_status="closed", minutes_ago=300), cases_today=2)
    assert limited("Necesito chapas", closed).action is Action.NEW_CASE
    below = replace(open_case, cases_today=1)
    assert limited("Necesito chapas", below).action is Action.NEW_CASE

"""The voice/USSD menu walk (ivr.machine), without I/O: every path of the shipped menu on both
channels and in both languages, navigation keys, bad input, resuming, and random walks."""

from __future__ import annotations

import copy
import random
import tomllib
from collections import deque
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casestore.config import SHIPPED_CONFIG, load_config, parse_config
from casestore.tracking import format_tracking, generate
from ivr.machine import (
    Action,
    Channel,
    Context,
    Expect,
    Outcome,
    Screen,
    State,
    queue_wait,
    resume,
    start,
    step,
)
from ivr.menu import Menu, load_menu

MENU = load_menu(load_config(env={}))
CONFIG = MENU.config
CHANNELS = ("ussd", "voice")
LANGUAGES = ("es", "en")
TRACKING = generate(10, random.Random(7))  # a valid number: Damm check digit included
# One digit changed: the check digit catches it, so it reads as "mistyped", not "unknown".
MISTYPED = TRACKING[:3] + str((int(TRACKING[3]) + 1) % 10) + TRACKING[4:]
# Two different adjacent digits swapped: caught by the check digit as well.
_AT = next(i for i in range(9) if TRACKING[i] != TRACKING[i + 1])
SWAPPED = TRACKING[:_AT] + TRACKING[_AT + 1] + TRACKING[_AT] + TRACKING[_AT + 2 :]
URGENT = [c for c in MENU.categories if c.urgent]
ORDINARY = [c for c in MENU.categories if not c.urgent]
MAIN_KEYS = ("1", "2", "3", "9")

every_channel = pytest.mark.parametrize("channel", CHANNELS)
every_language = pytest.mark.parametrize("lang", LANGUAGES)


def p(name: str, lang: str, **values: str) -> str:
    return MENU.prompt(name, lang, **values)


def keys(screen: Screen) -> tuple[str, ...]:
    return tuple(key for key, _ in screen.options)


def labels(screen: Screen) -> tuple[str, ...]:
    return tuple(label for _, label in screen.options)


def walk(
    channel: str,
    lang: str,
    *inputs: str | None,
    context: Context | None = None,
    menu: Menu = MENU,
) -> Screen:
    """Start a session and key in `inputs`, one step each."""
    screen = start(menu, channel, lang)
    for value in inputs:
        assert not screen.end, f"session ended before {value!r}: {screen.text}"
        screen = step(menu, screen.state, value, context)
    return screen


def category_key(channel: str, lang: str, code: str) -> tuple[Screen, list[str]]:
    """Page through the category list like a caller looking for `code`'s label."""
    label = CONFIG.categories[code].label(lang)
    pages: list[str] = ["1"]
    screen = walk(channel, lang, "1")
    while label not in labels(screen):
        assert "98" in keys(screen), f"{label} is on no page"
        pages.append("98")
        screen = step(MENU, screen.state, "98")
    key = next(k for k, text in screen.options if text == label)
    return screen, [*pages, key]


def last_page(channel: str, lang: str) -> Screen:
    screen = walk(channel, lang, "1")
    while "98" in keys(screen):
        screen = step(MENU, screen.state, "98")
    return screen


def ordinary_at_describe(channel: str, lang: str, code: str = "habitat") -> Screen:
    _, path = category_key(channel, lang, code)
    return walk(channel, lang, *path)


def is_main(screen: Screen, lang: str) -> bool:
    return (
        screen.state.node == "main"
        and screen.state.phase == ""
        and screen.state.trail == ()
        and keys(screen) == MAIN_KEYS
        and screen.text.endswith(p("main", lang))
        and not screen.end
    )


def render_ussd(screen: Screen) -> str:
    return "\n".join([screen.text, *(f"{key} {label}" for key, label in screen.options)])


def shipped_data() -> dict[str, Any]:
    return tomllib.loads(SHIPPED_CONFIG.read_text(encoding="utf-8"))


def menu_from(data: dict[str, Any]) -> Menu:
    return load_menu(parse_config(data))


# ---------------------------------------------------------------- main menu
@every_channel
@every_language
def test_a_session_opens_on_the_main_menu_with_a_welcome(channel: str, lang: str) -> None:
    screen = start(MENU, channel, lang)
    assert screen.text == f"{p('welcome', lang)} {p('main', lang)}"
    assert keys(screen) == MAIN_KEYS
    assert screen.expect is Expect.CHOICE
    assert screen.state == State(channel=channel, language=lang)
    assert not screen.end and screen.action is None


@pytest.mark.parametrize(
    ("channel", "lang", "third", "ninth"),
    [
        ("ussd", "es", "Pedir que lo llamemos", "English"),
        ("ussd", "en", "Ask for a call back", "Español"),
        ("voice", "es", "Hablar con una persona", "English"),
        ("voice", "en", "Talk to a person", "Español"),
    ],
)
def test_main_menu_labels_follow_channel_and_language(
    channel: str, lang: str, third: str, ninth: str
) -> None:
    options = dict(start(MENU, channel, lang).options)
    assert options["3"] == third
    assert options["9"] == ninth


@pytest.mark.parametrize("asked", [None, "fr", ""])
def test_an_unknown_or_missing_language_starts_in_the_default(asked: str | None) -> None:
    screen = start(MENU, "ussd", asked)
    assert screen.state.language == "es"
    assert screen.text.startswith(p("welcome", "es"))


# ---------------------------------------------------------------- 1 new request: categories
@every_channel
@every_language
def test_categories_are_paged_with_more_and_urgent_ones_come_first(channel: str, lang: str) -> None:
    size = MENU.page_size if channel == "ussd" else 9
    screen = walk(channel, lang, "1")
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        assert screen.state.node == "new_request"
        assert screen.text == p("category", lang)
        assert screen.options[-1] == ("0", p("back", lang))
        listed = [(k, text) for k, text in screen.options if k not in ("0", "98")]
        assert [k for k, _ in listed] == [str(i) for i in range(1, len(listed) + 1)]
        assert len(listed) <= size
        seen.extend(text for _, text in listed)
        if "98" not in keys(screen):
            break
        assert len(listed) == size
        assert screen.options[-2] == ("98", p("more", lang))
        screen = step(MENU, screen.state, "98")
    assert seen == [c.label.get(lang) for c in MENU.categories]
    assert seen[: len(URGENT)] == [c.label[lang] for c in URGENT]
    assert pages == -(-len(MENU.categories) // size)


@every_channel
def test_zero_on_a_category_page_goes_to_the_previous_page_then_to_main(channel: str) -> None:
    first = walk(channel, "es", "1")
    second = step(MENU, first.state, "98")
    assert second.state.page == 1 and second.options != first.options
    back = step(MENU, second.state, "0")
    assert back.state.page == 0 and back.options == first.options
    assert is_main(step(MENU, back.state, "0"), "es")


@every_channel
def test_zero_walks_back_page_by_page(channel: str) -> None:
    screen = last_page(channel, "en")
    assert screen.state.page >= 1
    for page in reversed(range(screen.state.page)):
        screen = step(MENU, screen.state, "0")
        assert screen.state.page == page and screen.state.node == "new_request"
    assert is_main(step(MENU, screen.state, "0"), "en")


@every_channel
def test_more_on_the_last_page_is_an_invalid_choice(channel: str) -> None:
    screen = last_page(channel, "es")
    again = step(MENU, screen.state, "98")
    assert again.text.startswith(p("invalid", "es"))
    assert again.state.page == screen.state.page and again.state.attempts == 1


@pytest.mark.parametrize("code", [c.code for c in URGENT])
@every_channel
@every_language
def test_an_urgent_category_opens_an_urgent_case_with_its_department_at_once(
    code: str, channel: str, lang: str
) -> None:
    page, path = category_key(channel, lang, code)
    assert page.state.page == 0  # urgent categories are on the first page
    screen = walk(channel, lang, *path)
    assert screen.action == Action(
        "create_case", category=code, urgent=True, department=CONFIG.categories[code].department
    )
    assert screen.expect is Expect.NOTHING and not screen.end
    assert screen.state.category == code


@pytest.mark.parametrize("code", [c.code for c in ORDINARY])
@every_channel
@every_language
def test_every_ordinary_category_leads_to_the_description(
    code: str, channel: str, lang: str
) -> None:
    screen = ordinary_at_describe(channel, lang, code)
    assert screen.state.node == "describe" and screen.state.category == code
    assert screen.action is None and not screen.end
    if channel == "ussd":
        assert (screen.text, screen.expect) == (p("describe_ussd", lang), Expect.TEXT)
    else:
        assert (screen.text, screen.expect) == (p("describe_voice", lang), Expect.RECORDING)


@pytest.mark.parametrize("value", ["5", "9", "12", "abc", "", None, "-1", "1.0", "٣", "²"])
def test_a_category_key_not_on_the_page_is_invalid(value: str | None) -> None:
    screen = last_page("ussd", "es")
    assert len(screen.options) - 1 < 5  # the last page lists fewer than five
    again = step(MENU, screen.state, value)
    assert again.text == f"{p('invalid', 'es')} {p('category', 'es')}"
    assert again.state.page == screen.state.page and again.state.category is None


# ---------------------------------------------------------------- USSD: describe and confirm
def test_ussd_description_keeps_a_text_with_stars_whole() -> None:
    text = "Se me vino el techo * necesito chapas *2 y colchon*"
    describe = ordinary_at_describe("ussd", "es")
    confirm = step(MENU, describe.state, text)
    assert confirm.state.node == "confirm"
    assert confirm.state.description == text
    created = step(MENU, confirm.state, "1")
    assert created.action is not None and created.action.description == text


@every_language
def test_ussd_description_is_cut_to_the_configured_length(lang: str) -> None:
    text = "  " + "".join(random.Random(3).choice("abcdef *#") for _ in range(400)) + "x  "
    describe = ordinary_at_describe("ussd", lang)
    confirm = step(MENU, describe.state, text)
    assert confirm.state.description == text.strip()[: MENU.description_max_chars]
    assert len(confirm.state.description) == MENU.description_max_chars == 140


@pytest.mark.parametrize("value", ["1", " 1 "])
def test_ussd_one_skips_the_description(value: str) -> None:
    confirm = step(MENU, ordinary_at_describe("ussd", "es").state, value)
    assert confirm.state.node == "confirm" and confirm.state.description == ""


@every_language
def test_ussd_confirm_names_the_category_and_one_opens_the_case(lang: str) -> None:
    confirm = step(MENU, ordinary_at_describe("ussd", lang, "pensiones").state, "sin cobro")
    label = CONFIG.categories["pensiones"].label(lang)
    assert confirm.text == p("confirm", lang, category=label)
    assert confirm.options == (("1", p("confirm_yes", lang)), ("2", p("confirm_no", lang)))
    created = step(MENU, confirm.state, "1")
    assert created.action == Action("create_case", category="pensiones", description="sin cobro")
    assert created.expect is Expect.NOTHING and not created.end


@every_language
def test_ussd_confirm_two_cancels_and_ends(lang: str) -> None:
    confirm = step(MENU, ordinary_at_describe("ussd", lang).state, "1")
    cancelled = step(MENU, confirm.state, "2")
    assert cancelled.end and cancelled.text == p("cancelled", lang)
    assert cancelled.action is None and cancelled.state.category is None


@pytest.mark.parametrize("value", ["", None, "   "])
def test_ussd_empty_description_is_invalid(value: str | None) -> None:
    again = step(MENU, ordinary_at_describe("ussd", "es").state, value)
    assert again.text == f"{p('invalid', 'es')} {p('describe_ussd', 'es')}"
    assert again.state.node == "describe" and again.state.attempts == 1


@every_language
def test_ussd_resume_after_create_case_ends_with_the_formatted_number(lang: str) -> None:
    created = step(MENU, step(MENU, ordinary_at_describe("ussd", lang).state, "1").state, "1")
    assert created.action is not None
    done = resume(MENU, created.state, created.action, Outcome(tracking=TRACKING))
    assert done.end and done.action is None
    assert done.text == p("created_ussd", lang, tracking=format_tracking(TRACKING))
    assert format_tracking(TRACKING) in done.text


@pytest.mark.parametrize("code", [c.code for c in URGENT])
@every_language
def test_ussd_urgent_case_ends_with_the_number_and_the_emergency_lines(
    code: str, lang: str
) -> None:
    _, path = category_key("ussd", lang, code)
    urgent = walk("ussd", lang, *path)
    assert urgent.action is not None
    done = resume(MENU, urgent.state, urgent.action, Outcome(tracking=TRACKING))
    assert done.end
    assert format_tracking(TRACKING) in done.text
    assert CONFIG.emergency_lines[lang] in done.text


# ---------------------------------------------------------------- voice: record, number read out
RECORDING = "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE0123456789abcdef"


@every_language
def test_voice_recording_opens_the_case_with_its_url(lang: str) -> None:
    recorded = step(MENU, ordinary_at_describe("voice", lang, "comedores").state, RECORDING)
    assert recorded.action == Action("create_case", category="comedores", recording_url=RECORDING)
    assert recorded.state.recording_url == RECORDING
    assert recorded.expect is Expect.NOTHING and not recorded.end


@every_language
def test_voice_no_recording_is_invalid_three_times_then_goodbye(lang: str) -> None:
    screen = ordinary_at_describe("voice", lang)
    for attempt in (1, 2):
        screen = step(MENU, screen.state, None)
        assert screen.text == f"{p('invalid', lang)} {p('describe_voice', lang)}"
        assert screen.expect is Expect.RECORDING and screen.state.attempts == attempt
    screen = step(MENU, screen.state, "")
    assert screen.end and screen.text == f"{p('invalid', lang)} {p('goodbye', lang)}"


def voice_created(lang: str) -> Screen:
    recorded = step(MENU, ordinary_at_describe("voice", lang).state, RECORDING)
    assert recorded.action is not None
    return resume(MENU, recorded.state, recorded.action, Outcome(tracking=TRACKING))


@every_language
def test_voice_reads_the_number_digit_by_digit_twice_and_offers_to_repeat(lang: str) -> None:
    screen = voice_created(lang)
    spaced = " ".join(TRACKING)
    assert screen.text == f"{p('created_voice', lang, digits=spaced)} {p('repeat', lang)}"
    assert screen.text.count(spaced) == 2
    assert screen.spoken_digits == TRACKING
    assert screen.expect is Expect.CHOICE and not screen.end and screen.action is None
    again = step(MENU, screen.state, "1")
    assert (again.text, again.spoken_digits) == (screen.text, TRACKING)
    again = step(MENU, again.state, "1")
    assert again.text == screen.text


@pytest.mark.parametrize("value", [None, "", "2", "9", "#"])
def test_voice_anything_but_one_after_the_number_says_goodbye(value: str | None) -> None:
    bye = step(MENU, voice_created("en").state, value)
    assert bye.end and bye.text == p("goodbye", "en")


@pytest.mark.parametrize("code", [c.code for c in URGENT])
@every_language
def test_voice_urgent_case_goes_straight_to_the_departments_queue(code: str, lang: str) -> None:
    _, path = category_key("voice", lang, code)
    urgent = walk("voice", lang, *path)
    assert urgent.action is not None
    screen = resume(MENU, urgent.state, urgent.action, Outcome(tracking=TRACKING))
    assert screen.text == p("urgent_voice", lang)
    assert screen.action == Action(
        "enqueue", department=CONFIG.categories[code].department, urgent=True, tracking=TRACKING
    )
    assert not screen.end and screen.expect is Expect.NOTHING


def test_voice_urgent_caller_leaving_the_queue_keeps_department_and_urgency() -> None:
    _, path = category_key("voice", "es", "violencia-genero")
    urgent = walk("voice", "es", *path)
    assert urgent.action is not None
    queued = resume(MENU, urgent.state, urgent.action, Outcome(tracking=TRACKING))
    waiting = queue_wait(MENU, queued.state, position=2, wait_seconds=90, timed_out=False)
    leave = step(MENU, waiting.state, "1")
    assert leave.action == Action("callback", department="GEN", urgent=True)
    assert resume(MENU, leave.state, leave.action, Outcome()).text == p("callback_done", "es")


# ---------------------------------------------------------------- 2 status of a case
@every_channel
@every_language
def test_status_asks_for_the_tracking_digits(channel: str, lang: str) -> None:
    screen = walk(channel, lang, "2")
    assert screen.state.node == "status"
    assert screen.text == p("tracking", lang)
    assert (screen.expect, screen.digits) == (Expect.DIGITS, CONFIG.tracking_length)


@pytest.mark.parametrize(
    "typed", [TRACKING, format_tracking(TRACKING), f" {TRACKING[:5]}-{TRACKING[5:]} "]
)
@every_channel
def test_a_valid_number_looks_the_case_up(typed: str, channel: str) -> None:
    screen = walk(channel, "es", "2", typed)
    assert screen.action == Action("case_status", tracking=TRACKING)
    assert screen.expect is Expect.NOTHING and not screen.end


@pytest.mark.parametrize(
    ("typed", "notice"),
    [
        ("12345", "invalid"),
        ("abc", "invalid"),
        ("", "invalid"),
        (TRACKING + "1234", "invalid"),
        ("²" * 10, "invalid"),
        (MISTYPED, "mistyped"),
        (SWAPPED, "mistyped"),
    ],
)
@every_channel
@every_language
def test_a_bad_number_is_asked_again_with_the_reason(
    typed: str, notice: str, channel: str, lang: str
) -> None:
    screen = walk(channel, lang, "2", typed)
    assert screen.text == f"{p(notice, lang)} {p('tracking', lang)}"
    assert screen.expect is Expect.DIGITS and screen.state.attempts == 1
    assert screen.action is None and not screen.end


@every_channel
def test_three_bad_numbers_end_the_session_politely(channel: str) -> None:
    screen = walk(channel, "en", "2", "12345", MISTYPED)
    assert screen.state.attempts == 2
    bye = step(MENU, screen.state, MISTYPED)
    assert bye.end and bye.text == f"{p('mistyped', 'en')} {p('goodbye', 'en')}"


@pytest.mark.parametrize(
    ("status", "department"), [("new", "ATC"), ("waiting_citizen", "ING"), ("closed", "GEN")]
)
@every_channel
@every_language
def test_a_found_case_tells_its_status_and_department(
    status: str, department: str, channel: str, lang: str
) -> None:
    asked = walk(channel, lang, "2", TRACKING)
    assert asked.action is not None
    found = Outcome(tracking=TRACKING, status=status, department=department)
    told = resume(MENU, asked.state, asked.action, found)
    assert told.end and told.action is None
    assert told.text == p(
        "status",
        lang,
        tracking=format_tracking(TRACKING),
        status=CONFIG.status_names[lang][status],
        department=CONFIG.departments[department].label(lang),
    )


def test_an_unknown_department_or_status_is_told_by_its_code() -> None:
    asked = walk("ussd", "en", "2", TRACKING)
    assert asked.action is not None
    found = Outcome(tracking=TRACKING, status="archived", department="OLD")
    told = resume(MENU, asked.state, asked.action, found)
    assert "archived" in told.text and "OLD" in told.text


@every_channel
@every_language
def test_an_unknown_number_is_told_apart_and_counts_as_an_attempt(channel: str, lang: str) -> None:
    asked = walk(channel, lang, "2", TRACKING)
    assert asked.action is not None
    unknown = resume(MENU, asked.state, asked.action, Outcome(ok=False))
    assert unknown.text == f"{p('unknown', lang)} {p('tracking', lang)}"
    assert unknown.expect is Expect.DIGITS and unknown.state.attempts == 1
    assert not unknown.end
    # Mistyped, then unknown again: the third failure of either kind ends the session.
    mistyped = step(MENU, unknown.state, MISTYPED)
    assert mistyped.state.attempts == 2 and not mistyped.end
    asked = step(MENU, mistyped.state, TRACKING)
    assert asked.action is not None
    bye = resume(MENU, asked.state, asked.action, Outcome(ok=False))
    assert bye.end and bye.text == f"{p('unknown', lang)} {p('goodbye', lang)}"


@every_language
def test_voice_caller_with_an_open_case_is_offered_the_latest(lang: str) -> None:
    offer = walk("voice", lang, "2", context=Context(latest_open_case=TRACKING))
    assert offer.text == p("latest", lang)
    assert offer.options == (("1", p("latest_yes", lang)), ("2", p("latest_no", lang)))
    # The gateway looks the case up only on the way in: the next step has no context.
    heard = step(MENU, offer.state, "1")
    assert heard.action == Action("case_status", tracking=TRACKING)
    told = resume(
        MENU, heard.state, heard.action, Outcome(tracking=TRACKING, status="new", department="ATC")
    )
    assert told.end and format_tracking(TRACKING) in told.text


def test_voice_caller_may_check_another_number_instead_of_the_latest() -> None:
    offer = walk("voice", "es", "2", context=Context(latest_open_case=TRACKING))
    bad = step(MENU, offer.state, "7")
    assert bad.text == f"{p('invalid', 'es')} {p('latest', 'es')}"
    assert keys(bad) == ("1", "2") and bad.state.attempts == 1
    other = step(MENU, bad.state, "2")
    assert other.text == p("tracking", "es") and other.expect is Expect.DIGITS
    assert other.state.attempts == 0
    typed = generate(10, random.Random(8))
    assert step(MENU, other.state, typed).action == Action("case_status", tracking=typed)


def test_the_latest_case_is_offered_on_voice_only() -> None:
    screen = walk("ussd", "es", "2", context=Context(latest_open_case=TRACKING))
    assert screen.expect is Expect.DIGITS and screen.text == p("tracking", "es")


# ---------------------------------------------------------------- 3 operator
@every_language
def test_voice_operator_in_hours_queues_the_caller(lang: str) -> None:
    screen = walk("voice", lang, "3", context=Context(operators_available=True))
    assert screen.action == Action("enqueue", department=MENU.operator_department)
    assert screen.state.phase == "queue" and not screen.end


@every_language
def test_voice_operator_out_of_hours_records_a_call_back(lang: str) -> None:
    screen = walk("voice", lang, "3", context=Context(operators_available=False))
    assert screen.action == Action("callback", department=MENU.operator_department)
    done = resume(MENU, screen.state, screen.action, Outcome())
    assert done.end and done.text == p("closed_hours", lang)


@pytest.mark.parametrize("available", [True, False])
@every_language
def test_ussd_operator_asks_for_a_call_back(available: bool, lang: str) -> None:
    screen = walk("ussd", lang, "3", context=Context(operators_available=available))
    assert screen.action == Action("callback", department="ATC")
    done = resume(MENU, screen.state, screen.action, Outcome())
    assert done.end and done.text == p("callback_done", lang)


@pytest.mark.parametrize(
    ("seconds", "minutes"), [(0, "1"), (29, "1"), (90, "2"), (150, "2"), (600, "10")]
)
@every_language
def test_queue_wait_tells_position_and_minutes(seconds: int, minutes: str, lang: str) -> None:
    queued = walk("voice", lang, "3")
    waiting = queue_wait(MENU, queued.state, 3, seconds, timed_out=False)
    assert waiting.text == p("queue_wait", lang, position="3", minutes=minutes)
    assert (waiting.state.node, waiting.state.phase) == ("operator", "queue")
    assert waiting.expect is Expect.CHOICE and not waiting.end


@every_language
def test_queue_timeout_offers_the_call_back(lang: str) -> None:
    waiting = queue_wait(MENU, walk("voice", lang, "3").state, 1, 400, timed_out=True)
    assert waiting.text == p("queue_timeout", lang)


@pytest.mark.parametrize("timed_out", [True, False])
@every_language
def test_pressing_one_in_the_queue_leaves_a_call_back(timed_out: bool, lang: str) -> None:
    waiting = queue_wait(MENU, walk("voice", lang, "3").state, 4, 240, timed_out)
    leave = step(MENU, waiting.state, "1")
    assert leave.action == Action("callback", department="ATC")
    assert leave.state.phase == "queue"
    done = resume(MENU, leave.state, leave.action, Outcome())
    assert done.end and done.text == p("callback_done", lang)


@pytest.mark.parametrize("value", [None, "", "2", "*"])
def test_other_keys_in_the_queue_keep_waiting(value: str | None) -> None:
    waiting = queue_wait(MENU, walk("voice", "es", "3").state, 2, 60, timed_out=False)
    still = step(MENU, waiting.state, value)
    assert not still.end and still.action is None
    assert (still.state.node, still.state.phase) == ("operator", "queue")


# ---------------------------------------------------------------- 9 language
@every_channel
def test_nine_toggles_the_language_and_shows_the_main_menu_again(channel: str) -> None:
    english = walk(channel, "es", "9")
    assert english.state.language == "en"
    assert english.text == p("main", "en")  # no second welcome
    assert is_main(english, "en")
    assert dict(english.options)["9"] == "Español"
    spanish = step(MENU, english.state, "9")
    assert spanish.state.language == "es" and is_main(spanish, "es")
    assert dict(spanish.options)["9"] == "English"


@every_channel
def test_the_chosen_language_carries_through_the_walk(channel: str) -> None:
    screen = walk(channel, "es", "9", "1")
    assert screen.text == p("category", "en")
    assert labels(screen)[0] == URGENT[0].label["en"]


def test_a_single_language_deployment_stays_in_it() -> None:
    data = shipped_data()
    data["languages"] = ["es"]
    menu = menu_from(data)
    screen = walk("ussd", "es", "9", menu=menu)
    assert screen.state.language == "es" and screen.state.node == "main"


# ---------------------------------------------------------------- navigation keys
@every_language
def test_zero_goes_back_through_the_trail(lang: str) -> None:
    confirm = step(MENU, ordinary_at_describe("ussd", lang).state, "1")
    assert confirm.state.trail == ("main", "new_request", "describe")
    describe = step(MENU, confirm.state, "0")
    assert describe.state.node == "describe" and describe.text == p("describe_ussd", lang)
    categories = step(MENU, describe.state, "0")
    assert categories.state.node == "new_request" and categories.state.page == 0
    assert categories.text == p("category", lang)
    assert is_main(step(MENU, categories.state, "0"), lang)


def test_zero_back_from_status_and_from_the_latest_offer() -> None:
    assert is_main(walk("ussd", "es", "2", "0"), "es")
    offer = walk("voice", "es", "2", context=Context(latest_open_case=TRACKING))
    assert is_main(step(MENU, offer.state, "0"), "es")


@every_channel
@every_language
def test_zero_on_main_stays_on_main(channel: str, lang: str) -> None:
    screen = walk(channel, lang, "0")
    assert is_main(screen, lang) and screen.state.attempts == 0
    assert is_main(step(MENU, screen.state, "0"), lang)


@pytest.mark.parametrize(
    "inputs",
    [
        (),
        ("1",),
        ("1", "98"),
        ("1", "98", "98"),
        ("1", "98", "1"),
        ("1", "98", "1", "texto"),
        ("2",),
        ("2", "12345"),
        ("1", "7"),
        ("x",),
    ],
)
@every_language
def test_double_zero_goes_to_main_from_anywhere(inputs: tuple[str, ...], lang: str) -> None:
    for channel in CHANNELS:
        screen = walk(channel, lang, *inputs)
        if screen.end or screen.action is not None:
            continue
        main = step(MENU, screen.state, "00")
        assert is_main(main, lang)
        assert main.state.category is None and main.state.description == ""


def test_double_zero_from_the_voice_number_readout_and_the_queue() -> None:
    assert is_main(step(MENU, voice_created("es").state, "00"), "es")
    waiting = queue_wait(MENU, walk("voice", "en", "3").state, 1, 30, timed_out=False)
    assert is_main(step(MENU, waiting.state, "00"), "en")


def test_voice_describe_does_not_take_zero_as_back_but_double_zero_is_main() -> None:
    describe = ordinary_at_describe("voice", "es")
    assert is_main(step(MENU, describe.state, "00"), "es")


# ---------------------------------------------------------------- bad input, every node type
def at_main(channel: str, lang: str) -> Screen:
    return walk(channel, lang)


def at_category(channel: str, lang: str) -> Screen:
    return walk(channel, lang, "1", "98")


def at_describe(channel: str, lang: str) -> Screen:
    return ordinary_at_describe(channel, lang)


def at_confirm(channel: str, lang: str) -> Screen:
    return step(MENU, ordinary_at_describe("ussd", lang).state, "1")


def at_tracking(channel: str, lang: str) -> Screen:
    return walk(channel, lang, "2")


def at_latest(channel: str, lang: str) -> Screen:
    return walk("voice", lang, "2", context=Context(latest_open_case=TRACKING))


def at_resume(channel: str, lang: str) -> Screen:
    return start(MENU, "ussd", lang, resumable=ordinary_at_describe("ussd", lang).state)


BAD_INPUT = {
    # where: (how to get there, a bad input, the notice shown)
    "main": (at_main, "7", "invalid"),
    "category": (at_category, "8", "invalid"),
    "describe": (at_describe, "", "invalid"),
    "confirm": (at_confirm, "3", "invalid"),
    "tracking": (at_tracking, "12", "invalid"),
    "tracking-mistyped": (at_tracking, MISTYPED, "mistyped"),
    "latest": (at_latest, "5", "invalid"),
    "resume": (at_resume, "4", "invalid"),
}


@pytest.mark.parametrize("where", list(BAD_INPUT))
@every_channel
@every_language
def test_bad_input_is_reprompted_with_the_reason_then_goodbye(
    where: str, channel: str, lang: str
) -> None:
    build, bad, notice = BAD_INPUT[where]
    first = build(channel, lang)
    shown = first.text.removeprefix(p("welcome", lang) + " ")  # the welcome is said once
    screen = first
    for attempt in (1, 2):
        screen = step(MENU, screen.state, bad)
        assert screen.text.startswith(p(notice, lang) + " "), screen.text
        # the same node again, with the same options and input expected
        assert screen.text == f"{p(notice, lang)} {shown}"
        assert (screen.options, screen.expect) == (first.options, first.expect)
        assert screen.state.node == first.state.node
        assert screen.state.attempts == attempt
        assert not screen.end and screen.action is None
    bye = step(MENU, screen.state, bad)
    assert bye.end and bye.expect is Expect.NOTHING
    assert bye.text == f"{p(notice, lang)} {p('goodbye', lang)}"


@every_channel
def test_attempts_reset_when_moving_on(channel: str) -> None:
    screen = walk(channel, "es", "7", "7")
    assert screen.state.attempts == 2
    screen = step(MENU, screen.state, "1")
    assert screen.state.attempts == 0 and screen.state.node == "new_request"
    screen = step(MENU, step(MENU, screen.state, "x").state, "x")
    assert screen.state.attempts == 2
    more = step(MENU, screen.state, "98")
    assert more.state.attempts == 0 and more.state.page == 1
    back = step(MENU, step(MENU, more.state, "x").state, "0")
    assert back.state.attempts == 0 and back.state.page == 0
    page, path = category_key(channel, "es", ORDINARY[0].code)
    screen = step(MENU, page.state, "x")
    described = step(MENU, screen.state, path[-1])
    assert described.state.node == "describe" and described.state.attempts == 0


@every_channel
def test_attempts_reset_when_going_back_or_to_main(channel: str) -> None:
    screen = walk(channel, "en", "2", "1", "1")
    assert screen.state.attempts == 2
    assert step(MENU, screen.state, "0").state.attempts == 0
    assert step(MENU, screen.state, "00").state.attempts == 0


# ---------------------------------------------------------------- resume an unfinished request
@pytest.mark.parametrize("at", ["describe", "confirm"])
@every_language
def test_a_dropped_new_request_is_offered_to_continue(at: str, lang: str) -> None:
    dropped = ordinary_at_describe("ussd", lang, "pensiones")
    if at == "confirm":
        dropped = step(MENU, dropped.state, "no cobro * desde marzo")
    offer = start(MENU, "ussd", None, resumable=dropped.state)
    assert offer.text == p("resume", lang)  # in the dropped session's language
    assert offer.options == (("1", p("resume_yes", lang)), ("2", p("resume_no", lang)))
    assert offer.state.language == lang and not offer.end
    resumed = step(MENU, offer.state, "1")
    assert resumed.state.node == at and resumed.state.category == "pensiones"
    assert resumed.text == dropped.text and resumed.options == dropped.options
    assert resumed.state.trail == dropped.state.trail
    if at == "confirm":
        assert resumed.state.description == "no cobro * desde marzo"
        created = step(MENU, resumed.state, "1")
        assert created.action is not None
        assert created.action.description == "no cobro * desde marzo"


@every_language
def test_start_again_drops_the_unfinished_request(lang: str) -> None:
    offer = start(MENU, "ussd", lang, resumable=ordinary_at_describe("ussd", lang).state)
    fresh = step(MENU, offer.state, "2")
    assert is_main(fresh, lang)
    assert fresh.state == State(channel="ussd", language=lang)


def test_the_resume_offer_in_a_language_the_caller_chose() -> None:
    dropped = ordinary_at_describe("ussd", "en")
    offer = start(MENU, "ussd", "es", resumable=dropped.state)
    assert offer.text == p("resume", "es") and offer.state.language == "es"


@pytest.mark.parametrize(
    "inputs",
    [(), ("1",), ("1", "98"), ("2",), ("2", "12345"), ("9",), ("1", "1")],
)
def test_other_places_are_not_offered_to_resume(inputs: tuple[str, ...]) -> None:
    dropped = walk("ussd", "es", *inputs)
    screen = start(MENU, "ussd", "es", resumable=dropped.state)
    assert screen.text.startswith(p("welcome", "es")) and is_main(screen, "es")


def test_a_resumable_state_without_category_is_not_offered() -> None:
    stale = State(channel="ussd", language="es", node="describe", trail=("main",))
    assert is_main(start(MENU, "ussd", "es", resumable=stale), "es")


# ---------------------------------------------------------------- robustness
def test_a_session_saved_under_an_older_menu_starts_over() -> None:
    stale = State(channel="ussd", language="en", node="survey", trail=("main",))
    screen = step(MENU, stale, "1")
    assert is_main(screen, "en")


def test_resume_refuses_an_action_that_has_no_following_screen() -> None:
    state = walk("voice", "es", "3").state
    with pytest.raises(ValueError, match="enqueue"):
        resume(MENU, state, Action("enqueue"), Outcome())


def test_a_nested_menu_from_the_config_walks_and_backs_out() -> None:
    data = shipped_data()
    nodes = data["ivr"]["nodes"]
    nodes[0]["options"].append(
        {"key": "4", "next": "info", "label": {"es": "Informacion", "en": "Information"}}
    )
    nodes.append(
        {
            "id": "info",
            "type": "menu",
            "options": [{"key": "1", "next": "status", "label": {"es": "Estado", "en": "Status"}}],
        }
    )
    menu = menu_from(data)
    info = walk("ussd", "en", "4", menu=menu)
    assert info.state.node == "info" and info.options == (("1", "Status"),)
    bad = step(menu, info.state, "2")
    assert bad.text.startswith(p("invalid", "en")) and bad.options == info.options
    status = step(menu, bad.state, "1")
    assert status.state.trail == ("main", "info")
    assert step(menu, status.state, "0").state.node == "info"


def test_a_category_list_that_fits_one_page_has_no_more() -> None:
    data = shipped_data()
    data["categories"] = [c for c in data["categories"] if not c.get("urgent")][:4]
    data["sms"]["triage_category"] = data["categories"][0]["code"]
    data["ivr"]["ussd_page_size"] = 4
    menu = menu_from(data)
    screen = walk("ussd", "es", "1", menu=menu)
    assert keys(screen) == ("1", "2", "3", "4", "0")
    assert step(menu, screen.state, "98").text.startswith(p("invalid", "es"))


def test_a_configured_operator_department_and_page_size_are_used() -> None:
    data = copy.deepcopy(shipped_data())
    data["ivr"]["operator_department"] = "ALIM"
    data["ivr"]["ussd_page_size"] = 2
    data["ivr"]["max_attempts"] = 2
    menu = menu_from(data)
    assert walk("voice", "es", "3", menu=menu).action == Action("enqueue", department="ALIM")
    assert keys(walk("ussd", "es", "1", menu=menu)) == ("1", "2", "98", "0")
    assert walk("ussd", "es", "7", "7", menu=menu).end


# ---------------------------------------------------------------- every reachable USSD screen
def perform(menu: Menu, screen: Screen, found: bool) -> Screen:
    """Feed back outcomes as the gateway does (enqueue excepted: the caller waits)."""
    while screen.action is not None and screen.action.kind != "enqueue":
        action = screen.action
        if action.kind == "create_case":
            outcome = Outcome(tracking=TRACKING)
        elif action.kind == "case_status" and found:
            outcome = Outcome(tracking=action.tracking, status="waiting_citizen", department="NAF")
        elif action.kind == "case_status":
            outcome = Outcome(ok=False)
        else:
            outcome = Outcome()
        screen = resume(menu, screen.state, action, outcome)
    return screen


EXPLORE_INPUTS = ("0", "00", "1", "2", "3", "4", "9", "98", "", "abc", TRACKING, MISTYPED)


def reachable(channel: str, lang: str) -> Iterable[Screen]:
    """Every screen a caller can reach with EXPLORE_INPUTS (breadth first)."""
    first = start(MENU, channel, lang)
    queue = deque([first])
    dropped = ordinary_at_describe(channel, lang).state
    queue.append(start(MENU, channel, lang, resumable=dropped))
    seen: set[tuple[State, str]] = set()
    while queue:
        screen = queue.popleft()
        if (screen.state, screen.text) in seen:
            continue
        seen.add((screen.state, screen.text))
        yield screen
        if screen.end or screen.action is not None:
            continue
        for value in EXPLORE_INPUTS:
            after = step(MENU, screen.state, value)
            if after.action is not None and after.action.kind == "case_status":
                queue.extend(perform(MENU, after, found) for found in (True, False))
            elif after.action is not None and after.action.kind == "enqueue":
                queue.append(after)
                queue.append(queue_wait(MENU, after.state, 3, 120, timed_out=False))
            else:
                queue.append(perform(MENU, after, True))


REACHABLE = {(c, lang): list(reachable(c, lang)) for c in CHANNELS for lang in LANGUAGES}
USSD_SCREENS = {
    lang: [s for s in REACHABLE["ussd", lang] if s.action is None] for lang in LANGUAGES
}


@every_language
def test_every_ussd_screen_fits_in_160_characters(lang: str) -> None:
    screens = USSD_SCREENS[lang]
    assert len(screens) > 100
    assert {s.state.node for s in screens} == set(MENU.nodes) - {"language"}
    assert [render_ussd(s) for s in screens if len(render_ussd(s)) > 160] == []


@every_channel
@every_language
def test_every_reachable_screen_expects_something_or_ends(channel: str, lang: str) -> None:
    for screen in REACHABLE[channel, lang]:
        assert screen.end or screen.expect is not Expect.NOTHING or screen.action is not None
        if screen.end:
            assert screen.expect is Expect.NOTHING and screen.action is None and screen.text
        if screen.expect is Expect.DIGITS:
            assert screen.digits == CONFIG.tracking_length
        if not screen.end and screen.action is None:
            assert is_main(step(MENU, screen.state, "00"), screen.state.language)


# ---------------------------------------------------------------- random walks
fast = settings(max_examples=150, database=None, deadline=None)
ten_digits = st.from_regex(r"[0-9]{10}", fullmatch=True)
valid_numbers = st.builds(generate, st.just(10), st.randoms(use_true_random=False))
keypad = st.sampled_from(["0", "00", *"123456789", "98", "", "abc", "12345"])
inputs = st.lists(
    st.one_of(keypad, ten_digits, valid_numbers, st.text(max_size=200), st.none()),
    max_size=30,
)


@fast
@given(
    channel=st.sampled_from(CHANNELS),
    lang=st.sampled_from(LANGUAGES),
    values=inputs,
    latest=st.sampled_from([None, TRACKING]),
    available=st.booleans(),
    found=st.booleans(),
)
def test_random_walks_never_raise_and_never_get_stuck(
    channel: str,
    lang: str,
    values: list[str | None],
    latest: str | None,
    available: bool,
    found: bool,
) -> None:
    context = Context(latest_open_case=latest, operators_available=available)
    screen = start(MENU, channel, lang)
    for value in values:
        screen = step(MENU, screen.state, value, context)
        assert isinstance(screen, Screen)
        assert screen.end or screen.expect is not Expect.NOTHING or screen.action is not None
        screen = perform(MENU, screen, found)
        if screen.action is not None:  # enqueue: the caller now waits in the queue
            assert screen.action.kind == "enqueue" and channel == Channel.VOICE
            screen = queue_wait(MENU, screen.state, 2, 60, timed_out=False)
        if screen.end:
            assert screen.text and screen.expect is Expect.NOTHING
            break
        state = screen.state
        assert screen.expect is not Expect.NOTHING
        assert state.node in MENU.nodes and set(state.trail) <= set(MENU.nodes)
        assert state.language in LANGUAGES and state.channel == channel
        assert 0 <= state.attempts < MENU.max_attempts
        assert is_main(step(MENU, state, "00", context), state.language)

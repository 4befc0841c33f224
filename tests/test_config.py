"""The deployment configuration: the shipped file, environment overrides, required keys, and
the SMS templates a citizen receives (GSM-7, one segment, one long number at most)."""

from __future__ import annotations

import copy
import random
import tomllib
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from casestore.config import SHIPPED_CONFIG, ConfigError, load_config, parse_config
from casestore.tracking import MAX_LENGTH, find_digit_runs, generate
from sms.conversation import CaseSummary, render_reply
from sms.segments import segment_info

SHIPPED = load_config(env={})


def shipped_data() -> dict[str, Any]:
    return tomllib.loads(SHIPPED_CONFIG.read_text(encoding="utf-8"))


def without(data: dict[str, Any], dotted: str) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *sections, key = dotted.split(".")
    node = data
    for part in sections:
        node = node[part]
    del node[key]
    return data


# ---------------------------------------------------------------- the shipped file
def test_shipped_config_loads() -> None:
    assert SHIPPED.timezone == ZoneInfo("America/Argentina/Buenos_Aires")
    assert SHIPPED.default_language == "es"
    assert SHIPPED.languages == ("es", "en")
    assert SHIPPED.country == "AR"
    assert SHIPPED.tracking_length == 10
    assert SHIPPED.conversation_window_minutes == 120
    assert SHIPPED.triage_category in SHIPPED.categories
    assert SHIPPED.raw["operators"]["hours"] == "always"
    assert {c.department for c in SHIPPED.categories.values()} <= set(SHIPPED.departments)


def test_load_config_ignores_the_process_environment_when_given_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VENTANILLA_CONFIG", raising=False)
    monkeypatch.setenv("VENTANILLA__SMS__CONVERSATION_WINDOW_MINUTES", "5")
    assert load_config(env={}).conversation_window_minutes == 120
    assert load_config().conversation_window_minutes == 5


# ---------------------------------------------------------------- VENTANILLA__ overrides
def test_override_is_read_as_a_toml_literal() -> None:
    config = load_config(env={"VENTANILLA__SMS__CONVERSATION_WINDOW_MINUTES": "30"})
    assert config.conversation_window_minutes == 30
    assert config.raw["sms"]["conversation_window_minutes"] == 30


def test_top_level_override_that_is_not_a_literal_is_a_string() -> None:
    config = load_config(env={"VENTANILLA__TIMEZONE": "America/Argentina/Cordoba"})
    assert config.timezone == ZoneInfo("America/Argentina/Cordoba")


@pytest.mark.parametrize(
    ("name", "value", "read"),
    [
        ("VENTANILLA__SURVEY__QUIET_HOURS", "22:00-08:00", "22:00-08:00"),
        ("VENTANILLA__SURVEY__QUIET_HOURS", "", ""),
        ("VENTANILLA__SURVEY__QUIET_HOURS", '"21:00-09:00"', "21:00-09:00"),
        ("VENTANILLA__SURVEY__DELAY_MINUTES", "0", 0),
        ("VENTANILLA__OPERATORS__HOURS", "always", "always"),
        ("VENTANILLA__DEFAULT_LANGUAGE", "en", "en"),
    ],
)
def test_overrides(name: str, value: str, read: object) -> None:
    config = load_config(env={name: value})
    *sections, key = name.removeprefix("VENTANILLA__").lower().split("__")
    node: Any = config.raw
    for part in sections:
        node = node[part]
    assert node[key] == read


def test_override_with_a_wrong_type_is_refused() -> None:
    with pytest.raises(ConfigError, match="sms.conversation_window_minutes"):
        load_config(env={"VENTANILLA__SMS__CONVERSATION_WINDOW_MINUTES": "half an hour"})


def test_unrelated_variables_are_ignored() -> None:
    env = {"VENTANILLA_DATABASE_URL": "sqlite:///x.db", "VENTANILLA_SMS_PROVIDER": "twilio"}
    assert load_config(env=env).raw == SHIPPED.raw


# ---------------------------------------------------------------- required keys
@pytest.mark.parametrize(
    "key",
    [
        "timezone",
        "default_language",
        "sms.conversation_window_minutes",
        "survey.delay_minutes",
        "survey.quiet_hours",
        "survey.expiry_hours",
        "operators.hours",
    ],
)
def test_missing_required_key_is_named(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(without(shipped_data(), key))
    assert key in str(info.value)


def test_operators_hours_always_is_accepted() -> None:
    data = shipped_data()
    data["operators"]["hours"] = "always"
    assert parse_config(data).raw["operators"]["hours"] == "always"


def test_quiet_hours_may_be_empty() -> None:
    data = shipped_data()
    data["survey"]["quiet_hours"] = ""
    assert parse_config(data).survey["quiet_hours"] == ""


def test_category_with_an_unknown_department_is_refused() -> None:
    data = shipped_data()
    data["categories"].append(
        {"code": "agua", "department": "AGUA", "name": {"es": "Agua", "en": "Water"}}
    )
    with pytest.raises(ConfigError, match="AGUA"):
        parse_config(data)


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(ConfigError, match="timezone"):
        load_config(env={"VENTANILLA__TIMEZONE": "America/Atlantida"})


def test_missing_template_is_refused() -> None:
    with pytest.raises(ConfigError, match="templates.en is missing receipt"):
        parse_config(without(shipped_data(), "templates.en.receipt"))


# ---------------------------------------------------------------- SMS templates
TEMPLATES = [
    pytest.param(language, name, id=f"{language}-{name}")
    for language in SHIPPED.languages
    for name in SHIPPED.templates[language]
]
# The longest tracking number allowed (12 digits); every department and status name is tried,
# so the longest of each is among them.
LONG_TRACKING = generate(MAX_LENGTH, random.Random(12))


def test_every_language_has_templates() -> None:
    assert len(TEMPLATES) >= 2 * 11


@pytest.mark.parametrize(("language", "name"), TEMPLATES)
def test_template_is_one_gsm7_segment_with_at_most_one_long_number(
    language: str, name: str
) -> None:
    raw = SHIPPED.templates[language][name]
    carries_tracking = "{tracking}" in raw
    for department in SHIPPED.departments:
        for status in SHIPPED.status_names[language]:
            case = CaseSummary(LONG_TRACKING, status, department)
            text = render_reply(SHIPPED, name, language, case=case)
            info = segment_info(text)
            assert info.encoding == "GSM-7", (text, info.offending)
            assert info.segments == 1, (text, info.units)
            long_runs = [run for run in find_digit_runs(text) if len(run) >= 9]
            if carries_tracking:
                assert long_runs == [LONG_TRACKING], text
            else:
                assert long_runs == [], text


@pytest.mark.parametrize("language", SHIPPED.languages)
def test_templates_avoid_letters_that_force_ucs2(language: str) -> None:
    # Transliteration would save the message, but the template itself should not need it.
    for name, text in SHIPPED.templates[language].items():
        assert segment_info(text).encoding == "GSM-7", (name, segment_info(text).offending)

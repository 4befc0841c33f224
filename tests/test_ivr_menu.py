"""The menu as read from the deployment TOML (ivr.menu.load_menu): the shipped tree, defaults,
and every mistake refused at start-up with a ConfigError that names it."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from typing import Any

import pytest

from casestore.config import SHIPPED_CONFIG, ConfigError, load_config, parse_config
from ivr.menu import NODE_TYPES, REQUIRED_PROMPTS, Menu, load_menu

SHIPPED = tomllib.loads(SHIPPED_CONFIG.read_text(encoding="utf-8"))
MENU = load_menu(load_config(env={}))

Edit = Callable[[dict[str, Any]], None]


def edited(edit: Edit) -> dict[str, Any]:
    data = copy.deepcopy(SHIPPED)
    edit(data)
    return data


def menu_with(edit: Edit) -> Menu:
    return load_menu(parse_config(edited(edit)))


def node(data: dict[str, Any], node_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(n for n in data["ivr"]["nodes"] if n["id"] == node_id)
    return found


# ---------------------------------------------------------------- the shipped menu
def test_the_shipped_menu_loads_with_its_settings() -> None:
    assert set(MENU.nodes) == {
        "main",
        "new_request",
        "describe",
        "confirm",
        "status",
        "operator",
        "language",
    }
    assert {n.type for n in MENU.nodes.values()} == NODE_TYPES
    assert [o.key for o in MENU.nodes["main"].options] == ["1", "2", "3", "9"]
    assert [o.next for o in MENU.nodes["main"].options] == [
        "new_request",
        "status",
        "operator",
        "language",
    ]
    assert MENU.nodes["new_request"].next == "describe"
    assert MENU.nodes["describe"].next == "confirm"
    assert MENU.max_attempts == 3
    assert 1 <= MENU.page_size <= 9
    assert MENU.description_max_chars == 140
    assert MENU.operator_department == "ATC"
    assert MENU.resume_minutes == 15


def test_the_call_back_option_has_its_own_ussd_label() -> None:
    third = MENU.nodes["main"].options[2]
    assert third.label == {"es": "Hablar con una persona", "en": "Talk to a person"}
    assert third.ussd_label == {"es": "Pedir que lo llamemos", "en": "Ask for a call back"}
    assert MENU.nodes["main"].options[0].ussd_label is None


def test_categories_come_urgent_first_in_config_order() -> None:
    codes = [c.code for c in MENU.categories]
    configured = [c["code"] for c in SHIPPED["categories"]]
    urgent = [c["code"] for c in SHIPPED["categories"] if c.get("urgent")]
    assert codes == urgent + [c for c in configured if c not in urgent]
    assert urgent == ["violencia-genero", "ninez-en-riesgo", "crisis-salud-mental"]
    by_code = {c.code: c for c in MENU.categories}
    assert by_code["violencia-genero"].department == "GEN" and by_code["violencia-genero"].urgent
    assert by_code["habitat"].label == {
        "es": "Vivienda y materiales",
        "en": "Housing and materials",
    }
    assert not by_code["habitat"].urgent


@pytest.mark.parametrize("lang", ["es", "en"])
def test_every_prompt_is_there_in_every_language(lang: str) -> None:
    for name in REQUIRED_PROMPTS:
        assert MENU.prompt(name, lang).strip()


def test_prompts_fill_their_placeholders() -> None:
    assert MENU.prompt("confirm", "en", category="Food card") == (
        "Register a request about Food card?"
    )
    assert "4821 3307 55" in MENU.prompt("created_ussd", "es", tracking="4821 3307 55")
    assert MENU.prompt("queue_wait", "en", position="2", minutes="5").startswith(
        "You are number 2 in line. Expected wait: 5 minutes."
    )


def test_a_prompt_in_an_unknown_language_falls_back_to_the_default() -> None:
    assert MENU.prompt("main", "fr") == MENU.prompt("main", "es")


def test_defaults_when_the_settings_are_left_out() -> None:
    def drop_settings(data: dict[str, Any]) -> None:
        for key in (
            "max_attempts",
            "ussd_page_size",
            "description_max_chars",
            "operator_department",
            "resume_minutes",
        ):
            del data["ivr"][key]

    menu = menu_with(drop_settings)
    assert (menu.max_attempts, menu.page_size, menu.description_max_chars) == (3, 4, 140)
    assert menu.resume_minutes == 15
    # The triage category's department (a category code is not a department).
    assert menu.operator_department == "ATC"


def test_settings_are_read_from_the_config() -> None:
    def change(data: dict[str, Any]) -> None:
        data["ivr"].update(
            max_attempts=5,
            ussd_page_size=2,
            description_max_chars=60,
            operator_department="HAB",
            resume_minutes=30,
        )

    menu = menu_with(change)
    assert (menu.max_attempts, menu.page_size, menu.description_max_chars) == (5, 2, 60)
    assert (menu.operator_department, menu.resume_minutes) == ("HAB", 30)


def test_environment_overrides_reach_the_menu() -> None:
    config = load_config(env={"VENTANILLA__IVR__OPERATOR_DEPARTMENT": "NAF"})
    assert load_menu(config).operator_department == "NAF"


# ---------------------------------------------------------------- refused at start-up
def unknown_type(data: dict[str, Any]) -> None:
    node(data, "operator")["type"] = "transfer"


def unknown_option_target(data: dict[str, Any]) -> None:
    node(data, "main")["options"][1]["next"] = "estado"


def unknown_next(data: dict[str, Any]) -> None:
    node(data, "describe")["next"] = "confirmar"


def missing_prompts(data: dict[str, Any]) -> None:
    del data["ivr"]["prompts"]["en"]["goodbye"]
    del data["ivr"]["prompts"]["en"]["back"]


def missing_language(data: dict[str, Any]) -> None:
    del data["ivr"]["prompts"]["en"]


def reserved(key: str) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        node(data, "main")["options"][3]["key"] = key

    edit.__name__ = f"reserved_{key}"
    return edit


def unknown_department(data: dict[str, Any]) -> None:
    data["ivr"]["operator_department"] = "SALUD"


def no_main(data: dict[str, Any]) -> None:
    node(data, "main")["id"] = "inicio"


def menu_without_options(data: dict[str, Any]) -> None:
    data["ivr"]["nodes"].append({"id": "empty", "type": "menu"})


def category_without_next(data: dict[str, Any]) -> None:
    del node(data, "new_request")["next"]


def describe_without_next(data: dict[str, Any]) -> None:
    del node(data, "describe")["next"]


def bad_hours(data: dict[str, Any]) -> None:
    data["operators"]["hours"] = {"mon-fri": "8am-8pm"}


def no_ivr_section(data: dict[str, Any]) -> None:
    del data["ivr"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (unknown_type, "ivr node 'operator': unknown type 'transfer'"),
        (unknown_option_target, "ivr node 'main' leads to unknown node 'estado'"),
        (unknown_next, "ivr node 'describe' leads to unknown node 'confirmar'"),
        (missing_prompts, "ivr.prompts.en is missing goodbye, back"),
        (missing_language, "ivr.prompts.en is missing welcome, main,"),
        (reserved("0"), "ivr node 'main': keys ['0'] are reserved"),
        (reserved("00"), "ivr node 'main': keys ['00'] are reserved"),
        (reserved("98"), "ivr node 'main': keys ['98'] are reserved"),
        (unknown_department, "ivr.operator_department 'SALUD' is not a department"),
        (no_main, 'ivr.nodes needs a node with id = "main"'),
        (menu_without_options, "ivr node 'empty': a menu needs options"),
        (category_without_next, "ivr node 'new_request': a category node needs next"),
        (describe_without_next, "ivr node 'describe': a describe node needs next"),
        (bad_hours, "operators.hours: bad time span '8am-8pm'"),
        (no_ivr_section, 'ivr.nodes needs a node with id = "main"'),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_a_broken_menu_is_refused_naming_the_problem(edit: Edit, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        menu_with(edit)
    assert message in str(refused.value)


def test_a_missing_prompt_in_a_language_not_served_is_fine() -> None:
    def drop(data: dict[str, Any]) -> None:
        data["languages"] = ["es"]
        del data["ivr"]["prompts"]["en"]

    assert menu_with(drop).prompt("main", "en") == MENU.prompt("main", "es")

"""Speech the menu prompts do not cover, shared by every voice renderer.

`[ivr.voice.<lang>] <name>` overrides each text. The values are those gateway.routes.voice_twilio
and voice_africastalking carry in their own SPEECH_DEFAULTS, so every provider sounds the same;
those tables can be replaced by this one when their renderers move under gateway/providers/.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ivr.machine import Screen
from ivr.menu import Menu

SPEECH_DEFAULTS: Mapping[str, Mapping[str, str]] = {
    "es": {
        "option": "{label}: presione {key}.",
        "queue_notice": "Aguarde en linea, por favor. Lo atendera la primera persona libre.",
        "sorry": "Disculpe, ahora no podemos atenderlo. Por favor llame mas tarde.",
        "one_moment": "Un momento, por favor.",
    },
    "en": {
        "option": "{label}: press {key}.",
        "queue_notice": "Please hold. The first available person will answer.",
        "sorry": "Sorry, we cannot take your call right now. Please call again later.",
        "one_moment": "One moment, please.",
    },
}


def voice_table(menu: Menu, language: str) -> Mapping[str, Any]:
    """`[ivr.voice.<language>]`: the provider settings (language, voice) and overrides."""
    table: Mapping[str, Any] = menu.config.raw.get("ivr", {}).get("voice", {})
    settings: Mapping[str, Any] = table.get(language, {})
    return settings


def speech(menu: Menu, language: str, name: str) -> str:
    """A speech-only text: `[ivr.voice.<lang>] <name>`, else the built-in default."""
    override = voice_table(menu, language).get(name)
    return str(override or (SPEECH_DEFAULTS.get(language) or SPEECH_DEFAULTS["en"])[name])


def spoken_options(menu: Menu, screen: Screen) -> str:
    """The options read out: "Nuevo pedido: presione 1." (keys digit by digit)."""
    template = speech(menu, screen.state.language, "option")
    return " ".join(
        template.format(label=label, key=" ".join(key)) for key, label in screen.options
    )

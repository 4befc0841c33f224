"""Words the voice channel says beyond the menu's prompts: one table for every provider.

The menu's own prompts live in the menu file; these are the few phrases only a voice call
needs (how an option is read out, the apology, the queue and live-call words). A deployment
may override each under `[ivr.voice.<lang>]`; a language without its own table speaks English.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from casestore.config import Config
from ivr.machine import Screen

SPEECH_DEFAULTS: Mapping[str, Mapping[str, str]] = {
    "es": {
        "option": "{label}: presione {key}.",
        "sorry": "Disculpe, ahora no podemos atenderlo. Por favor llame mas tarde.",
        "queue_notice": "Aguarde en linea, por favor. Lo atendera la primera persona libre.",
        "operator_notice": "Ventanilla: llamada para {department}. Lo conectamos.",
        "connecting": "Le comunicamos con una persona.",
        "transfer": "Le transferimos a {department}. Aguarde en linea, por favor.",
        "over": "La llamada termino.",
        "goodbye": "Gracias por llamar. Hasta luego.",
        "one_moment": "Un momento, por favor.",
    },
    "en": {
        "option": "{label}: press {key}.",
        "sorry": "Sorry, we cannot take your call right now. Please call again later.",
        "queue_notice": "Please hold. The first available person will answer.",
        "operator_notice": "Ventanilla: a call for {department}. Connecting you.",
        "connecting": "Connecting you to a person.",
        "transfer": "We are transferring you to {department}. Please hold.",
        "over": "The call has ended.",
        "goodbye": "Thank you for calling. Goodbye.",
        "one_moment": "One moment, please.",
    },
}


def speech(config: Config, language: str, name: str, **values: str) -> str:
    """A speech-only text: `[ivr.voice.<lang>] <name>`, else the built-in default; `values`
    fill its placeholders (without them the template comes back as it is)."""
    override = voice_table(config, language).get(name)
    text = str(override or (SPEECH_DEFAULTS.get(language) or SPEECH_DEFAULTS["en"])[name])
    return text.format(**values) if values else text


def voice_table(config: Config, language: str) -> Mapping[str, Any]:
    """`[ivr.voice.<language>]`: a provider's voice settings (language, voice) and overrides."""
    table = config.raw.get("ivr", {}).get("voice", {}).get(language, {})
    return table if isinstance(table, Mapping) else {}


def spoken_options(config: Config, screen: Screen) -> str:
    """The options read out: "Nuevo pedido: presione 1." (keys digit by digit)."""
    template = speech(config, screen.state.language, "option")
    return " ".join(
        template.format(label=label, key=" ".join(key)) for key, label in screen.options
    )

"""The one list of providers: their names, the environment they read, and what they can do.

Adding a provider is one line here plus its package under `gateway/providers/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.providers.africastalking.webhooks import AfricasTalkingWebhooks
from gateway.providers.base import SmsWebhooks, SmsWebhooksFactory, VoiceMenu, VoiceMenuFactory
from gateway.providers.twilio.webhooks import TwilioWebhooks
from gateway.providers.vonage.voice import VonageVoice
from gateway.providers.vonage.webhooks import VonageWebhooks


@dataclass(frozen=True)
class ProviderInfo:
    name: str  # as VENTANILLA_SMS_PROVIDER / VENTANILLA_VOICE_PROVIDER name it
    env_prefixes: tuple[str, ...]  # the variables of the contract its clients read
    sms: bool  # sends SMS
    voice: bool  # places calls
    transfers_live_calls: bool  # can move a caller in a live call (bridge to an operator)
    sms_webhooks: SmsWebhooksFactory | None = None  # receives SMS and delivery statuses
    voice_menu: VoiceMenuFactory | None = None  # runs the shared IVR (gateway.routes.voice_menu)


PROVIDERS: tuple[ProviderInfo, ...] = (
    ProviderInfo(
        "twilio",
        ("TWILIO_",),
        sms=True,
        voice=True,
        transfers_live_calls=True,
        sms_webhooks=TwilioWebhooks,
    ),
    ProviderInfo(
        "africastalking",
        ("AT_",),
        sms=True,
        voice=True,
        transfers_live_calls=True,
        sms_webhooks=AfricasTalkingWebhooks,
    ),
    ProviderInfo("outbox", (), sms=True, voice=True, transfers_live_calls=True),
    ProviderInfo(
        "vonage",
        ("VONAGE_",),
        sms=True,
        voice=True,
        transfers_live_calls=False,
        sms_webhooks=VonageWebhooks,
        voice_menu=VonageVoice,
    ),
)
NAMES: tuple[str, ...] = tuple(p.name for p in PROVIDERS)
_BY_NAME = {p.name: p for p in PROVIDERS}
ENV_PREFIXES: tuple[str, ...] = tuple(prefix for p in PROVIDERS for prefix in p.env_prefixes)


def info(name: str) -> ProviderInfo:
    """The provider called `name`; ValueError naming the known ones otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; expected one of {', '.join(NAMES)}") from None


def provider_env(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Every provider's variables in `env`, sorted: what a client is built from, and the key
    under which a built client is cached (a changed variable builds a new one)."""
    return tuple(sorted((k, v) for k, v in env.items() if k.startswith(ENV_PREFIXES)))


def sms_webhooks(env: Mapping[str, str]) -> dict[str, SmsWebhooks]:
    """Every provider's SMS webhooks, built from the environment (one set per process)."""
    return {p.name: p.sms_webhooks(env) for p in PROVIDERS if p.sms_webhooks is not None}


def voice_menus(env: Mapping[str, str]) -> dict[str, VoiceMenu]:
    """Every provider's voice menu adapter, built from the environment (one set per process)."""
    return {p.name: p.voice_menu(env) for p in PROVIDERS if p.voice_menu is not None}

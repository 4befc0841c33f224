"""The one list of providers: their names, the environment they read, and what they can do.

Adding a provider is one line here plus its package under `gateway/providers/`. The clients
built here are cached per process: one per provider, environment and timeout.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.providers.africastalking import caller as at_caller
from gateway.providers.africastalking import sender as at_sender
from gateway.providers.africastalking.webhooks import AfricasTalkingWebhooks
from gateway.providers.base import (
    Caller,
    CallPaths,
    RecordingsApi,
    SmsSender,
    SmsWebhooks,
    SmsWebhooksFactory,
    VoiceMenu,
    VoiceMenuFactory,
)
from gateway.providers.outbox import caller as outbox_caller
from gateway.providers.outbox import sender as outbox_sender
from gateway.providers.twilio import caller as twilio_caller
from gateway.providers.twilio import sender as twilio_sender
from gateway.providers.twilio.recordings import TwilioRecordings
from gateway.providers.twilio.webhooks import TwilioWebhooks
from gateway.providers.vonage import caller as vonage_caller
from gateway.providers.vonage import sender as vonage_sender
from gateway.providers.vonage.voice import VonageVoice
from gateway.providers.vonage.webhooks import VonageWebhooks


class SenderFactory(Protocol):
    """Builds a provider's SMS sender from the environment; ValueError names what is missing.
    `timeout` is how long one request may take ([delivery] timeout_seconds)."""

    def __call__(self, env: Mapping[str, str], *, timeout: float) -> SmsSender: ...


class CallerFactory(Protocol):
    """Builds a provider's caller from the environment; ValueError names what is missing."""

    def __call__(self, env: Mapping[str, str]) -> Caller: ...


@dataclass(frozen=True)
class ProviderInfo:
    name: str  # as VENTANILLA_SMS_PROVIDER / VENTANILLA_VOICE_PROVIDER name it
    env_prefixes: tuple[str, ...]  # the variables of the contract its clients read
    sms: bool  # sends SMS
    voice: bool  # places calls
    label: str  # the provider's name as people write it, for messages
    queues_callers: bool  # a caller can wait in a queue for an operator (and be bridged)
    moves_live_calls: bool  # a live call can be moved to another queue (a transfer)
    sms_webhooks: SmsWebhooksFactory | None = None  # receives SMS and delivery statuses
    sender: SenderFactory | None = None  # builds its SMS sender (given when `sms`)
    caller: CallerFactory | None = None  # builds its caller (given when `voice`)
    recordings: RecordingsApi | None = None  # keeps call recordings it can delete
    # where a placed call fetches its instructions; None: the provider takes none per call
    # (Africa's Talking brings an answered call to the number's one voice callback)
    call_paths: CallPaths | None = None
    voice_menu: VoiceMenuFactory | None = None  # runs the shared IVR (gateway.routes.voice_menu)

    def __post_init__(self) -> None:
        # The capability flags and the factories say the same thing; a line that disagrees
        # (sms=True without a sender) would fail only when a message is sent.
        if self.sms != (self.sender is not None) or self.voice != (self.caller is not None):
            raise TypeError(f"{self.name}: sms/voice must match the sender/caller factories")


PROVIDERS: tuple[ProviderInfo, ...] = (
    ProviderInfo(
        "twilio",
        ("TWILIO_",),
        label="Twilio",
        sms=True,
        voice=True,
        queues_callers=True,
        moves_live_calls=True,
        sms_webhooks=TwilioWebhooks,
        call_paths=CallPaths(
            menu="/webhooks/twilio/voice",
            status="/webhooks/twilio/call-status",
            survey="/webhooks/twilio/survey?survey={survey}",
            notice="/webhooks/twilio/notice?call={call}",
        ),
        sender=twilio_sender.sender_from_env,
        caller=twilio_caller.caller_from_env,
        recordings=TwilioRecordings,
    ),
    ProviderInfo(
        "africastalking",
        ("AT_",),
        label="Africa's Talking",
        sms=True,
        voice=True,
        queues_callers=True,
        moves_live_calls=False,
        sms_webhooks=AfricasTalkingWebhooks,
        sender=at_sender.sender_from_env,
        caller=at_caller.caller_from_env,
    ),
    ProviderInfo(
        "outbox",
        (),
        label="outbox",
        sms=True,
        voice=True,
        queues_callers=False,
        moves_live_calls=False,
        sender=outbox_sender.sender_from_env,
        caller=outbox_caller.caller_from_env,
    ),
    ProviderInfo(
        "vonage",
        ("VONAGE_",),
        label="Vonage",
        sms=True,
        voice=True,
        queues_callers=False,
        moves_live_calls=False,
        sms_webhooks=VonageWebhooks,
        voice_menu=VonageVoice,
        call_paths=CallPaths(
            menu=VonageVoice.answer_path,
            status=VonageVoice.event_path,
            survey=None,  # no NCCO renderer for surveys and notices yet
            notice=None,
        ),
        sender=vonage_sender.sender_from_env,
        caller=vonage_caller.caller_from_env,
    ),
)
NAMES: tuple[str, ...] = tuple(p.name for p in PROVIDERS)
SMS_NAMES: tuple[str, ...] = tuple(p.name for p in PROVIDERS if p.sms)
VOICE_NAMES: tuple[str, ...] = tuple(p.name for p in PROVIDERS if p.voice)
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


def build_sender(name: str, env: Mapping[str, str], *, timeout: float = 10.0) -> SmsSender:
    """A new SMS sender of provider `name`, configured from `env` (its variables only)."""
    factory = info(name).sender
    if factory is None:
        raise ValueError(f"{name} does not send SMS; expected one of {', '.join(SMS_NAMES)}")
    return factory(env, timeout=timeout)


def build_caller(name: str, env: Mapping[str, str]) -> Caller:
    """A new caller of provider `name`, configured from `env` (its variables only)."""
    factory = info(name).caller
    if factory is None:
        raise ValueError(f"{name} does not place calls; expected one of {', '.join(VOICE_NAMES)}")
    return factory(env)


# ---------------------------------------------------------------- the one client cache

_Env = tuple[tuple[str, str], ...]
_lock = threading.Lock()
_senders: dict[tuple[str, _Env, float], SmsSender] = {}
_callers: dict[tuple[str, _Env], Caller] = {}


def sender(name: str, *, timeout: float = 10.0, env: Mapping[str, str] | None = None) -> SmsSender:
    """The SMS sender of provider `name` for this process, built from the providers'
    variables of `env` (os.environ by default); a changed variable or timeout builds a new one.
    ValueError when the provider is unknown or a variable it needs is missing."""
    relevant = provider_env(os.environ if env is None else env)
    key = (name, relevant, timeout)
    with _lock:
        found = _senders.get(key)
        if found is None:
            found = _senders[key] = build_sender(name, dict(relevant), timeout=timeout)
    return found


def caller(name: str, *, env: Mapping[str, str] | None = None) -> Caller:
    """The caller of provider `name` for this process, as `sender` builds and caches it."""
    relevant = provider_env(os.environ if env is None else env)
    key = (name, relevant)
    with _lock:
        found = _callers.get(key)
        if found is None:
            found = _callers[key] = build_caller(name, dict(relevant))
    return found


async def aclose_senders() -> None:
    """Close the async connection pools of the cached senders (on the loop that used them)."""
    with _lock:
        senders = list(_senders.values())
    for cached in senders:
        await cached.aclose()


def forget_clients() -> None:
    """Drop every cached client: the next use builds a new one (tests, and before a fork)."""
    with _lock:
        _senders.clear()
        _callers.clear()


def voice_menus(env: Mapping[str, str]) -> dict[str, VoiceMenu]:
    """Every provider's voice menu adapter, built from the environment (one set per process)."""
    return {p.name: p.voice_menu(env) for p in PROVIDERS if p.voice_menu is not None}

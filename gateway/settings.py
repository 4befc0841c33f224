"""Process settings read from the environment (secrets and URLs never live in the TOML)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.providers.registry import NAMES as PROVIDERS


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None
    public_url: str
    sms_provider: str
    voice_provider: str
    twilio_account_sid: str | None
    twilio_auth_token: str | None
    twilio_from_number: str | None
    at_webhook_token: str | None
    env: Mapping[str, str]
    bind_host: str = "127.0.0.1"  # the address `serve` listens on

    @property
    def real_providers(self) -> tuple[str, ...]:
        """The real providers configured for messages or calls the app starts."""
        chosen = (self.sms_provider, self.voice_provider)
        return tuple(dict.fromkeys(p for p in chosen if p != "outbox"))

    def _simulator_flag(self) -> bool | None:
        flag = self.env.get("VENTANILLA_SIMULATOR", "").strip().lower()
        return None if not flag else flag in ("1", "true", "yes", "on")

    @property
    def simulator_enabled(self) -> bool:
        """The simulator writes cases and shows conversations without a provider: on by default
        only when both SMS and voice are `outbox`, never with a real provider. Who may use it
        is decided per request (`gateway.simulators.access`)."""
        if self.real_providers:
            return False
        flag = self._simulator_flag()
        return True if flag is None else flag

    def check(self) -> None:
        """Refuse settings that cannot run safely (`serve` exits with code 2)."""
        if self._simulator_flag() and self.real_providers:
            raise ValueError(
                "VENTANILLA_SIMULATOR is on but a real provider is configured "
                f"({', '.join(self.real_providers)}): the simulator would write cases and show "
                "citizens' conversations without a provider; unset VENTANILLA_SIMULATOR or use "
                "the outbox provider"
            )


def _provider(env: Mapping[str, str], name: str) -> str:
    value = (env.get(name) or "outbox").strip().lower()
    if value not in PROVIDERS:
        raise ValueError(f"{name} must be one of {', '.join(PROVIDERS)}, not {value!r}")
    return value


def load_settings(
    env: Mapping[str, str] | None = None, *, host: str = "127.0.0.1", port: int = 8000
) -> Settings:
    """Settings from the environment; the public URL defaults to the serve address."""
    from casestore.db import database_url

    env = dict(os.environ if env is None else env)
    return Settings(
        database_url=database_url(env),
        redis_url=env.get("VENTANILLA_REDIS_URL") or None,
        public_url=(env.get("VENTANILLA_PUBLIC_URL") or f"http://{host}:{port}").rstrip("/"),
        sms_provider=_provider(env, "VENTANILLA_SMS_PROVIDER"),
        voice_provider=_provider(env, "VENTANILLA_VOICE_PROVIDER"),
        twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or None,
        twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
        twilio_from_number=env.get("TWILIO_FROM_NUMBER") or None,
        at_webhook_token=env.get("VENTANILLA_AT_WEBHOOK_TOKEN") or None,
        env=env,
        bind_host=host,
    )


DEFAULT_VAR_DIR = "./var"


def var_dir(raw_config: Mapping[str, Any]) -> Path:
    """`[storage] var_dir` (default ./var): the local directory for the gateway's own files
    (the outage spool, dead letters the database refused too)."""
    storage = raw_config.get("storage", {})
    return Path(str(storage.get("var_dir") or DEFAULT_VAR_DIR))

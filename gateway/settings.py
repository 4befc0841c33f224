"""Process settings read from the environment (secrets and URLs never live in the TOML)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

PROVIDERS = ("twilio", "africastalking", "outbox")


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

    @property
    def simulator_enabled(self) -> bool:
        """The simulator writes cases without a provider: on by default only in outbox mode."""
        flag = self.env.get("VENTANILLA_SIMULATOR", "")
        if flag:
            return flag.lower() in ("1", "true", "yes", "on")
        return self.sms_provider == "outbox"


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
    )

"""Reading a provider's variables of the contract (TWILIO_*, AT_*, …) from an environment."""

from __future__ import annotations

from collections.abc import Mapping


def required_env(env: Mapping[str, str], variable: str, purpose: str) -> str:
    """A provider variable that must be set; the error names it and what it is needed for."""
    value = env.get(variable, "").strip()
    if not value:
        raise ValueError(f"{variable} must be set to {purpose} through this provider")
    return value


def optional_env(env: Mapping[str, str], variable: str) -> str | None:
    """A provider variable that may be unset or blank (None then)."""
    return env.get(variable, "").strip() or None

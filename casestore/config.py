"""Deployment configuration: one TOML file, overridable by `VENTANILLA__SECTION__KEY` variables."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SHIPPED_CONFIG = (
    Path(__file__).resolve().parent.parent / "config" / "ministerio-desarrollo-social.toml"
)

REQUIRED_TEMPLATES = (
    "receipt",
    "joined",
    "urgent",
    "status",
    "status_unknown",
    "status_mistyped",
    "status_usage",
    "status_limited",
    "stop",
    "start",
    "help",
)


class ConfigError(ValueError):
    """The deployment configuration is missing a key or has a wrong value."""


@dataclass(frozen=True)
class Department:
    code: str
    name: Mapping[str, str]

    def label(self, language: str) -> str:
        return self.name.get(language) or next(iter(self.name.values()), self.code)


@dataclass(frozen=True)
class Category:
    code: str
    department: str
    name: Mapping[str, str]
    keywords: Mapping[str, tuple[str, ...]]
    urgent: bool = False

    def label(self, language: str) -> str:
        return self.name.get(language) or next(iter(self.name.values()), self.code)


@dataclass(frozen=True)
class Limits:
    """`[limits]`: abuse limits per phone number (0 turns one off); urgent messages are exempt."""

    sms_per_minute: int = 10
    new_cases_per_day: int = 5
    ussd_sessions_per_hour: int = 10

    def describe(self, name: str) -> str:
        """The timeline text of a `limit_hit` event for the limit called `name`."""
        return _LIMIT_TEXTS[name].format(n=getattr(self, name))


@dataclass(frozen=True)
class LoginLimits:
    """`[login]`: console log-in failures allowed per (client address, user name) and per
    client address within `lock_minutes`; over either, that address waits (others do not)."""

    failures_per_user_address: int = 5
    failures_per_address: int = 20
    lock_minutes: int = 15
    # The shortest password `casestore.operators.password_problem` accepts.
    password_min_length: int = 10


# A password policy under 8 characters is no policy; over 128 nobody could type it.
_LOGIN_BOUNDS = {"password_min_length": (8, 128)}

_LIMIT_TEXTS = {
    "sms_per_minute": "over {n} SMS per minute from this number: kept, no automatic reply",
    "new_cases_per_day": "over {n} new cases per day from this number: joined to this case",
    "ussd_sessions_per_hour": "over {n} USSD sessions per hour from this number: told to retry",
}


@dataclass(frozen=True)
class Config:
    """The parsed deployment file; `raw` keeps every key for the parts read elsewhere."""

    raw: Mapping[str, Any]
    timezone: ZoneInfo
    default_language: str
    languages: tuple[str, ...]
    country: str
    tracking_length: int
    departments: Mapping[str, Department]
    categories: Mapping[str, Category]
    templates: Mapping[str, Mapping[str, str]]
    status_names: Mapping[str, Mapping[str, str]]
    sms_keywords: Mapping[str, Mapping[str, tuple[str, ...]]]
    conversation_window_minutes: int
    auto_replies_per_hour: int
    status_lookups_per_hour: int
    triage_category: str
    signature: str
    emergency_lines: Mapping[str, str]
    survey: Mapping[str, Any] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    login: LoginLimits = field(default_factory=LoginLimits)

    def template(self, name: str, language: str) -> str:
        lang = language if language in self.templates else self.default_language
        return self.templates[lang][name]

    def status_name(self, status: str, language: str) -> str:
        names = self.status_names.get(language) or self.status_names[self.default_language]
        return names.get(status, status)

    def language_or_default(self, language: str | None) -> str:
        return language if language in self.languages else self.default_language


def _parse_literal(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Apply `VENTANILLA__SECTION__KEY=value` (TOML literal if it parses, else a string)."""
    for name, value in env.items():
        if not name.startswith("VENTANILLA__"):
            continue
        path = [p.lower() for p in name[len("VENTANILLA__") :].split("__") if p]
        if not path:
            continue
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: [{part}] is not a section")
            node = child
        node[path[-1]] = _parse_literal(value)
    return data


def _require(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"missing config key: {dotted}")
        node = node[part]
    return node


def _int(data: Mapping[str, Any], dotted: str, low: int, high: int) -> int:
    value = _require(data, dotted)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{dotted} must be a whole number from {low} to {high}")
    return value


def parse_config(data: dict[str, Any]) -> Config:
    """Validate a TOML document and build the Config; raises ConfigError naming the key."""
    try:
        tz = ZoneInfo(str(_require(data, "timezone")))
    except ZoneInfoNotFoundError as exc:
        raise ConfigError(f"unknown timezone: {data.get('timezone')}") from exc
    languages = tuple(data.get("languages") or [data.get("default_language", "es")])
    default_language = str(_require(data, "default_language"))
    if default_language not in languages:
        raise ConfigError("default_language must be one of languages")
    departments = {
        str(d["code"]): Department(code=str(d["code"]), name=dict(d.get("name", {})))
        for d in data.get("departments", [])
    }
    if not departments:
        raise ConfigError("at least one [[departments]] entry is needed")
    categories: dict[str, Category] = {}
    for c in data.get("categories", []):
        code = str(c["code"])
        if c.get("department") not in departments:
            raise ConfigError(f"category {code}: unknown department {c.get('department')!r}")
        keywords = {str(k): tuple(str(w) for w in v) for k, v in c.get("keywords", {}).items()}
        categories[code] = Category(
            code=code,
            department=str(c["department"]),
            name=dict(c.get("name", {})),
            keywords=keywords,
            urgent=bool(c.get("urgent", False)),
        )
    triage = str(_require(data, "sms.triage_category"))
    if triage not in categories:
        raise ConfigError(f"sms.triage_category {triage!r} is not a configured category")
    templates = {str(lang): dict(t) for lang, t in _require(data, "templates").items()}
    for lang in languages:
        missing = [t for t in REQUIRED_TEMPLATES if t not in templates.get(lang, {})]
        if missing:
            raise ConfigError(f"templates.{lang} is missing {', '.join(missing)}")
    quiet = _require(data, "survey.quiet_hours")
    if not isinstance(quiet, str):
        raise ConfigError('survey.quiet_hours must be a string like "21:00-09:00" or ""')
    _int(data, "survey.delay_minutes", 0, 60 * 24 * 30)
    _int(data, "survey.expiry_hours", 1, 24 * 90)
    for key, high in (("comment_max_chars", 1000), ("early_answer_hours", 24 * 30)):
        if key in data["survey"]:
            _int(data, f"survey.{key}", 0, high)
    hours = _require(data, "operators.hours")
    if not isinstance(hours, str | dict):
        raise ConfigError('operators.hours must be "always" or a schedule table')
    tracking_length = int(data.get("tracking", {}).get("length", 10))
    if not 9 <= tracking_length <= 12:
        raise ConfigError("tracking.length must be from 9 to 12")
    sms_keywords: dict[str, dict[str, tuple[str, ...]]] = {
        str(cmd): {str(lang): tuple(str(w) for w in words) for lang, words in by_lang.items()}
        for cmd, by_lang in _require(data, "sms.keywords").items()
    }
    limits = Limits(
        **{
            key: _int(data, f"limits.{key}", 0, 100_000)
            for key in Limits.__dataclass_fields__
            if key in data.get("limits", {})
        }
    )
    login = LoginLimits(
        **{
            key: _int(data, f"login.{key}", *_LOGIN_BOUNDS.get(key, (1, 100_000)))
            for key in LoginLimits.__dataclass_fields__
            if key in data.get("login", {})
        }
    )
    return Config(
        raw=data,
        timezone=tz,
        default_language=default_language,
        languages=languages,
        country=str(data.get("country", "AR")),
        tracking_length=tracking_length,
        departments=departments,
        categories=categories,
        templates=templates,
        status_names={str(k): dict(v) for k, v in data.get("status_names", {}).items()},
        sms_keywords=sms_keywords,
        conversation_window_minutes=_int(data, "sms.conversation_window_minutes", 0, 60 * 24 * 30),
        auto_replies_per_hour=int(data["sms"].get("auto_replies_per_hour", 6)),
        status_lookups_per_hour=int(data["sms"].get("status_lookups_per_hour", 10)),
        triage_category=triage,
        signature=str(data.get("deployment", {}).get("sms_signature", "")),
        emergency_lines=dict(data.get("emergency", {}).get("lines", {})),
        survey=dict(data["survey"]),
        limits=limits,
        login=login,
    )


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the deployment TOML (default: the shipped example) and apply env overrides."""
    import os

    env = os.environ if env is None else env
    chosen = Path(path or env.get("VENTANILLA_CONFIG") or SHIPPED_CONFIG)
    try:
        data = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {chosen}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{chosen}: {exc}") from exc
    return parse_config(apply_env_overrides(data, env))

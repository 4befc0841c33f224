"""The IVR/USSD menu as read from the deployment TOML: one tree, prompts per language."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from casestore.config import Config, ConfigError
from ivr.hours import HoursError, parse_schedule

NODE_TYPES = frozenset(
    {"menu", "category", "describe", "confirm", "tracking", "operator", "language"}
)
REQUIRED_PROMPTS = (
    "welcome",
    "main",
    "category",
    "describe_ussd",
    "describe_voice",
    "confirm",
    "confirm_yes",
    "confirm_no",
    "created_ussd",
    "created_voice",
    "repeat",
    "urgent_ussd",
    "urgent_voice",
    "tracking",
    "latest",
    "latest_yes",
    "latest_no",
    "mistyped",
    "unknown",
    "status",
    "invalid",
    "goodbye",
    "cancelled",
    "callback_done",
    "closed_hours",
    "queue_wait",
    "queue_timeout",
    "resume",
    "resume_yes",
    "resume_no",
    "more",
    "back",
)


@dataclass(frozen=True)
class MenuOption:
    key: str
    next: str
    label: Mapping[str, str]
    ussd_label: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    next: str | None = None
    options: tuple[MenuOption, ...] = ()


@dataclass(frozen=True)
class CategoryChoice:
    code: str
    label: Mapping[str, str]
    department: str
    urgent: bool


@dataclass(frozen=True)
class Menu:
    """Everything the state machine reads; pure data."""

    config: Config
    nodes: Mapping[str, Node]
    prompts: Mapping[str, Mapping[str, str]]
    categories: tuple[CategoryChoice, ...]
    max_attempts: int
    page_size: int
    description_max_chars: int
    operator_department: str
    resume_minutes: int

    def prompt(self, name: str, language: str, **values: str) -> str:
        texts = self.prompts.get(language) or self.prompts[self.config.default_language]
        return texts[name].format(**values) if values else texts[name]


def load_menu(config: Config) -> Menu:
    """Build and check the menu: every `next` exists, every language has every prompt."""
    raw: Mapping[str, Any] = config.raw.get("ivr", {})
    nodes: dict[str, Node] = {}
    for entry in raw.get("nodes", []):
        kind = str(entry.get("type", ""))
        if kind not in NODE_TYPES:
            raise ConfigError(f"ivr node {entry.get('id')!r}: unknown type {kind!r}")
        options = tuple(
            MenuOption(
                key=str(o["key"]),
                next=str(o["next"]),
                label=dict(o["label"]),
                ussd_label=dict(o["ussd_label"]) if "ussd_label" in o else None,
            )
            for o in entry.get("options", [])
        )
        node = Node(id=str(entry["id"]), type=kind, next=entry.get("next"), options=options)
        nodes[node.id] = node
    if "main" not in nodes:
        raise ConfigError('ivr.nodes needs a node with id = "main"')
    for node in nodes.values():
        targets = [o.next for o in node.options] + ([node.next] if node.next else [])
        for target in targets:
            if target not in nodes:
                raise ConfigError(f"ivr node {node.id!r} leads to unknown node {target!r}")
        if node.type == "menu" and not node.options:
            raise ConfigError(f"ivr node {node.id!r}: a menu needs options")
        if node.type in ("category", "describe") and not node.next:
            raise ConfigError(f"ivr node {node.id!r}: a {node.type} node needs next")
        reserved = {o.key for o in node.options} & {"0", "00", "98"}
        if reserved:
            raise ConfigError(f"ivr node {node.id!r}: keys {sorted(reserved)} are reserved")
    prompts = {str(lang): dict(texts) for lang, texts in raw.get("prompts", {}).items()}
    for language in config.languages:
        missing = [p for p in REQUIRED_PROMPTS if p not in prompts.get(language, {})]
        if missing:
            raise ConfigError(f"ivr.prompts.{language} is missing {', '.join(missing)}")
    ordered = sorted(config.categories.values(), key=lambda c: not c.urgent)
    categories = tuple(
        CategoryChoice(code=c.code, label=dict(c.name), department=c.department, urgent=c.urgent)
        for c in ordered
    )
    # Default: the department of the triage category (a category code is not a department).
    triage = config.categories[config.triage_category].department
    department = str(raw.get("operator_department", triage))
    if department not in config.departments:
        raise ConfigError(f"ivr.operator_department {department!r} is not a department")
    try:  # checked here so a typo stops the start-up, not every call
        parse_schedule(config.raw.get("operators", {}).get("hours", "always"))
    except HoursError as exc:
        raise ConfigError(f"operators.hours: {exc}") from exc
    return Menu(
        config=config,
        nodes=nodes,
        prompts=prompts,
        categories=categories,
        max_attempts=int(raw.get("max_attempts", 3)),
        page_size=int(raw.get("ussd_page_size", 4)),
        description_max_chars=int(raw.get("description_max_chars", 140)),
        operator_department=department,
        resume_minutes=int(raw.get("resume_minutes", 15)),
    )

"""SMS conversation rules as pure functions: what to do with a text and what to answer."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from casestore.config import Config
from casestore.states import is_open
from casestore.tracking import ParsedTracking, format_tracking, parse_tracking
from sms.keywords import fold, match_keyword
from sms.segments import to_gsm7


class Action(enum.StrEnum):
    NEW_CASE = "new_case"
    JOIN_CASE = "join_case"
    STATUS = "status"
    STOP = "stop"
    START = "start"
    HELP = "help"
    RECORD_ONLY = "record_only"


@dataclass(frozen=True)
class Plan:
    """What the text itself asks for, before looking at the citizen's history."""

    command: str | None
    language: str | None
    category: str
    urgent: bool
    tracking: ParsedTracking | None = None


@dataclass(frozen=True)
class OpenCase:
    case_id: int
    tracking_number: str
    status: str


@dataclass(frozen=True)
class ContactState:
    language: str | None
    opted_out: bool
    conversation_case: OpenCase | None
    conversation_at: datetime | None
    replies_this_hour: int
    lookups_this_hour: int
    # Abuse limits: inbound SMS in this minute (this one included), cases opened today.
    inbound_this_minute: int = 0
    cases_today: int = 0


@dataclass(frozen=True)
class CaseSummary:
    """What a status answer may reveal: no personal data, whoever asks."""

    tracking_number: str
    status: str
    department: str


@dataclass(frozen=True)
class Decision:
    action: Action
    language: str
    reply_template: str | None
    category: str | None = None
    urgent: bool = False
    limit: str | None = None  # the abuse limit ([limits] key) this message went over


SMS_PER_MINUTE = "sms_per_minute"
NEW_CASES_PER_DAY = "new_cases_per_day"
USSD_SESSIONS_PER_HOUR = "ussd_sessions_per_hour"


def classify_sms(text: str, config: Config) -> Plan:
    """Read the text alone: a whole-message keyword, or a request with its category."""
    match = match_keyword(text, config.sms_keywords)
    if match is not None:
        tracking = None
        if match.command == "status" and match.argument:
            tracking = parse_tracking(match.argument)
        return Plan(
            command=match.command,
            language=match.language,
            category=config.triage_category,
            urgent=False,
            tracking=tracking,
        )
    urgent_hit: tuple[str, str] | None = None
    normal_hit: tuple[str, str] | None = None
    folded = fold(text)
    for code, language, urgent, pattern in _category_patterns(config):
        if (urgent and urgent_hit) or (not urgent and normal_hit) or not pattern.search(folded):
            continue
        if urgent:
            urgent_hit = (code, language)
        else:
            normal_hit = (code, language)
    hit = urgent_hit or normal_hit
    if hit is None:
        return Plan(command=None, language=None, category=config.triage_category, urgent=False)
    return Plan(command=None, language=hit[1], category=hit[0], urgent=urgent_hit is not None)


_PATTERNS: dict[int, tuple[Config, list[tuple[str, str, bool, re.Pattern[str]]]]] = {}


def _category_patterns(config: Config) -> list[tuple[str, str, bool, re.Pattern[str]]]:
    """One compiled whole-word pattern per category and language, built once per config."""
    cached = _PATTERNS.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    patterns = []
    for category in config.categories.values():
        for language, phrases in category.keywords.items():
            words = sorted({fold(p) for p in phrases} - {""}, key=len, reverse=True)
            if words:
                alternation = "|".join(re.escape(w) for w in words)
                pattern = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)")
                patterns.append((category.code, language, category.urgent, pattern))
    _PATTERNS[id(config)] = (config, patterns)
    return patterns


def in_window(started: datetime | None, now: datetime, minutes: int) -> bool:
    return started is not None and now - started < timedelta(minutes=minutes)


def decide(plan: Plan, state: ContactState, now: datetime, config: Config) -> Decision:
    """Combine the plan with the citizen's state (open conversation, caps) into one action."""
    limits = config.limits
    if not plan.urgent and 0 < limits.sms_per_minute < state.inbound_this_minute:
        return _over_sms_limit(plan, state, config)
    if plan.command is not None:
        language = config.language_or_default(plan.language)
        if plan.command == "status":
            if state.lookups_this_hour >= config.status_lookups_per_hour:
                return Decision(Action.STATUS, language, "status_limited")
            if plan.tracking is None:
                return Decision(Action.STATUS, language, "status_usage")
            if plan.tracking.status == "mistyped":
                return Decision(Action.STATUS, language, "status_mistyped")
            if plan.tracking.status != "ok":
                return Decision(Action.STATUS, language, "status_usage")
            return Decision(Action.STATUS, language, "status")
        command = Action(plan.command)
        return Decision(command, language, plan.command)
    language = config.language_or_default(state.language or plan.language)
    open_case = state.conversation_case
    if (
        open_case is not None
        and is_open(open_case.status)
        and in_window(state.conversation_at, now, config.conversation_window_minutes)
        and not plan.urgent
    ):
        return Decision(Action.JOIN_CASE, language, "joined")
    if (
        not plan.urgent
        and 0 < limits.new_cases_per_day <= state.cases_today
        and open_case is not None
        and is_open(open_case.status)
    ):
        # Too many new cases today: the request joins the open case the phone last wrote on.
        template = "limit_cases" if "limit_cases" in config.templates.get(language, {}) else None
        return Decision(Action.JOIN_CASE, language, template or "joined", limit=NEW_CASES_PER_DAY)
    template = "urgent" if plan.urgent else "receipt"
    return Decision(Action.NEW_CASE, language, template, plan.category, plan.urgent)


def _over_sms_limit(plan: Plan, state: ContactState, config: Config) -> Decision:
    """Over the SMS-per-minute limit: kept on the case the phone writes on (or unlinked),
    never answered, never a new case; BAJA/ALTA still take effect, silently."""
    language = config.language_or_default(plan.language or state.language)
    if plan.command in (Action.STOP.value, Action.START.value):
        return Decision(Action(plan.command), language, None, limit=SMS_PER_MINUTE)
    if plan.command is None and state.conversation_case is not None:
        return Decision(Action.JOIN_CASE, language, None, limit=SMS_PER_MINUTE)
    return Decision(Action.RECORD_ONLY, language, None, limit=SMS_PER_MINUTE)


def may_reply(decision: Decision, state: ContactState, config: Config) -> bool:
    """Automatic replies are capped per number and hour; urgent answers always go."""
    if decision.reply_template is None:
        return False
    if decision.urgent or decision.action in (Action.STOP, Action.START):
        return True
    return state.replies_this_hour < config.auto_replies_per_hour


def render_reply(
    config: Config,
    template: str,
    language: str,
    *,
    tracking: str | None = None,
    case: CaseSummary | None = None,
) -> str:
    """Fill a template and keep it in GSM-7 (names with accents are transliterated)."""
    status = department = ""
    if case is not None:
        tracking = case.tracking_number
        status = config.status_name(case.status, language)
        dept = config.departments.get(case.department)
        department = dept.label(language) if dept else case.department
    text = config.template(template, language).format(
        signature=config.signature,
        tracking=format_tracking(tracking) if tracking else "",
        status=status,
        department=department,
        emergency=config.emergency_lines.get(language, ""),
    )
    return to_gsm7(text)

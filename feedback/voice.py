"""Voice surveys: the rating question asked by an outbound call and answered on the keypad.

A voice survey is a Survey row (channel "voice") and its `outbound_calls` rows of kind
"survey": the first call and one retry. The worker places the calls; the provider routes
(gateway.routes.voice_survey) turn each request into `begin_call` / `answer_call` and render the
VoiceScreen they return. `follow_up` (housekeeping) reads how each call ended and retries,
falls back to SMS or gives up, and moves SMS surveys left unanswered to a call: all from the
rows, so it can run any number of times and a lost Redis loses nothing.

A call's position (step, keys pressed before) travels in the URLs the provider calls back, and
a rating is kept only while the survey still waits for one: a redelivered step changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session

from casestore import calls
from casestore.calls import CallStatus
from casestore.config import Config
from casestore.models import Case, CaseEvent, Contact, OutboundCall, Survey, SurveyStatus
from feedback.rules import AfterCall, KeypadMove, after_unrated_call, next_allowed, read_keypad
from feedback.surveys import ask_by_sms, ask_by_voice, rate_by_voice, voice_calls_enabled

CALLS_PER_SURVEY = 2  # the first call and one retry
ENDED = tuple(
    s.value
    for s in (CallStatus.COMPLETED, CallStatus.UNANSWERED, CallStatus.FAILED, CallStatus.CANCELLED)
)
NOT_DIALLED = (CallStatus.PENDING.value, CallStatus.QUEUED.value)

# Spoken texts; `[survey.voice.<lang>]` in the deployment file overrides each.
PROMPT_DEFAULTS: Mapping[str, Mapping[str, str]] = {
    "es": {
        "question": (
            "Hola, le llamamos por su pedido de {category}, que fue cerrado. Como lo atendimos? "
            "Marque un numero del 1, muy mal, al 5, muy bien."
        ),
        "repeat": "No entendimos. Marque un solo numero del 1, muy mal, al 5, muy bien.",
        "thanks": "Gracias por su respuesta. Nos ayuda a mejorar. Hasta luego.",
        "low": (
            "Gracias. Lamentamos que no haya sido una buena experiencia. "
            "Un supervisor revisara su pedido. Hasta luego."
        ),
        "already": "Ya recibimos su respuesta. Gracias. Hasta luego.",
        "sorry": "Disculpe, tuvimos un problema. Gracias por atendernos. Hasta luego.",
    },
    "en": {
        "question": (
            "Hello, we are calling about your request about {category}, which was closed. "
            "How did we do? Press a number from 1, very bad, to 5, very good."
        ),
        "repeat": "We did not understand. Press one number from 1, very bad, to 5, very good.",
        "thanks": "Thank you for your answer. It helps us improve. Goodbye.",
        "low": (
            "Thank you. We are sorry it was not a good experience. "
            "A supervisor will review your request. Goodbye."
        ),
        "already": "We already have your answer. Thank you. Goodbye.",
        "sorry": "Sorry, something went wrong on our side. Thank you for answering. Goodbye.",
    },
}


def prompt(config: Config, language: str, name: str, **values: str) -> str:
    """A spoken text: `[survey.voice.<lang>] <name>`, else the built-in default."""
    table = config.survey.get("voice", {})
    override = table.get(language, {}).get(name) if isinstance(table, Mapping) else None
    default = (PROMPT_DEFAULTS.get(language) or PROMPT_DEFAULTS["en"])[name]
    return str(override or default).format(**values)


# ---------------------------------------------------------------- the call


@dataclass(frozen=True)
class VoiceScreen:
    """What the citizen hears next: `text`, then one key (`gather`) or the end of the call."""

    text: str  # "" hangs up without a word
    language: str
    gather: bool = False
    next_step: int = 0  # the step the key press is posted to
    keyed: bool = False  # keys were pressed on an earlier step of this call


def _waiting(survey: Survey) -> bool:
    return survey.status == SurveyStatus.ASKED.value and survey.channel == "voice"


def _closing(config: Config, survey: Survey, first: bool) -> VoiceScreen:
    """The last words for a survey that waits for nothing more (a late or repeated request)."""
    lang = survey.language
    if survey.rating is not None:
        name = "already" if first else ("low" if survey.low_score else "thanks")
        return VoiceScreen(prompt(config, lang, name), lang)
    if survey.status == SurveyStatus.DONE.value:
        return VoiceScreen(prompt(config, lang, "thanks"), lang)
    return VoiceScreen("", lang)  # skipped or expired meanwhile: nothing to ask


def survey_of_call(session: Session, provider: str, provider_ref: str) -> int | None:
    """The survey a placed call asks; None when the call is not a survey call of ours."""
    call = calls.find_placed(session, provider, provider_ref)
    if call is None or call.kind != calls.SURVEY:
        return None
    return call.survey_id


def begin_call(
    session: Session,
    config: Config,
    survey_id: int,
    provider: str,
    provider_ref: str,
    now: datetime,
) -> VoiceScreen | None:
    """The citizen picked up: the question. None if the call and the survey do not match."""
    survey = session.get(Survey, survey_id)
    if survey is None:
        return None
    call = calls.find_placed(session, provider, provider_ref)
    # Not found: Twilio can fetch the first step before the worker has stored the CallSid.
    if call is not None:
        if call.survey_id != survey_id:
            return None
        calls.mark_answered(session, provider, provider_ref, now)
    if not _waiting(survey):
        return _closing(config, survey, first=True)
    case = session.get(Case, survey.case_id)
    assert case is not None
    category = config.categories.get(case.category)
    label = category.label(survey.language) if category else case.category
    text = prompt(config, survey.language, "question", category=label)
    return VoiceScreen(text, survey.language, gather=True, next_step=1)


def answer_call(
    session: Session,
    config: Config,
    survey_id: int,
    step: int,
    keys: str | None,
    keyed: bool,
    now: datetime,
) -> VoiceScreen | None:
    """Key(s) pressed (or none) after the question of step `step - 1`; None: no such survey."""
    survey = session.get(Survey, survey_id)
    if survey is None:
        return None
    if not _waiting(survey):
        return _closing(config, survey, first=False)
    answer = read_keypad(keys, step, keyed)
    lang = survey.language
    if answer.move is KeypadMove.RATE:
        assert answer.rating is not None
        rate_by_voice(session.connection(), config, survey_id, answer.rating, keys or "", now)
        session.refresh(survey)
        return _closing(config, survey, first=False)
    if answer.move is KeypadMove.REPEAT:
        text = prompt(config, lang, "repeat")
        return VoiceScreen(text, lang, gather=True, next_step=step + 1, keyed=keyed or bool(keys))
    if answer.move is KeypadMove.UNCLEAR:
        session.execute(
            update(Survey)
            .where(
                Survey.id == survey_id,
                Survey.status == SurveyStatus.ASKED.value,
                Survey.channel == "voice",
            )
            .values(
                status=SurveyStatus.DONE.value, reason="unclear", answered_at=now, updated_at=now
            )
            .execution_options(synchronize_session=False)
        )
    # UNCLEAR or SILENT: thanks. After silence the survey still waits: follow_up may ask by SMS.
    return VoiceScreen(prompt(config, lang, "thanks"), lang)


# ---------------------------------------------------------------- after the call (housekeeping)


@dataclass(frozen=True)
class FollowUpCounts:
    retried: int = 0  # a second call written
    to_sms: int = 0  # voice gave no rating: asked by SMS
    to_voice: int = 0  # SMS gave no answer: a call written
    expired: int = 0
    skipped: int = 0  # opted out meanwhile


_Query = TypeVar("_Query", bound=Select[Any])


def _locked(session: Session, query: _Query) -> _Query:
    """Two workers never follow up the same survey at once (SQLite writes one at a time)."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=Survey)
    return query


def _opted_out(contact: Contact | None) -> bool:
    return contact is None or bool(contact.opted_out_at or contact.provider_opted_out_at)


def _cancel_open_calls(session: Session, survey_id: int, reason: str, now: datetime) -> None:
    session.execute(
        update(OutboundCall)
        .where(OutboundCall.survey_id == survey_id, OutboundCall.status.in_(NOT_DIALLED))
        .values(status=CallStatus.CANCELLED.value, error=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def _fallback_event(session: Session, survey: Survey, to: str, now: datetime) -> None:
    session.add(
        CaseEvent(
            case_id=survey.case_id,
            kind="survey_fallback",
            at=now,
            actor="system",
            data={"from": survey.channel, "to": to},
        )
    )


def follow_up(
    session: Session,
    config: Config,
    sms_provider: str,
    voice_provider: str,
    now: datetime,
    limit: int = 1000,
) -> FollowUpCounts:
    """Retries, fallbacks both ways and expiry of surveys asked by voice (or left unanswered
    by SMS), derived from the survey and call rows alone."""
    survey_cfg = config.survey
    quiet_hours = str(survey_cfg["quiet_hours"])
    quiet = next_allowed(now, quiet_hours, config.timezone) > now
    retry = timedelta(minutes=int(survey_cfg.get("voice_retry_minutes", 120)))
    to_sms_enabled = bool(survey_cfg.get("voice_to_sms_fallback", True))
    retried = to_sms = to_voice = expired = skipped = 0

    # Past its expiry a voice survey ends, whatever its calls are doing.
    for survey in session.scalars(
        _locked(
            session,
            select(Survey)
            .where(
                Survey.status == SurveyStatus.ASKED.value,
                Survey.channel == "voice",
                Survey.expires_at <= now,
            )
            .order_by(Survey.id)
            .limit(limit),
        )
    ):
        survey.status, survey.reason, survey.updated_at = (
            SurveyStatus.EXPIRED.value,
            "no_answer",
            now,
        )
        _cancel_open_calls(session, survey.id, "survey expired", now)
        expired += 1
    session.flush()

    # Voice surveys whose latest call ended without a rating.
    waiting = select(Survey.id).where(
        Survey.status == SurveyStatus.ASKED.value, Survey.channel == "voice"
    )
    latest = (
        select(
            OutboundCall.survey_id.label("survey_id"),
            func.max(OutboundCall.id).label("last_id"),
            func.count(OutboundCall.id).label("made"),
        )
        .where(OutboundCall.survey_id.in_(waiting))
        .group_by(OutboundCall.survey_id)
        .subquery()
    )
    query = (
        select(Survey, OutboundCall, latest.c.made)
        .join(latest, latest.c.survey_id == Survey.id)
        .join(OutboundCall, OutboundCall.id == latest.c.last_id)
        .where(
            Survey.status == SurveyStatus.ASKED.value,
            Survey.channel == "voice",
            OutboundCall.status.in_(ENDED),
        )
        .order_by(Survey.id)
        .limit(limit)
    )
    for survey, call, made in session.execute(_locked(session, query)).all():
        contact = session.get(Contact, survey.contact_id) if survey.contact_id else None
        if _opted_out(contact):
            survey.status, survey.reason, survey.updated_at = (
                SurveyStatus.SKIPPED.value,
                "opted_out",
                now,
            )
            _cancel_open_calls(session, survey.id, "citizen opted out", now)
            skipped += 1
            continue
        assert contact is not None
        decision = after_unrated_call(
            picked_up=call.status == CallStatus.COMPLETED.value,
            refused=call.provider_ref is None,  # the provider refused it for good: no retry
            calls_made=int(made),
            calls_allowed=CALLS_PER_SURVEY,
            fallback_from=survey.fallback_from,
            sms_fallback=to_sms_enabled,
        )
        if decision is AfterCall.RETRY:
            due = next_allowed(now + retry, quiet_hours, config.timezone)
            ask_by_voice(session, config, survey, contact, voice_provider, now, due=due)
            retried += 1
        elif decision is AfterCall.SMS:
            if quiet:
                continue  # the next run after the quiet hours sends it
            _fallback_event(session, survey, "sms", now)
            survey.fallback_from, survey.channel = "voice", "sms"
            ask_by_sms(session, config, survey, contact, sms_provider, now)
            to_sms += 1
        elif decision is AfterCall.SMS_OPEN:
            # Asked by SMS first: that question still takes an answer until it expires.
            survey.channel, survey.updated_at = "sms", now
        else:
            survey.status, survey.reason, survey.updated_at = (
                SurveyStatus.EXPIRED.value,
                "no_answer",
                now,
            )
            expired += 1
    session.flush()

    # SMS surveys unanswered for `sms_to_voice_after_hours`: a call, once.
    after = int(survey_cfg.get("sms_to_voice_after_hours", 0) or 0)
    if after > 0 and not quiet and voice_calls_enabled(config):
        unanswered = (
            select(Survey)
            .join(Contact, Contact.id == Survey.contact_id)
            .where(
                Survey.status == SurveyStatus.ASKED.value,
                Survey.channel == "sms",
                Survey.fallback_from.is_(None),
                Survey.asked_at <= now - timedelta(hours=after),
                or_(Survey.expires_at.is_(None), Survey.expires_at > now),
                Contact.opted_out_at.is_(None),
                Contact.provider_opted_out_at.is_(None),
            )
            .order_by(Survey.asked_at, Survey.id)
            .limit(limit)
        )
        for survey in session.scalars(_locked(session, unanswered)).all():
            contact = session.get(Contact, survey.contact_id)
            assert contact is not None
            _fallback_event(session, survey, "voice", now)
            survey.fallback_from = "sms"
            ask_by_voice(session, config, survey, contact, voice_provider, now)
            to_voice += 1
    session.flush()
    return FollowUpCounts(retried, to_sms, to_voice, expired, skipped)

"""Satisfaction surveys: scheduled when a case closes, sent when due, answered by one digit.

The database is the truth: a survey row is written in the transaction that closes the case;
the worker derives what is due from the rows, so a lost Redis loses no survey. Each question is
an outbox row, so it is sent once like any other message. A citizen who came by voice (or
prefers it) is asked by an outbound call instead: an `outbound_calls` row of kind "survey",
placed once by the worker; feedback.voice runs the call and what follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, func, select, update
from sqlalchemy.orm import Session

from casestore import calls
from casestore.config import Config
from casestore.hooks import SurveyReply
from casestore.models import (
    Case,
    CaseEvent,
    Contact,
    Interaction,
    OutboundCall,
    OutboundMessage,
    Survey,
    SurveyStatus,
)
from casestore.outgoing import OnTimeline, OutgoingSms, queue_sms
from casestore.reach import can_text, dial_address
from casestore.states import CallStatus, CaseStatus, is_open
from feedback.rules import (
    Rating,
    ReplyMove,
    SurveyReading,
    due_time,
    is_low,
    next_allowed,
    read_survey_reply,
)
from sms.conversation import Plan, render_reply

surveys_t = cast(Table, Survey.__table__)
contacts_t = cast(Table, Contact.__table__)
cases_t = cast(Table, Case.__table__)
events_t = cast(Table, CaseEvent.__table__)
interactions_t = cast(Table, Interaction.__table__)
outbox_t = cast(Table, OutboundMessage.__table__)
calls_t = cast(Table, OutboundCall.__table__)

PENDING = (SurveyStatus.ASKED.value, SurveyStatus.RATED.value)
RETRY_BUSY = timedelta(minutes=30)
SURVEY_CALL = calls.SURVEY
CALL_NOT_DIALLED = (calls.CallStatus.PENDING.value, calls.CallStatus.QUEUED.value)
CALL_CANCELLED = calls.CallStatus.CANCELLED.value


def _setting(config: Config, key: str, default: Any) -> Any:
    return config.survey.get(key, default)


def schedule_survey(session: Session, case: Case, config: Config, now: datetime) -> Survey | None:
    """Schedule the one survey of a closed case (never twice); None if there is no one to ask."""
    existing = session.scalar(select(Survey).where(Survey.case_id == case.id))
    if existing is not None:
        return None
    contact = session.get(Contact, case.contact_id) if case.contact_id else None
    due = due_time(
        now,
        int(config.survey["delay_minutes"]),
        str(config.survey["quiet_hours"]),
        config.timezone,
    )
    by_voice = case.channel == "voice" or (
        contact is not None and (contact.preferred_channel == "voice" or not can_text(contact))
    )
    survey = Survey(
        case_id=case.id,
        contact_id=contact.id if contact else None,
        channel="voice" if contact and by_voice else "sms",
        language=config.language_or_default(
            case.language or (contact.language if contact else None)
        ),
        status=SurveyStatus.SCHEDULED.value,
        due_at=due,
        expires_at=due + timedelta(hours=int(config.survey["expiry_hours"])),
        clarified=False,
        low_score=False,
        created_at=now,
        updated_at=now,
    )
    if contact is None:
        survey.status, survey.reason = SurveyStatus.SKIPPED.value, "no_phone"
    session.add(survey)
    session.flush()
    return survey


@dataclass(frozen=True)
class SendCounts:
    asked: int = 0
    skipped: int = 0
    expired: int = 0
    postponed: int = 0


def voice_calls_enabled(config: Config) -> bool:
    """`[survey] voice_calls`: voice citizens are asked by a call (else everyone by SMS)."""
    return bool(_setting(config, "voice_calls", True))


def send_due_surveys(
    session: Session,
    config: Config,
    sms_provider: str,
    now: datetime,
    limit: int = 1000,
    *,
    voice_provider: str | None = None,
) -> SendCounts:
    """Turn due scheduled surveys into questions in the outbox, or into calls for voice
    surveys when a `voice_provider` is given (or skip/expire them)."""
    asked = skipped = expired = postponed = 0
    fatigue = timedelta(days=int(_setting(config, "fatigue_days", 14)))
    query = (
        select(Survey)
        .where(Survey.status == SurveyStatus.SCHEDULED.value, Survey.due_at <= now)
        .order_by(Survey.due_at, Survey.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    for survey in session.scalars(query):
        survey.updated_at = now
        if survey.expires_at is not None and survey.expires_at <= now:
            survey.status, survey.reason = SurveyStatus.EXPIRED.value, "not_sent_in_time"
            expired += 1
            continue
        contact = session.get(Contact, survey.contact_id) if survey.contact_id else None
        if contact is None or contact.opted_out_at or contact.provider_opted_out_at:
            survey.status, survey.reason = SurveyStatus.SKIPPED.value, "opted_out"
            skipped += 1
            continue
        allowed = next_allowed(now, str(config.survey["quiet_hours"]), config.timezone)
        if allowed > now:  # the worker ran late, into quiet hours
            survey.due_at = allowed
            postponed += 1
            continue
        if contact.pending_survey_id is not None and contact.pending_survey_id != survey.id:
            pending = session.get(Survey, contact.pending_survey_id)
            if (
                pending is not None
                and pending.status in PENDING
                and (pending.expires_at is None or pending.expires_at > now)
            ):
                survey.due_at = now + RETRY_BUSY  # one survey at a time per phone
                postponed += 1
                continue
        recent = session.scalar(
            select(Survey.id).where(
                Survey.contact_id == contact.id,
                Survey.id != survey.id,
                Survey.asked_at.is_not(None),
                Survey.asked_at > now - fatigue,
            )
        )
        if recent is not None:
            survey.status, survey.reason = SurveyStatus.SKIPPED.value, "fatigue"
            skipped += 1
            continue
        # A phone found unable to take SMS since the survey was scheduled is asked by a call.
        by_voice = survey.channel == "voice" or not can_text(contact)
        if by_voice and voice_provider and voice_calls_enabled(config):
            ask_by_voice(session, config, survey, contact, voice_provider, now)
        else:
            survey.channel = "sms"
            ask_by_sms(session, config, survey, contact, sms_provider, now)
        asked += 1
    session.flush()
    return SendCounts(asked, skipped, expired, postponed)


def ask_by_sms(
    session: Session,
    config: Config,
    survey: Survey,
    contact: Contact,
    sms_provider: str,
    now: datetime,
) -> None:
    """Put the rating question in the outbox; replies from this phone now go to the survey."""
    case = session.get(Case, survey.case_id)
    assert case is not None
    body = render_reply(config, "survey", survey.language, tracking=case.tracking_number)
    sms = OutgoingSms(
        case_id=case.id,
        contact_id=contact.id,
        address=contact.phone,
        body=body,
        kind="survey",
        provider=sms_provider,
        automatic=True,
        now=now,
    )
    queue_sms(session, sms, event=OnTimeline(kind="survey_sent", linked=False))
    survey.status = SurveyStatus.ASKED.value
    survey.asked_at = survey.asked_at or now  # a fallback keeps when the survey was first asked
    survey.expires_at = now + timedelta(hours=int(config.survey["expiry_hours"]))
    contact.pending_survey_id = survey.id


def ask_by_voice(
    session: Session,
    config: Config,
    survey: Survey,
    contact: Contact,
    voice_provider: str,
    now: datetime,
    *,
    due: datetime | None = None,
) -> OutboundCall:
    """Write the call that asks the survey (placed by the worker at `due`, default now).

    A survey asked by voice first takes no SMS reply as its answer (the citizen read no
    question); one that falls back from SMS still takes its SMS answer until it expires.
    """
    call = OutboundCall(
        contact_id=contact.id,
        survey_id=survey.id,
        kind=SURVEY_CALL,
        provider=voice_provider,
        to_address=dial_address(contact),
        status=CallStatus.PENDING.value,
        language=survey.language,
        attempts=0,
        next_attempt_at=due or now,
        created_at=now,
        updated_at=now,
    )
    session.add(call)
    made = session.scalar(
        select(func.count()).select_from(OutboundCall).where(OutboundCall.survey_id == survey.id)
    )
    session.add(
        CaseEvent(
            case_id=survey.case_id,
            kind="survey_called",
            at=now,
            actor="system",
            data={
                "call": int(made or 0),
                "provider": voice_provider,
                "due": (due or now).isoformat(),
            },
        )
    )
    survey.channel = "voice"
    if survey.status == SurveyStatus.SCHEDULED.value:
        survey.status = SurveyStatus.ASKED.value
        survey.asked_at = now
        survey.expires_at = now + timedelta(hours=int(config.survey["expiry_hours"]))
    survey.updated_at = now
    session.flush()
    return call


def comment_max_chars(config: Config) -> int:
    """`[survey] comment_max_chars`: a longer reply after a rating is a request, not a comment."""
    return int(_setting(config, "comment_max_chars", 100))


def early_answer_hours(config: Config) -> int:
    """`[survey] early_answer_hours`: a rating this soon after closure answers the survey."""
    return int(_setting(config, "early_answer_hours", 24))


def answer_sms(
    conn: Connection,
    config: Config,
    survey_id: int | None,
    contact_id: int,
    text: str,
    inbound_id: int,
    now: datetime,
    *,
    plan: Plan,
    talking: bool = False,
) -> SurveyReply | None:
    """Apply an SMS reply to the contact's pending survey (`survey_id`), or, with none pending,
    a bare rating to the survey of the case closed just before. None when the text is not an
    answer: the caller handles it as any SMS (a survey awaiting its rating keeps waiting; one
    awaiting the comment is done). `talking`: the citizen is writing on an open case, so no
    early answer is taken and nothing is a comment."""
    mentions_request = plan.urgent or plan.category != config.triage_category
    if survey_id is None:
        if talking:
            return None
        return _answer_early(conn, config, contact_id, text, inbound_id, now, mentions_request)
    row = conn.execute(
        select(surveys_t, cases_t.c.tracking_number)
        .join(cases_t, cases_t.c.id == surveys_t.c.case_id)
        .where(surveys_t.c.id == survey_id)
    ).first()
    if row is None or row.status not in PENDING or (row.expires_at and row.expires_at <= now):
        conn.execute(
            update(contacts_t).where(contacts_t.c.id == contact_id).values(pending_survey_id=None)
        )
        return None
    awaiting = "rating" if row.status == SurveyStatus.ASKED.value else "comment"
    reading = read_survey_reply(
        text,
        awaiting=awaiting,
        mentions_request=mentions_request,
        comment_max_chars=comment_max_chars(config),
    )
    if awaiting == "comment" and talking:
        reading = SurveyReading(ReplyMove.CASE)
    if reading.move is ReplyMove.CASE:
        if awaiting == "comment":
            # The citizen moved on to a request: the survey stops waiting for a comment, so a
            # short follow-up on that request is never mistaken for one.
            _finish(conn, survey_id, contact_id, {"status": SurveyStatus.DONE.value}, now)
        return None
    conn.execute(
        update(interactions_t).where(interactions_t.c.id == inbound_id).values(case_id=row.case_id)
    )
    values: dict[str, Any] = {"updated_at": now}
    finished = False
    if reading.move is ReplyMove.CLARIFY:
        if not row.clarified:
            values["clarified"] = True
            template = "survey_clarify"
        else:  # a second unclear answer: thank and stop asking
            values.update(status=SurveyStatus.DONE.value, reason="unclear", answered_at=now)
            template, finished = "survey_thanks", True
    elif reading.move is ReplyMove.RATE:
        assert reading.rating is not None and reading.rating.value is not None
        template, finished = _take_rating(
            conn, config, row.case_id, survey_id, reading.rating, text, now, values
        )
    else:  # RATED: this is the optional comment
        values.update(status=SurveyStatus.DONE.value, comment=text.strip()[:1000])
        _event(conn, row.case_id, "survey_comment", now, text, None)
        template, finished = "survey_thanks", True
    if finished:
        _finish(conn, survey_id, contact_id, values, now)
    else:
        conn.execute(update(surveys_t).where(surveys_t.c.id == survey_id).values(values))
    return SurveyReply(template, row.tracking_number, row.case_id)


def _finish(
    conn: Connection, survey_id: int, contact_id: int, values: dict[str, Any], now: datetime
) -> None:
    """Write the survey's last `values`; this phone's replies no longer go to it."""
    conn.execute(
        update(surveys_t).where(surveys_t.c.id == survey_id).values({"updated_at": now, **values})
    )
    conn.execute(
        update(contacts_t).where(contacts_t.c.id == contact_id).values(pending_survey_id=None)
    )


def _take_rating(
    conn: Connection,
    config: Config,
    case_id: int,
    survey_id: int,
    rating: Rating,
    text: str,
    now: datetime,
    values: dict[str, Any],
) -> tuple[str, bool]:
    """Put a rating into the survey's `values`; the template to answer and whether it is done."""
    assert rating.value is not None
    low = _rated(conn, config, case_id, rating.value, text, now)
    values.update(
        rating=rating.value,
        answered_at=now,
        low_score=low,
        comment=rating.comment or None,
        channel="sms",  # how it was answered, if a call was also on its way
    )
    # Asked by SMS, then by voice (fallback): the call that has not rung yet is dropped.
    _cancel_calls(conn, surveys_t.c.id == survey_id, now)
    if rating.comment:
        values["status"] = SurveyStatus.DONE.value
        return ("survey_low" if low else "survey_thanks"), True
    values["status"] = SurveyStatus.RATED.value
    return ("survey_low" if low else "survey_comment"), False


def _answer_early(
    conn: Connection,
    config: Config,
    contact_id: int,
    text: str,
    inbound_id: int,
    now: datetime,
    mentions_request: bool,
) -> SurveyReply | None:
    """A rating sent after the closure notice but before the survey went out answers that
    survey (and the question is never sent); None when the text is no rating or no case of
    this phone closed within `early_answer_hours`."""
    reading = read_survey_reply(
        text,
        awaiting="early",
        mentions_request=mentions_request,
        comment_max_chars=comment_max_chars(config),
    )
    if reading.move is not ReplyMove.RATE or reading.rating is None:
        return None
    since = now - timedelta(hours=early_answer_hours(config))
    row = conn.execute(
        select(
            cases_t.c.id,
            cases_t.c.tracking_number,
            cases_t.c.language,
            surveys_t.c.id.label("survey_id"),
            surveys_t.c.status.label("survey_status"),
        )
        .select_from(cases_t)
        .outerjoin(surveys_t, surveys_t.c.case_id == cases_t.c.id)
        .where(
            cases_t.c.contact_id == contact_id,
            cases_t.c.status == CaseStatus.CLOSED.value,
            cases_t.c.closed_at >= since,
        )
        .order_by(cases_t.c.closed_at.desc(), cases_t.c.id.desc())
        .limit(1)
    ).first()
    if row is None or row.survey_status not in (None, SurveyStatus.SCHEDULED.value):
        return None
    expires = now + timedelta(hours=int(config.survey["expiry_hours"]))
    survey_id = row.survey_id
    if survey_id is None:  # closed without a survey scheduled (no configuration at the time)
        survey_id = conn.execute(
            surveys_t.insert()
            .values(
                case_id=row.id,
                contact_id=contact_id,
                channel="sms",
                language=config.language_or_default(row.language),
                status=SurveyStatus.ASKED.value,
                due_at=now,
                clarified=False,
                low_score=False,
                created_at=now,
                updated_at=now,
            )
            .returning(surveys_t.c.id)
        ).scalar_one()
    conn.execute(
        update(interactions_t).where(interactions_t.c.id == inbound_id).values(case_id=row.id)
    )
    # Answered before it was asked: it counts as asked now, and the question is never sent.
    values: dict[str, Any] = {"updated_at": now, "asked_at": now, "expires_at": expires}
    template, finished = _take_rating(
        conn, config, row.id, survey_id, reading.rating, text, now, values
    )
    conn.execute(update(surveys_t).where(surveys_t.c.id == survey_id).values(values))
    if not finished:  # the comment question went out: the next reply may be the comment
        conn.execute(
            update(contacts_t)
            .where(contacts_t.c.id == contact_id)
            .values(pending_survey_id=survey_id)
        )
    return SurveyReply(template, row.tracking_number, row.id)


def _rated(
    conn: Connection,
    config: Config,
    case_id: int,
    rating: int,
    text: str,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> bool:
    """What any rating does to the case, whatever the channel: its event, and a low score
    reopens the case when configured. Returns whether the rating is low."""
    low = is_low(rating, int(_setting(config, "low_score_threshold", 2)))
    _event(
        conn, case_id, "survey_rating", now, text, {"rating": rating, "low": low, **(data or {})}
    )
    if low and bool(_setting(config, "reopen_on_low_score", False)):
        _reopen(conn, case_id, now)
    return low


def rate_by_voice(
    conn: Connection, config: Config, survey_id: int, rating: int, keys: str, now: datetime
) -> bool:
    """Keep a rating keyed on a survey call; False if the survey no longer waits for one (a
    redelivered step, a late call): the first answer wins and nothing happens twice."""
    row = conn.execute(
        select(surveys_t.c.case_id, surveys_t.c.contact_id).where(surveys_t.c.id == survey_id)
    ).first()
    if row is None:
        return False
    low = is_low(rating, int(_setting(config, "low_score_threshold", 2)))
    kept = conn.execute(
        update(surveys_t)
        .where(
            surveys_t.c.id == survey_id,
            surveys_t.c.status == SurveyStatus.ASKED.value,
            surveys_t.c.channel == "voice",
        )
        .values(
            status=SurveyStatus.DONE.value,
            rating=rating,
            low_score=low,
            answered_at=now,
            updated_at=now,
        )
    ).rowcount
    if not kept:
        return False
    _rated(conn, config, row.case_id, rating, keys, now, {"channel": "voice"})
    if row.contact_id is not None:  # asked by SMS first: its replies are no longer answers
        conn.execute(
            update(contacts_t)
            .where(contacts_t.c.id == row.contact_id, contacts_t.c.pending_survey_id == survey_id)
            .values(pending_survey_id=None)
        )
    _cancel_calls(conn, surveys_t.c.id == survey_id, now)
    return True


def _cancel_calls(conn: Connection, surveys: Any, now: datetime) -> None:
    """Survey calls not dialled yet, of the surveys `surveys` selects, are not dialled."""
    conn.execute(
        update(calls_t)
        .where(
            calls_t.c.kind == SURVEY_CALL,
            calls_t.c.status.in_(CALL_NOT_DIALLED),
            calls_t.c.survey_id.in_(select(surveys_t.c.id).where(surveys)),
        )
        .values(status=CALL_CANCELLED, error="survey no longer waiting", updated_at=now)
    )


def _event(conn: Connection, case_id: int, kind: str, now: datetime, text: str, data: Any) -> None:
    conn.execute(
        events_t.insert().values(
            case_id=case_id, kind=kind, at=now, actor="citizen", text=text, data=data
        )
    )


def _reopen(conn: Connection, case_id: int, now: datetime) -> None:
    current = conn.execute(select(cases_t.c.status).where(cases_t.c.id == case_id)).scalar_one()
    if not is_open(current):
        conn.execute(
            update(cases_t)
            .where(cases_t.c.id == case_id)
            .values(
                status=CaseStatus.IN_PROGRESS.value,
                updated_at=now,
                closed_at=None,
                resolved_at=None,
            )
        )
        conn.execute(
            events_t.insert().values(
                case_id=case_id,
                kind="status_changed",
                at=now,
                actor="system",
                text="reopened after a low survey score",
                from_status=current,
                to_status=CaseStatus.IN_PROGRESS.value,
            )
        )


def opt_out_surveys(conn: Connection, contact_id: int, now: datetime) -> None:
    """BAJA/STOP: pending and scheduled surveys of this phone are dropped, and their calls."""
    _cancel_calls(conn, surveys_t.c.contact_id == contact_id, now)
    conn.execute(
        update(surveys_t)
        .where(
            surveys_t.c.contact_id == contact_id,
            surveys_t.c.status.in_([SurveyStatus.SCHEDULED.value, *PENDING]),
        )
        .values(status=SurveyStatus.SKIPPED.value, reason="opted_out", updated_at=now)
    )
    conn.execute(
        update(contacts_t).where(contacts_t.c.id == contact_id).values(pending_survey_id=None)
    )


class FeedbackSurveys:
    """The `casestore.hooks.SurveyHooks` that runs this module's surveys."""

    def schedule(self, session: Session, case: Case, config: Config, now: datetime) -> None:
        schedule_survey(session, case, config, now)

    def answer_sms(
        self,
        conn: Connection,
        config: Config,
        survey_id: int | None,
        contact_id: int,
        text: str,
        inbound_id: int,
        now: datetime,
        *,
        plan: Plan,
        talking: bool,
    ) -> SurveyReply | None:
        return answer_sms(
            conn, config, survey_id, contact_id, text, inbound_id, now, plan=plan, talking=talking
        )

    def opt_out(self, conn: Connection, contact_id: int, now: datetime) -> None:
        opt_out_surveys(conn, contact_id, now)


SURVEYS = FeedbackSurveys()

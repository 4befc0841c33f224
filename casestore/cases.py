"""Case operations for the console, API and jobs (ORM; the session belongs to the caller)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import assert_never

from sqlalchemy import Select, or_, select, update
from sqlalchemy.orm import Session, selectinload

from casestore.config import Config
from casestore.fit import clip, column_length
from casestore.hooks import NO_SURVEYS, SurveyHooks
from casestore.models import (
    AuditEvent,
    Case,
    CaseEvent,
    CaseStatus,
    Contact,
    Interaction,
    Operator,
    OutboundMessage,
    utcnow,
)
from casestore.outgoing import OnTimeline, OutgoingSms, outbox_message, queue_sms
from casestore.reach import can_text, queue_notice_call
from casestore.states import Channel, is_open, open_values
from casestore.status import check_transition, parse_status
from sms.conversation import render_reply


class BadCursor(ValueError):
    """The pagination cursor was not one this API issued."""


@dataclass(frozen=True)
class CaseFilter:
    departments: Collection[str] | None  # None: every department (admin)
    contact_phone: str | None = None
    status: str | None = None
    department: str | None = None
    q: str | None = None
    category: str | None = None
    channel: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    overdue_at: datetime | None = None  # only open cases past their due time at this moment


def visible(departments: Collection[str] | None) -> Select[Case]:
    query = select(Case)
    if departments is not None:
        query = query.where(Case.department.in_(list(departments)))
    return query


def encode_cursor(case: Case) -> str:
    raw = f"{case.created_at.isoformat()}|{case.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_MAX_ID = 2**63 - 1


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, ident = raw.partition("|")
        at, case_id = datetime.fromisoformat(when), int(ident)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadCursor("invalid cursor") from exc
    # Only cursors this module wrote: an aware time and an id the database can compare,
    # else a forged one would fail inside the query (500, or 503 on PostgreSQL's bigint).
    if at.tzinfo is None or not 0 < case_id <= _MAX_ID:
        raise BadCursor("invalid cursor")
    return at, case_id


def _like_escape(text: str) -> str:
    """The text as a literal LIKE pattern: % and _ typed by a user are not wildcards."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_cases(
    session: Session, flt: CaseFilter, cursor: str | None, limit: int
) -> tuple[list[Case], str | None]:
    """Newest first, keyset-paginated; returns the page and the next cursor (or None)."""
    query = visible(flt.departments).options(selectinload(Case.events), selectinload(Case.contact))
    if flt.contact_phone is not None:
        query = query.join(Contact, Contact.id == Case.contact_id).where(
            Contact.phone == flt.contact_phone
        )
    if flt.status:
        query = query.where(Case.status == parse_status(flt.status).value)
    if flt.department:
        query = query.where(Case.department == flt.department)
    if flt.category:
        query = query.where(Case.category == flt.category)
    if flt.channel:
        query = query.where(Case.channel == flt.channel)
    if flt.created_from:
        query = query.where(Case.created_at >= flt.created_from)
    if flt.created_to:
        query = query.where(Case.created_at < flt.created_to)
    if flt.overdue_at:
        query = query.where(Case.due_at < flt.overdue_at, Case.status.in_(open_values()))
    if flt.q:
        digits = "".join(ch for ch in flt.q if ch.isdigit())
        text = flt.q.strip()
        terms = [Case.description.ilike(f"%{_like_escape(text)}%", escape="\\")]
        if digits and len(digits) == len(text.replace(" ", "").replace("-", "")):
            terms.append(Case.tracking_number.like(f"{digits}%"))
        query = query.where(or_(*terms))
    if cursor:
        when, ident = decode_cursor(cursor)
        query = query.where(
            or_(Case.created_at < when, (Case.created_at == when) & (Case.id < ident))
        )
    rows = list(
        session.scalars(query.order_by(Case.created_at.desc(), Case.id.desc()).limit(limit + 1))
    )
    page = rows[:limit]
    return page, encode_cursor(page[-1]) if len(rows) > limit else None


def get_case(
    session: Session,
    tracking_number: str,
    departments: Collection[str] | None,
    *,
    for_update: bool = False,
) -> Case | None:
    """The case if these departments may see it; `for_update` locks its row until commit."""
    query = visible(departments).where(Case.tracking_number == tracking_number)
    if for_update:
        # A status change checks the transition against this read: without the lock two
        # operators could both move a case out of the same status (PostgreSQL; SQLite
        # transactions already take the write lock at BEGIN).
        query = query.with_for_update(of=Case)
    return session.scalars(query.options(selectinload(Case.events))).first()


NOTE_MAX = 4000  # characters of an operator's note, from the console or the API


class NoteTooLong(ValueError):
    """An operator's note over NOTE_MAX characters: refused whole, never clipped."""


def check_note(text: str) -> str:
    """The note as given, or NoteTooLong when it is over NOTE_MAX characters."""
    if len(text) > NOTE_MAX:
        raise NoteTooLong(f"note: at most {NOTE_MAX} characters, got {len(text)}")
    return text


def change_status(
    session: Session,
    case: Case,
    target: str,
    *,
    actor: str,
    note: str = "",
    config: Config | None = None,
    sms_provider: str | None = None,
    voice_provider: str | None = None,
    surveys: SurveyHooks,
) -> CaseEvent:
    """Move a case along the transition table and write the timeline event.

    With the deployment config, the citizen gets the status's SMS notification (when the config
    has one and they did not opt out) — by a notice call through `voice_provider` when their
    phone cannot take SMS — and closing a case schedules its satisfaction survey (`surveys`).
    """
    check_note(note)
    new = parse_status(target)
    current = CaseStatus(case.status)
    check_transition(current, new)
    now = utcnow()
    case.status = new.value
    case.updated_at = now
    match new:
        case CaseStatus.RESOLVED:
            case.resolved_at = now
        case CaseStatus.CLOSED:
            case.closed_at = now
            case.resolved_at = case.resolved_at or now
        case (
            CaseStatus.NEW
            | CaseStatus.ASSIGNED
            | CaseStatus.IN_PROGRESS
            | CaseStatus.WAITING_CITIZEN
        ):
            if not is_open(current):  # reopened: neither resolved nor closed any more
                case.resolved_at = None
                case.closed_at = None
        case _:
            assert_never(new)
    event = CaseEvent(
        case=case,
        kind="status_changed",
        at=now,
        actor=actor,
        text=note,
        from_status=current.value,
        to_status=new.value,
    )
    session.add(event)
    if config is not None:
        session.flush()
        if sms_provider is not None:
            notify_status(session, case, config, sms_provider, now, voice_provider=voice_provider)
        if new is CaseStatus.CLOSED:
            surveys.schedule(session, case, config, now)
    return event


def message_citizen(
    session: Session,
    case: Case,
    body: str,
    *,
    kind: str,
    provider: str,
    actor: str,
    now: datetime,
    respect_opt_out: bool,
) -> OutboundMessage | None:
    """Queue an SMS to the case's phone: interaction, timeline event and outbox row together.

    None when there is no phone to text, or the citizen opted out of messages we start.
    """
    contact = case.contact
    if contact is None or not can_text(contact):
        return None
    if respect_opt_out and (contact.opted_out_at or contact.provider_opted_out_at):
        return None
    sms = OutgoingSms(
        case_id=case.id,
        contact_id=contact.id,
        address=contact.phone,
        body=body,
        kind=kind,
        provider=provider,
        automatic=kind != "operator_reply",
        now=now,
    )
    event = OnTimeline(actor=actor, data={"channel": Channel.SMS.value, "kind": kind})
    _, message = queue_sms(session, sms, event=event, case=case)
    if case.first_response_at is None:
        case.first_response_at = now  # the citizen heard from a person: the silence ends
    return message


def notify_status(
    session: Session,
    case: Case,
    config: Config,
    provider: str,
    now: datetime,
    *,
    voice_provider: str | None = None,
) -> OutboundMessage | None:
    """The short SMS a status change sends, from the `notify_<status>` template if any; to a
    citizen whose phone cannot take SMS (a landline), a notice call that says it instead."""
    language = config.language_or_default(case.language)
    name = f"notify_{case.status}"
    if name not in config.templates.get(language, {}):
        return None
    body = render_reply(config, name, language, tracking=case.tracking_number)
    contact = case.contact
    if contact is not None and voice_provider is not None and not can_text(contact):
        if not (contact.opted_out_at or contact.provider_opted_out_at):
            notify_by_call(session, case, contact, body, voice_provider, language, now)
        return None
    return message_citizen(
        session,
        case,
        body,
        kind="notification",
        provider=provider,
        actor="system",
        now=now,
        respect_opt_out=True,
    )


def notify_by_call(
    session: Session,
    case: Case,
    contact: Contact,
    body: str,
    voice_provider: str,
    language: str,
    now: datetime,
) -> int:
    """Queue a notice call that says `body`, and show it on the case's timeline."""
    call_id = queue_notice_call(
        session, contact, body, provider=voice_provider, language=language, now=now
    )
    session.add(
        CaseEvent(
            case=case,
            kind="message_out",
            at=now,
            actor="system",
            text=body,
            data={"channel": "voice", "kind": "notice", "call_id": call_id},
        )
    )
    return call_id


def add_note(session: Session, case: Case, text: str, *, actor: str) -> CaseEvent:
    """An internal note on the timeline (never sent to the citizen)."""
    text = check_note(text.strip())
    if not text:
        raise ValueError("a note needs text")
    now = utcnow()
    event = CaseEvent(case=case, kind="note", at=now, actor=actor, text=text)
    case.updated_at = now
    session.add(event)
    return event


def audit(
    session: Session,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    detail: dict[str, object] | None = None,
) -> None:
    """Write who saw or changed what."""
    session.add(
        AuditEvent(
            at=utcnow(),
            # A failed log-in audits the user name as typed: whatever its length, it fits.
            actor=clip(actor, column_length(AuditEvent.actor)),
            action=action,
            target_type=target_type,
            target_id=clip(target_id, column_length(AuditEvent.target_id)),
            detail=detail,
        )
    )


def duplicate_candidates(
    session: Session, case: Case, window_days: int, departments: Collection[str] | None
) -> list[Case]:
    """The same citizen's other open requests in the same category within the window,
    from any channel: the same phone, or the same national ID when one was recorded; only
    cases these departments may see (None: every department)."""
    if case.contact_id is None and not case.national_id:
        return []
    same_person = []
    if case.contact_id is not None:
        same_person.append(Case.contact_id == case.contact_id)
    if case.national_id:
        same_person.append(Case.national_id == case.national_id)
    since = case.created_at - timedelta(days=window_days)
    until = case.created_at + timedelta(days=window_days)
    return list(
        session.scalars(
            visible(departments)
            .where(
                Case.id != case.id,
                or_(*same_person),
                Case.category == case.category,
                Case.status.in_(open_values()),
                Case.merged_into_id.is_(None),
                Case.created_at >= since,
                Case.created_at <= until,
            )
            .order_by(Case.created_at)
        )
    )


class MergeError(ValueError):
    """These two cases cannot be merged."""


def merge_cases(session: Session, target: Case, source: Case, *, actor: str) -> None:
    """Fold `source` into `target`: its messages and history move over, it closes as merged.

    The source's tracking number keeps answering: status look-ups follow the merge.
    """
    if target.id == source.id:
        raise MergeError("a case cannot be merged into itself")
    if source.merged_into_id is not None or target.merged_into_id is not None:
        raise MergeError("one of these cases was already merged")
    now = utcnow()
    session.execute(
        update(Interaction).where(Interaction.case_id == source.id).values(case_id=target.id)
    )
    for event in list(source.events):
        if event.kind in ("message_in", "message_out", "note", "created"):
            session.add(
                CaseEvent(
                    case=target,
                    kind="merged_event" if event.kind == "created" else event.kind,
                    at=event.at,
                    actor=event.actor,
                    text=event.text,
                    interaction_id=event.interaction_id,
                    data={"from_case": source.tracking_number},
                )
            )
    previous = source.status
    source.merged_into_id = target.id
    source.status = CaseStatus.CLOSED.value
    source.closed_at = now
    source.updated_at = now
    target.updated_at = now
    target.urgent = target.urgent or source.urgent
    if target.urgent:
        target.priority = "urgent"
    session.add(
        CaseEvent(
            case=source,
            kind="merged",
            at=now,
            actor=actor,
            text=f"merged into {target.tracking_number}",
            from_status=previous,
            to_status=CaseStatus.CLOSED.value,
        )
    )
    session.add(
        CaseEvent(
            case=target,
            kind="merged",
            at=now,
            actor=actor,
            text=f"{source.tracking_number} merged into this case",
        )
    )


def assign_case(session: Session, case: Case, operator: Operator, *, actor: str) -> None:
    """Put an operator in charge (of the case's department); a new case becomes assigned."""
    if not operator.sees_all() and case.department not in operator.department_codes:
        raise ValueError(f"{operator.username} does not work in {case.department}")
    now = utcnow()
    case.assigned_to_id = operator.id
    case.updated_at = now
    session.add(CaseEvent(case=case, kind="assigned", at=now, actor=actor, text=operator.username))
    if case.status == CaseStatus.NEW.value:
        # No config: no notification and no survey (assigning never closes a case).
        change_status(session, case, CaseStatus.ASSIGNED.value, actor=actor, surveys=NO_SURVEYS)


def escalate_overdue(session: Session, now: datetime, provider: str, limit: int = 500) -> int:
    """Flag open cases past their due time and tell the department's supervisors by SMS."""
    overdue = session.scalars(
        select(Case)
        .where(
            Case.status.in_(open_values()),
            Case.due_at.is_not(None),
            Case.due_at < now,
            Case.escalated_at.is_(None),
            Case.merged_into_id.is_(None),
        )
        .order_by(Case.due_at)
        .limit(limit)
    ).all()
    for case in overdue:
        case.escalated_at = now
        supervisors = (
            session.scalars(
                select(Operator)
                .join(Operator.departments)
                .where(
                    Operator.role == "supervisor",
                    Operator.active.is_(True),
                    Operator.phone.is_not(None),
                    Operator.departments.any(department=case.department),
                )
            )
            .unique()
            .all()
        )
        names = ", ".join(s.username for s in supervisors) or "-"
        session.add(
            CaseEvent(
                case=case,
                kind="escalated",
                at=now,
                actor="system",
                text=f"overdue since {case.due_at.isoformat() if case.due_at else ''}; "
                f"supervisors told: {names}",
            )
        )
        for supervisor in supervisors:
            assert supervisor.phone is not None
            sms = OutgoingSms(
                case_id=case.id,
                contact_id=None,
                address=supervisor.phone,
                body=f"Ventanilla: el pedido {case.tracking_number} ({case.department}) "
                "esta vencido.",
                kind="escalation",
                provider=provider,
                automatic=True,
                now=now,
            )
            session.add(outbox_message(sms))
    session.flush()
    return len(overdue)

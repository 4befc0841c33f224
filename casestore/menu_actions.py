"""What the voice and USSD menu does to the registry: open cases, look them up, call-backs.

Domain functions: they take a Session (the caller owns the transaction) and never talk to a
provider. Every inbound step is recorded as an Interaction keyed by the provider's reference
(USSD sessionId + step, CallSid + step), so a redelivered request opens nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore import sla
from casestore.config import Config
from casestore.inbound import Inbound
from casestore.intake import (
    add_event,
    cases_today,
    count_new_case,
    open_case_as_told,
    record_inbound,
    record_limit_hit,
    statements,
    upsert_contact,
)
from casestore.models import (
    CallbackRequest,
    Case,
    Contact,
    Interaction,
)
from casestore.outgoing import OutgoingSms, queue_sms
from casestore.prepared import Row
from casestore.reach import can_text, note_presented_number
from casestore.states import open_values
from casestore.tracking import format_tracking
from sms.conversation import NEW_CASES_PER_DAY, USSD_SESSIONS_PER_HOUR, render_reply
from sms.phone import contact_key

CALLBACK_DUE = timedelta(hours=4)
URGENT_CALLBACK_DUE = timedelta(minutes=15)


@dataclass(frozen=True)
class Opened:
    tracking_number: str
    case_id: int
    sms_copy: bool
    duplicate: bool = False


def _contact(session: Session, phone: str | None, now: datetime, channel: str) -> Row | None:
    if phone is None:
        return None
    conn = session.connection()
    contact = upsert_contact(conn, contact_key(phone), now, channel)
    if channel == "voice":  # a landline calls too; USSD comes only from mobiles
        note_presented_number(conn, int(contact.id), phone, now)
    return contact


def _case_to_join(
    session: Session, config: Config, contact: Row | None, now: datetime
) -> tuple[int, str] | None:
    """Over `[limits] new_cases_per_day`, the newest open case of this phone (a request joins
    it, as over SMS); None when a case may be opened."""
    limit = config.limits.new_cases_per_day
    if contact is None or not 0 < limit <= cases_today(contact, now):
        return None
    row = session.execute(
        select(Case.id, Case.tracking_number)
        .where(Case.contact_id == contact.id, Case.status.in_(open_values()))
        .order_by(Case.created_at.desc(), Case.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (int(row.id), str(row.tracking_number))


def _can_text(session: Session, contact_id: int | None) -> bool:
    """Whether the receipt can go by SMS (read fresh: Core statements just wrote the row)."""
    if contact_id is None:
        return False
    contact = session.get(Contact, contact_id, populate_existing=True)
    return contact is not None and can_text(contact)


@dataclass(frozen=True)
class KeypadRequest:
    """A new request a citizen finished on a menu (USSD or voice): what opens its case now,
    or what the gateway keeps in its spool while the database is unreachable."""

    phone: str | None
    channel: str
    provider: str
    provider_ref: str  # "<session>:<step>": the step that finished the request
    category: str
    description: str
    recording_url: str | None
    urgent: bool
    language: str
    now: datetime


def open_case_by_keypad(
    session: Session,
    config: Config,
    request: KeypadRequest,
    *,
    sms_provider: str,
    number: str | None = None,
) -> Opened:
    """Open a case from the menu and queue its SMS copy (USSD screens and calls vanish).

    Idempotent on (provider, provider_ref): a repeated step returns the case already opened.
    `number` is a tracking number the citizen was already given (a request kept in the
    gateway's spool during a database outage and replayed now).
    """
    conn = session.connection()
    existing = session.execute(
        select(Case.tracking_number, Case.id)
        .join(Interaction, Interaction.case_id == Case.id)
        .where(
            Interaction.provider == request.provider,
            Interaction.provider_ref == request.provider_ref,
        )
    ).first()
    if existing is not None:
        return Opened(existing.tracking_number, existing.id, sms_copy=False, duplicate=True)
    contact = _contact(session, request.phone, request.now, request.channel)
    contact_id = None if contact is None else int(contact.id)
    chosen = config.categories[request.category]
    text = request.description or ("(grabacion)" if request.recording_url else "")
    inbound = Inbound(
        provider=request.provider,
        provider_ref=request.provider_ref,
        channel=request.channel,
        sender=request.phone or "withheld",
        recipient="",
        text=text,
        received_at=request.now,
        phone=request.phone,
        media_urls=(request.recording_url,) if request.recording_url else (),
    )
    interaction_id = record_inbound(conn, inbound, contact_id)
    if interaction_id is None:  # lost a race with the same step: read what it made
        return open_case_by_keypad(
            session, config, request, sms_provider=sms_provider, number=number
        )
    is_urgent = request.urgent or chosen.urgent
    # A request answered from the spool already has its number: it is never joined elsewhere.
    joined = (
        None
        if is_urgent or number is not None
        else _case_to_join(session, config, contact, request.now)
    )
    if joined is not None:
        # Too many new cases today from this phone: the request joins its newest open case,
        # and the citizen is told so by SMS (urgent requests are never joined).
        case_id, number = joined
        add_event(
            conn,
            case_id=case_id,
            kind="message_in",
            at=request.now,
            actor="citizen",
            text=text,
            interaction_id=interaction_id,
            data={"channel": request.channel},
        )
        record_limit_hit(conn, config, case_id, NEW_CASES_PER_DAY, request.now, interaction_id)
        session.get(Case, case_id).updated_at = request.now  # type: ignore[union-attr]
        template = (
            "limit_cases"
            if "limit_cases" in config.templates.get(request.language, {})
            else "joined"
        )
    else:
        case_id, number = open_case_as_told(
            conn,
            number=number,
            contact_id=contact_id,
            channel=request.channel,
            category=chosen.code,
            department=chosen.department,
            urgent=is_urgent,
            description=text,
            language=request.language,
            now=request.now,
            length=config.tracking_length,
            interaction_id=interaction_id,
            due=sla.due_at(config.raw, config.timezone, request.now, chosen.code, is_urgent),
        )
        if contact is not None:
            statements(conn).run(
                conn, "update_contact", {"b_id": contact.id, **count_new_case(contact, request.now)}
            )
        template = "urgent" if is_urgent else "receipt"
    session.get(Interaction, interaction_id).case_id = case_id  # type: ignore[union-attr]
    sms_copy = request.phone is not None and _can_text(session, contact_id)
    if sms_copy and request.phone is not None:
        body = render_reply(config, template, request.language, tracking=number)
        receipt = OutgoingSms(
            case_id=case_id,
            contact_id=contact_id,
            address=contact_key(request.phone),
            body=body,
            kind="receipt",
            provider=sms_provider,
            automatic=True,
            now=request.now,
            reply_to_id=interaction_id,
        )
        queue_sms(session, receipt)
    session.flush()
    return Opened(number, case_id, sms_copy=sms_copy)


@dataclass(frozen=True)
class StatusAnswer:
    tracking_number: str
    status: str
    department: str


def case_status(session: Session, tracking_number: str) -> StatusAnswer | None:
    """Status and department only: what any caller may hear about any case."""
    case = session.scalar(select(Case).where(Case.tracking_number == tracking_number))
    if case is not None and case.merged_into_id is not None:
        case = session.get(Case, case.merged_into_id)  # a merged case answers for its target
    if case is None:
        return None
    return StatusAnswer(case.tracking_number, case.status, case.department)


def latest_open_case(session: Session, phone: str | None) -> str | None:
    """The tracking number of the newest open case opened from this phone, if any."""
    if phone is None:
        return None
    number = session.scalar(
        select(Case.tracking_number)
        .join(Contact, Contact.id == Case.contact_id)
        .where(Contact.phone == contact_key(phone), Case.status.in_(open_values()))
        .order_by(Case.created_at.desc(), Case.id.desc())
        .limit(1)
    )
    return str(number) if number is not None else None


def ussd_limit_hit(
    session: Session, config: Config, phone: str, now: datetime, *, record: bool
) -> str | None:
    """A phone went over `[limits] ussd_sessions_per_hour`: its known language (None if the
    phone is new). With `record`, a `limit_hit` event on its newest case for operators, or,
    when it has no case, the number marked for the console's list of limited numbers."""
    contact = session.scalar(select(Contact).where(Contact.phone == contact_key(phone)))
    if not record:
        return None if contact is None else contact.language
    if contact is None:
        _contact(session, phone, now, "ussd")
        contact = session.scalar(select(Contact).where(Contact.phone == contact_key(phone)))
        assert contact is not None
    case_id = session.scalar(
        select(Case.id)
        .where(Case.contact_id == contact.id)
        .order_by(Case.created_at.desc(), Case.id.desc())
        .limit(1)
    )
    if case_id is not None:
        record_limit_hit(session.connection(), config, case_id, USSD_SESSIONS_PER_HOUR, now)
    else:
        contact.limit_hit_at, contact.limit_hit = now, USSD_SESSIONS_PER_HOUR
    return contact.language


def request_callback(
    session: Session,
    *,
    phone: str | None,
    department: str,
    channel: str,
    reason: str,
    language: str,
    now: datetime,
    urgent: bool = False,
    case_id: int | None = None,
) -> CallbackRequest | None:
    """Queue a call-back for operators; one pending request per phone and department."""
    if phone is None:
        return None  # a withheld number cannot be called back
    key = contact_key(phone)
    pending = session.scalar(
        select(CallbackRequest).where(
            CallbackRequest.phone == key,
            CallbackRequest.department == department,
            CallbackRequest.status == "pending",
        )
    )
    if pending is not None:
        return pending
    contact = _contact(session, phone, now, channel)
    request = CallbackRequest(
        contact_id=None if contact is None else int(contact.id),
        case_id=case_id,
        phone=key,
        department=department,
        channel=channel,
        reason=reason,
        status="pending",
        language=language,
        urgent=urgent,
        requested_at=now,
        due_at=now + (URGENT_CALLBACK_DUE if urgent else CALLBACK_DUE),
        attempts=0,
    )
    session.add(request)
    session.flush()
    return request


def spoken_tracking(number: str) -> str:
    """Digits separated for speech: "4 8 2 1, 3 3 0 7, 5 2"."""
    return ", ".join(" ".join(group) for group in format_tracking(number).split())

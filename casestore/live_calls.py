"""Live calls on the registry: who a caller is, a case opened during the call, the wrap-up.

Domain functions: the caller owns the session and its transaction. What a caller's page shows is
limited to the viewer's departments: a case elsewhere (and the messages on it) is not even
counted, since knowing that someone has a case in, say, gender violence is personal data.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from casestore import sla
from casestore.calls import OPERATOR_BRIDGE
from casestore.cases import assign_case, audit, message_citizen
from casestore.config import Config
from casestore.intake import count_new_case, open_case, statements, upsert_contact
from casestore.menu_actions import request_callback
from casestore.models import (
    CallStatus,
    Case,
    CaseEvent,
    Channel,
    Contact,
    Direction,
    Interaction,
    Operator,
    OutboundCall,
)
from casestore.reach import can_text, note_presented_number
from casestore.states import is_open
from sms.conversation import render_reply
from sms.phone import contact_key


class Disposition(enum.StrEnum):
    """How a call ended, as the operator tells it."""

    RESOLVED_ON_CALL = "resolved_on_call"
    CASE_OPENED = "case_opened"
    CALLBACK_NEEDED = "callback_needed"
    WRONG_NUMBER = "wrong_number"


DISPOSITION_LABELS = {
    "es": {
        Disposition.RESOLVED_ON_CALL: "resuelto en la llamada",
        Disposition.CASE_OPENED: "se abrió un pedido",
        Disposition.CALLBACK_NEEDED: "hay que volver a llamar",
        Disposition.WRONG_NUMBER: "número equivocado",
    },
    "en": {
        Disposition.RESOLVED_ON_CALL: "resolved on the call",
        Disposition.CASE_OPENED: "case opened",
        Disposition.CALLBACK_NEEDED: "call-back needed",
        Disposition.WRONG_NUMBER: "wrong number",
    },
}


@dataclass(frozen=True)
class CaseSummary:
    tracking_number: str
    status: str
    department: str
    category: str
    urgent: bool
    created_at: datetime
    description: str


@dataclass(frozen=True)
class Known:
    """What the viewer may know of a phone before answering it."""

    phone: str
    known: bool  # the phone reached us before
    name: str | None
    national_id: str | None
    open_cases: tuple[CaseSummary, ...]


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    channel: str
    direction: str
    text: str
    tracking_number: str | None
    media_urls: tuple[str, ...]
    automatic: bool


def _summary(case: Case) -> CaseSummary:
    return CaseSummary(
        tracking_number=case.tracking_number,
        status=case.status,
        department=case.department,
        category=case.category,
        urgent=case.urgent,
        created_at=case.created_at,
        description=case.description,
    )


def screen_pop(
    session: Session, phones: Iterable[str], departments: Collection[str] | None
) -> dict[str, Known]:
    """Per phone (E.164): known or not, the name and ID given, open cases in these departments."""
    keys = {contact_key(p): p for p in phones}
    if not keys:
        return {}
    contacts = {
        c.phone: c for c in session.scalars(select(Contact).where(Contact.phone.in_(list(keys))))
    }
    query = select(Case).where(
        Case.contact_id.in_([c.id for c in contacts.values()]),
        Case.merged_into_id.is_(None),
    )
    if departments is not None:
        query = query.where(Case.department.in_(list(departments)))
    by_contact: dict[int, list[Case]] = {}
    for case in session.scalars(query.order_by(Case.created_at.desc(), Case.id.desc())):
        assert case.contact_id is not None
        by_contact.setdefault(case.contact_id, []).append(case)
    found: dict[str, Known] = {}
    for key, phone in keys.items():
        contact = contacts.get(key)
        cases = by_contact.get(contact.id, []) if contact else []
        named = next((c for c in cases if c.citizen_name), None)
        with_id = next((c for c in cases if c.national_id), None)
        found[phone] = Known(
            phone=key,
            known=contact is not None,
            name=named.citizen_name if named else None,
            national_id=with_id.national_id if with_id else None,
            open_cases=tuple(_summary(c) for c in cases if is_open(c.status)),
        )
    return found


def citizen_cases(
    session: Session, phone: str, departments: Collection[str] | None
) -> list[CaseSummary]:
    """Every case of this phone in these departments, newest first."""
    query = (
        select(Case)
        .join(Contact, Contact.id == Case.contact_id)
        .where(Contact.phone == contact_key(phone))
    )
    if departments is not None:
        query = query.where(Case.department.in_(list(departments)))
    return [_summary(c) for c in session.scalars(query.order_by(Case.created_at.desc()))]


def timeline(
    session: Session, phone: str, departments: Collection[str] | None, limit: int = 100
) -> list[TimelineItem]:
    """The phone's messages and calls on every channel, newest first: those on a case in these
    departments, and those on no case (menu steps, status look-ups)."""
    contact_id = session.scalar(select(Contact.id).where(Contact.phone == contact_key(phone)))
    if contact_id is None:
        return []
    query = (
        select(Interaction, Case.tracking_number)
        .outerjoin(Case, Case.id == Interaction.case_id)
        .where(Interaction.contact_id == contact_id)
    )
    if departments is not None:
        query = query.where(
            or_(Interaction.case_id.is_(None), Case.department.in_(list(departments)))
        )
    rows = session.execute(
        query.order_by(Interaction.created_at.desc(), Interaction.id.desc()).limit(limit)
    ).all()
    return [
        TimelineItem(
            at=i.created_at,
            channel=i.channel,
            direction=i.direction,
            text=i.text,
            tracking_number=number,
            media_urls=tuple(
                u for u in (i.media_urls or ()) if u.startswith(("https://", "http://"))
            ),
            automatic=i.automatic,
        )
        for i, number in rows
    ]


def open_case_on_call(
    session: Session,
    config: Config,
    *,
    phone: str | None,
    category: str,
    description: str,
    name: str | None,
    national_id: str | None,
    language: str,
    operator: Operator,
    sms_provider: str,
    now: datetime,
) -> Case:
    """A case the operator opens while talking to the caller: channel voice, linked to the
    caller's phone, assigned to the operator; its number goes to the citizen by SMS too."""
    chosen = config.categories[category]
    conn = session.connection()
    contact = upsert_contact(conn, contact_key(phone), now, "voice") if phone else None
    contact_id = None if contact is None else int(contact.id)
    if phone is not None and contact_id is not None:
        note_presented_number(conn, contact_id, phone, now)
    case_id, _ = open_case(
        conn,
        contact_id=contact_id,
        channel=Channel.VOICE.value,
        category=chosen.code,
        department=chosen.department,
        urgent=chosen.urgent,
        description=description,
        language=language,
        now=now,
        length=config.tracking_length,
        actor=operator.username,
        due=sla.due_at(config.raw, config.timezone, now, chosen.code, chosen.urgent),
    )
    if contact is not None:
        # Counted toward the phone's new cases of the day like any citizen channel; an
        # operator's case is never refused for it.
        statements(conn).run(
            conn, "update_contact", {"b_id": contact.id, **count_new_case(contact, now)}
        )
    case = session.get(Case, case_id)
    assert case is not None
    case.citizen_name = name
    case.national_id = national_id
    case.first_response_at = now  # a person is answering the citizen right now
    assign_case(session, case, operator, actor=operator.username)
    reached = session.get(Contact, contact_id, populate_existing=True) if contact_id else None
    if reached is not None and can_text(reached):
        template = "urgent" if chosen.urgent else "receipt"
        body = render_reply(config, template, language, tracking=case.tracking_number)
        message_citizen(
            session,
            case,
            body,
            kind="receipt",
            provider=sms_provider,
            actor="system",
            now=now,
            respect_opt_out=False,  # the answer to the citizen's own request
        )
    audit(session, operator.username, "call.case_opened", "case", case.tracking_number)
    session.flush()
    return case


class WrapUpError(ValueError):
    """The wrap-up cannot be written as asked."""


def wrap_up(
    session: Session,
    *,
    call_ref: str,
    provider: str,
    phone: str | None,
    department: str,
    disposition: Disposition,
    note: str,
    case: Case | None,
    operator: Operator,
    language: str,
    urgent: bool,
    now: datetime,
) -> Interaction:
    """Write how the call ended: a voice interaction on the citizen's timeline, an event on the
    case talked about, and a call-back request when one is needed. Once per call."""
    ref = f"{call_ref}:wrap-up"
    if session.scalar(
        select(Interaction.id).where(
            Interaction.provider == provider, Interaction.provider_ref == ref
        )
    ):
        raise WrapUpError("this call was already wrapped up")
    if disposition is Disposition.CASE_OPENED and case is None:
        raise WrapUpError("choose the case that was opened")
    if disposition is Disposition.CALLBACK_NEEDED and phone is None:
        raise WrapUpError("a withheld number cannot be called back")
    label = DISPOSITION_LABELS["es"][disposition]
    text = f"Llamada atendida por {operator.username}: {label}."
    if note.strip():
        text += " " + note.strip()[:1000]
    key = contact_key(phone) if phone else None
    contact_id = int(upsert_contact(session.connection(), key, now, "voice").id) if key else None
    interaction = Interaction(
        case_id=case.id if case else None,
        contact_id=contact_id,
        channel=Channel.VOICE.value,
        direction=Direction.IN.value,
        provider=provider,
        provider_ref=ref,
        address=key or "withheld",
        text=text,
        automatic=False,
        created_at=now,
    )
    session.add(interaction)
    session.flush()
    if case is not None:
        session.add(
            CaseEvent(
                case=case,
                kind="call",
                at=now,
                actor=operator.username,
                text=text,
                interaction_id=interaction.id,
                data={"disposition": disposition.value, "department": department},
            )
        )
        case.updated_at = now
        if case.first_response_at is None:
            case.first_response_at = now
    if disposition is Disposition.CALLBACK_NEEDED:
        request_callback(
            session,
            phone=phone,
            department=department,
            channel=Channel.VOICE.value,
            reason="operator",
            language=language,
            now=now,
            urgent=urgent,
            case_id=case.id if case else None,
        )
    audit(
        session,
        operator.username,
        "call.wrap_up",
        "call",
        call_ref,
        {"disposition": disposition.value, "case": case.tracking_number if case else None},
    )
    session.flush()
    return interaction


def record_operator_call(
    session: Session,
    *,
    provider: str,
    operator_phone: str,
    provider_ref: str,
    recorded: bool,
    now: datetime,
) -> OutboundCall:
    """The call to the operator's phone, kept with the app's other outbound calls (status
    callbacks find it by reference; the simulator answers it). Written once placed, never
    pending: a bridge the worker placed minutes later would ring for a caller long gone."""
    row = OutboundCall(
        contact_id=None,
        kind=OPERATOR_BRIDGE,
        provider=provider,
        to_address=contact_key(operator_phone),
        status=(CallStatus.RECORDED if recorded else CallStatus.PLACED).value,
        provider_ref=provider_ref,
        attempts=1,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row

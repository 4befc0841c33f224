"""A person's data on request (data-protection law): everything we hold, and its erasure.

A person is found by phone (a contact point) or by national ID (recorded on cases). Erasure
keeps each case's skeleton (dates, category, department, status) for the statistics, and
removes every personal detail: phone, name, ID, what they wrote or said, recordings, comments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session

from casestore.models import (
    CallbackRequest,
    Case,
    CaseEvent,
    Contact,
    Interaction,
    MessageStatus,
    OutboundMessage,
    PersonPhone,
    Survey,
    utcnow,
)
from casestore.people import forget_person

ERASED = "[borrado]"


@dataclass(frozen=True)
class Holdings:
    contacts: list[Contact]
    cases: list[Case]


def find_person(session: Session, *, phone: str | None, national_id: str | None) -> Holdings:
    """The contacts and cases that belong to this phone or national ID."""
    contacts = list(session.scalars(select(Contact).where(Contact.phone == phone))) if phone else []
    terms: list[ColumnElement[bool]] = []
    if contacts:
        terms.append(Case.contact_id.in_([c.id for c in contacts]))
    if national_id:
        terms.append(Case.national_id == national_id)
    cases = (
        list(session.scalars(select(Case).where(or_(*terms)).order_by(Case.id))) if terms else []
    )
    return Holdings(contacts, cases)


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def export_person(session: Session, holdings: Holdings) -> dict[str, Any]:
    """Everything held about the person, as plain JSON-ready data."""
    case_ids = [c.id for c in holdings.cases]
    contact_ids = [c.id for c in holdings.contacts]
    interactions = session.scalars(
        select(Interaction)
        .where(or_(Interaction.case_id.in_(case_ids), Interaction.contact_id.in_(contact_ids)))
        .order_by(Interaction.id)
    ).all()
    surveys = session.scalars(select(Survey).where(Survey.case_id.in_(case_ids))).all()
    return {
        "exported_at": utcnow().isoformat(),
        "contacts": [
            {
                "phone": c.phone,
                "language": c.language,
                "opted_out_at": _iso(c.opted_out_at),
                "created_at": _iso(c.created_at),
            }
            for c in holdings.contacts
        ],
        "cases": [
            {
                "tracking_number": c.tracking_number,
                "status": c.status,
                "channel": c.channel,
                "category": c.category,
                "department": c.department,
                "name": c.citizen_name,
                "national_id": c.national_id,
                "description": c.description,
                "created_at": _iso(c.created_at),
                "events": [
                    {"kind": e.kind, "at": _iso(e.at), "actor": e.actor, "text": e.text}
                    for e in c.events
                ],
            }
            for c in holdings.cases
        ],
        "messages": [
            {
                "direction": i.direction,
                "channel": i.channel,
                "at": _iso(i.created_at),
                "text": i.text,
                "media": i.media_urls,
            }
            for i in interactions
        ],
        "surveys": [
            {"case_id": s.case_id, "rating": s.rating, "comment": s.comment, "status": s.status}
            for s in surveys
        ],
    }


def erase_person(session: Session, holdings: Holdings) -> dict[str, int]:
    """Remove personal data; returns how many rows of each kind were touched."""
    now = utcnow()
    national_ids = {c.national_id for c in holdings.cases if c.national_id}
    case_ids = [c.id for c in holdings.cases]
    contact_ids = [c.id for c in holdings.contacts]
    touched = {"cases": len(case_ids), "contacts": len(contact_ids)}
    for case in holdings.cases:
        case.citizen_name = None
        case.national_id = None
        case.description = ERASED
        case.updated_at = now
    owned = or_(Interaction.case_id.in_(case_ids), Interaction.contact_id.in_(contact_ids))
    result = cast(
        CursorResult[Any],
        session.execute(
            update(Interaction)
            .where(owned)
            .values(text=ERASED, media_urls=None, address="erased")
            .execution_options(synchronize_session=False)
        ),
    )
    touched["messages"] = result.rowcount or 0
    session.execute(
        update(CaseEvent)
        .where(CaseEvent.case_id.in_(case_ids), CaseEvent.kind != "status_changed")
        .values(text=ERASED)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(OutboundMessage)
        .where(
            or_(OutboundMessage.case_id.in_(case_ids), OutboundMessage.contact_id.in_(contact_ids))
        )
        .values(body=ERASED, to_address="erased")
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.contact_id.in_(contact_ids),
            OutboundMessage.status.in_([MessageStatus.PENDING.value, MessageStatus.QUEUED.value]),
        )
        .values(status=MessageStatus.CANCELLED.value, error="erased on request")
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Survey)
        .where(Survey.case_id.in_(case_ids))
        .values(comment=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(CallbackRequest)
        .where(CallbackRequest.contact_id.in_(contact_ids))
        .values(phone=None, status="cancelled")
        .execution_options(synchronize_session=False)
    )
    for national_id in national_ids:
        forget_person(session, national_id)
    for contact in holdings.contacts:
        session.execute(delete(PersonPhone).where(PersonPhone.contact_id == contact.id))
        contact.phone = f"erased:{contact.id}"
        contact.language = None
        contact.conversation_case_id = None
        contact.pending_survey_id = None
        contact.opted_out_at = contact.opted_out_at or now  # never text an erased number again
    return touched

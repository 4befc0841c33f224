"""A person's data on request (data-protection law): everything we hold, and its erasure.

A person is found by phone (a contact point) or by national ID (recorded on cases), always
within the viewer's departments. Erasure keeps each case's skeleton (dates, category,
department, status) for the statistics, and removes every personal detail: phone, name, ID,
what they wrote or said, notes about them, calls we placed, call-backs, comments. Recordings
kept by a provider are returned to the caller (the gateway) to delete there.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, String, delete, false, or_, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from casestore.models import (
    AuditEvent,
    CallbackRequest,
    Case,
    CaseEvent,
    Contact,
    Interaction,
    MessageStatus,
    OutboundCall,
    OutboundMessage,
    PersonPhone,
    Survey,
    utcnow,
)
from casestore.people import ERASED_PHONE_PREFIX, forget_person, visible_contact

ERASED = "[borrado]"


@dataclass(frozen=True)
class Holdings:
    """What the viewer's departments hold about a person, and how many of the person's cases
    lie outside them (those make erasure an admin's action)."""

    contacts: list[Contact]
    cases: list[Case]
    departments: frozenset[str] | None
    outside: int = 0
    national_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Recording:
    """A recording or media file a provider keeps for one of the erased contacts."""

    provider: str
    url: str
    call_ref: str | None  # the provider's call id (Twilio CallSid), when known


@dataclass(frozen=True)
class Erasure:
    touched: dict[str, int]
    recordings: list[Recording] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)  # for the gateway's Redis keys, never stored


class ErasureRefused(Exception):
    """The person has cases in departments the viewer may not see: an admin erases them."""


def opaque_target() -> str:
    """An audit target that names no one: privacy actions never record a phone or an ID."""
    return f"person:{secrets.token_hex(8)}"


def find_person(
    session: Session,
    *,
    phone: str | None,
    national_id: str | None,
    departments: Collection[str] | None,
) -> Holdings:
    """The contacts and cases of this phone or national ID that these departments may see.

    `departments` is the viewer's (None only for an admin, who sees every department).
    """
    scope = None if departments is None else frozenset(departments)
    phone_contacts = (
        list(session.scalars(select(Contact).where(Contact.phone == phone))) if phone else []
    )
    terms: list[ColumnElement[bool]] = []
    if phone_contacts:
        terms.append(Case.contact_id.in_([c.id for c in phone_contacts]))
    if national_id:
        terms.append(Case.national_id == national_id)
    if not terms:
        return Holdings([], [], scope)
    everyone = list(session.scalars(select(Case).where(or_(*terms)).order_by(Case.id)))
    cases = [c for c in everyone if scope is None or c.department in scope]
    # The phones of the matched cases go with them (the API showed them after erasure).
    contact_ids = {c.id for c in phone_contacts} | {
        c.contact_id for c in cases if c.contact_id is not None
    }
    contacts = (
        list(
            session.scalars(
                select(Contact)
                .where(Contact.id.in_(contact_ids), visible_contact(scope))
                .order_by(Contact.id)
            )
        )
        if contact_ids
        else []
    )
    # Outside the viewer's reach: the person's other cases, and other cases on their phones
    # (erasing a phone takes it from those cases too).
    outside_terms = [*terms]
    if contacts:
        outside_terms.append(Case.contact_id.in_([c.id for c in contacts]))
    outside = 0
    if scope is not None:
        outside = len(
            session.scalars(
                select(Case.id).where(or_(*outside_terms), Case.department.not_in(list(scope)))
            ).all()
        )
    national_ids = {c.national_id for c in cases if c.national_id}
    if national_id and cases:
        national_ids.add(national_id)
    return Holdings(contacts, cases, scope, outside, frozenset(national_ids))


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _interactions(holdings: Holdings) -> ColumnElement[bool]:
    """The person's messages: those on their cases, and for an admin also the ones from their
    phones that belong to no case (a status look-up, a survey answer)."""
    terms: list[ColumnElement[bool]] = [Interaction.case_id.in_([c.id for c in holdings.cases])]
    if holdings.departments is None and holdings.contacts:
        terms.append(Interaction.contact_id.in_([c.id for c in holdings.contacts]))
    return or_(*terms) if terms else false()


def export_person(session: Session, holdings: Holdings) -> dict[str, Any]:
    """Everything held about the person, as plain JSON-ready data."""
    case_ids = [c.id for c in holdings.cases]
    interactions = session.scalars(
        select(Interaction).where(_interactions(holdings)).order_by(Interaction.id)
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


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount or 0


def _cancel_and_blank(
    session: Session,
    model: type[OutboundCall] | type[CallbackRequest],
    terms: list[ColumnElement[bool]],
    **blank: Any,
) -> int:
    """Cancel the person's pending calls (or call-backs) so none is placed, then blank the
    phone-bearing columns of every one of them; how many rows were blanked."""
    session.execute(
        update(model)
        .where(model.status == "pending", or_(*terms))
        .values(status="cancelled")
        .execution_options(synchronize_session=False)
    )
    return _rowcount(
        session.execute(
            update(model)
            .where(or_(*terms))
            .values(**blank)
            .execution_options(synchronize_session=False)
        )
    )


def _recordings(session: Session, owned: ColumnElement[bool]) -> list[Recording]:
    """Media the providers keep for these interactions (voice recordings, MMS)."""
    found: dict[str, Recording] = {}
    rows = session.execute(
        select(Interaction.provider, Interaction.provider_ref, Interaction.media_urls).where(
            owned, Interaction.media_urls.is_not(None)
        )
    ).all()
    for provider, ref, urls in rows:
        call_ref = ref.split(":", 1)[0] if ref else None
        for url in urls or ():
            if isinstance(url, str) and url.startswith(("https://", "http://")):
                found.setdefault(url, Recording(provider, url, call_ref))
    return list(found.values())


def _scrub(value: Any, secrets_: Collection[str]) -> Any:
    """`value` (JSON data) with every string that contains one of `secrets_` erased."""
    if isinstance(value, str):
        return ERASED if any(s in value for s in secrets_) else value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets_) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets_) for v in value]
    return value


def _scrub_audit(session: Session, secrets_: Collection[str]) -> int:
    """Audit rows that name a phone or national ID (older targets, API filters) keep their
    who/when/what but name no one any more."""
    if not secrets_:
        return 0
    terms: list[ColumnElement[bool]] = []
    for value in secrets_:
        terms.append(AuditEvent.target_id.contains(value, autoescape=True))
        terms.append(sql_cast(AuditEvent.detail, String).contains(value, autoescape=True))
    rows = session.scalars(select(AuditEvent).where(or_(*terms))).all()
    for row in rows:
        if any(s in row.target_id for s in secrets_):
            row.target_id = opaque_target()
        if row.detail is not None:
            row.detail = _scrub(row.detail, secrets_)
    return len(rows)


def erase_person(session: Session, holdings: Holdings) -> Erasure:
    """Remove personal data; returns the rows touched and what the providers still keep.

    Refused (ErasureRefused, nothing changed) when the person has cases outside the viewer's
    departments: only an admin erases those.
    """
    if holdings.departments is not None and holdings.outside:
        raise ErasureRefused(
            "Esta persona tiene pedidos en otras áreas: solo un administrador puede borrar "
            "sus datos. No se borró nada."
        )
    now = utcnow()
    case_ids = [c.id for c in holdings.cases]
    contact_ids = [c.id for c in holdings.contacts]
    phones = [c.phone for c in holdings.contacts if not c.phone.startswith(ERASED_PHONE_PREFIX)]
    names = {c.citizen_name for c in holdings.cases if c.citizen_name}
    touched = {"cases": len(case_ids), "contacts": len(contact_ids)}
    owned = or_(Interaction.case_id.in_(case_ids), Interaction.contact_id.in_(contact_ids))
    recordings = _recordings(session, owned)
    for case in holdings.cases:
        case.citizen_name = None
        case.national_id = None
        case.description = ERASED
        case.updated_at = now
    touched["messages"] = _rowcount(
        session.execute(
            update(Interaction)
            .where(owned)
            .values(text=ERASED, media_urls=None, address="erased")
            .execution_options(synchronize_session=False)
        )
    )
    # Every free text of the timeline: notes, messages, status-change notes, merges.
    touched["events"] = _rowcount(
        session.execute(
            update(CaseEvent)
            .where(CaseEvent.case_id.in_(case_ids), CaseEvent.text != "")
            .values(text=ERASED)
            .execution_options(synchronize_session=False)
        )
    )
    session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.contact_id.in_(contact_ids),
            OutboundMessage.status.in_([MessageStatus.PENDING.value, MessageStatus.QUEUED.value]),
        )
        .values(status=MessageStatus.CANCELLED.value)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(OutboundMessage)
        .where(
            or_(OutboundMessage.case_id.in_(case_ids), OutboundMessage.contact_id.in_(contact_ids))
        )
        .values(body=ERASED, to_address="erased", error=None)
        .execution_options(synchronize_session=False)
    )
    survey_ids = list(session.scalars(select(Survey.id).where(Survey.case_id.in_(case_ids))))
    session.execute(
        update(Survey)
        .where(Survey.id.in_(survey_ids))
        .values(comment=None)
        .execution_options(synchronize_session=False)
    )
    call_terms: list[ColumnElement[bool]] = [
        OutboundCall.contact_id.in_(contact_ids),
        OutboundCall.survey_id.in_(survey_ids),
    ]
    if phones:
        call_terms.append(OutboundCall.to_address.in_(phones))
    touched["calls"] = _cancel_and_blank(
        session, OutboundCall, call_terms, to_address="erased", error=None, message=None
    )
    callback_terms: list[ColumnElement[bool]] = [
        CallbackRequest.contact_id.in_(contact_ids),
        CallbackRequest.case_id.in_(case_ids),
    ]
    if phones:
        callback_terms.append(CallbackRequest.phone.in_(phones))
    touched["callbacks"] = _cancel_and_blank(session, CallbackRequest, callback_terms, phone=None)
    for national_id in holdings.national_ids:
        forget_person(session, national_id)
    for contact in holdings.contacts:
        session.execute(delete(PersonPhone).where(PersonPhone.contact_id == contact.id))
        contact.phone = f"{ERASED_PHONE_PREFIX}{contact.id}"
        contact.language = None
        contact.conversation_case_id = None
        contact.pending_survey_id = None
        contact.opted_out_at = contact.opted_out_at or now  # never text an erased number again
    session.flush()
    # A phone may have been typed without its "+" (an API filter): match the digits too.
    secrets_ = {*phones, *(p.lstrip("+") for p in phones), *holdings.national_ids, *names}
    touched["audit"] = _scrub_audit(session, secrets_)
    return Erasure(touched, recordings, phones)

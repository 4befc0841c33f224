"""Case operations for the console, API and jobs (ORM; the session belongs to the caller)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, selectinload

from casestore.models import AuditEvent, Case, CaseEvent, CaseStatus, Contact, utcnow
from casestore.status import check_transition, parse_status


class BadCursor(ValueError):
    """The pagination cursor was not one this API issued."""


@dataclass(frozen=True)
class CaseFilter:
    departments: Collection[str] | None  # None: every department (admin)
    contact_phone: str | None = None
    status: str | None = None
    department: str | None = None
    q: str | None = None


def visible(departments: Collection[str] | None) -> Select[Case]:
    query = select(Case)
    if departments is not None:
        query = query.where(Case.department.in_(list(departments)))
    return query


def encode_cursor(case: Case) -> str:
    raw = f"{case.created_at.isoformat()}|{case.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, ident = raw.partition("|")
        return datetime.fromisoformat(when), int(ident)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadCursor("invalid cursor") from exc


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
    if flt.q:
        digits = "".join(ch for ch in flt.q if ch.isdigit())
        text = flt.q.strip()
        terms = [Case.description.ilike(f"%{text}%")]
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
    session: Session, tracking_number: str, departments: Collection[str] | None
) -> Case | None:
    query = visible(departments).where(Case.tracking_number == tracking_number)
    return session.scalars(query.options(selectinload(Case.events))).first()


def change_status(
    session: Session, case: Case, target: str, *, actor: str, note: str = ""
) -> CaseEvent:
    """Move a case along the transition table and write the timeline event."""
    new = parse_status(target)
    current = CaseStatus(case.status)
    check_transition(current, new)
    now = utcnow()
    case.status = new.value
    case.updated_at = now
    if new is CaseStatus.RESOLVED:
        case.resolved_at = now
    elif new is CaseStatus.CLOSED:
        case.closed_at = now
        case.resolved_at = case.resolved_at or now
    elif new is CaseStatus.IN_PROGRESS and current in (CaseStatus.RESOLVED, CaseStatus.CLOSED):
        case.resolved_at = None
        case.closed_at = None
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
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            detail=detail,
        )
    )

"""Case operations for the console, API and jobs (ORM; the session belongs to the caller)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, selectinload

from casestore.config import Config
from casestore.models import AuditEvent, Case, CaseEvent, CaseStatus, Contact, utcnow
from casestore.status import check_transition, parse_status
from feedback.surveys import schedule_survey


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


def change_status(
    session: Session,
    case: Case,
    target: str,
    *,
    actor: str,
    note: str = "",
    config: Config | None = None,
) -> CaseEvent:
    """Move a case along the transition table and write the timeline event.

    With the deployment config, closing a case also schedules its satisfaction survey.
    """
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
    if new is CaseStatus.CLOSED and config is not None:
        session.flush()
        schedule_survey(session, case, config, now)
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

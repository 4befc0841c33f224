"""Numbers that went over an abuse limit with no case to join ([limits]): their messages are
kept unlinked, and this is where operators find them (the console's list of limited numbers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casestore.models import Contact, Direction, Interaction


@dataclass(frozen=True)
class UnlinkedMessage:
    at: datetime
    channel: str
    text: str


@dataclass(frozen=True)
class LimitedNumber:
    contact_id: int
    phone: str
    limit: str | None  # the [limits] key it went over last
    at: datetime
    unlinked: int  # inbound messages kept with no case
    messages: tuple[UnlinkedMessage, ...]  # the newest of them


def count_limited_numbers(session: Session) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(Contact).where(Contact.limit_hit_at.is_not(None))
        )
        or 0
    )


def limited_numbers(
    session: Session, *, max_numbers: int = 100, max_messages: int = 50
) -> list[LimitedNumber]:
    """Marked numbers, the most recent first, each with its newest unlinked inbound messages."""
    contacts = session.scalars(
        select(Contact)
        .where(Contact.limit_hit_at.is_not(None))
        .order_by(Contact.limit_hit_at.desc(), Contact.id.desc())
        .limit(max_numbers)
    ).all()
    found = []
    for contact in contacts:
        unlinked = (
            Interaction.contact_id == contact.id,
            Interaction.case_id.is_(None),
            Interaction.direction == Direction.IN.value,
        )
        total = session.scalar(select(func.count()).select_from(Interaction).where(*unlinked))
        rows = session.scalars(
            select(Interaction)
            .where(*unlinked)
            .order_by(Interaction.created_at.desc(), Interaction.id.desc())
            .limit(max_messages)
        ).all()
        assert contact.limit_hit_at is not None
        found.append(
            LimitedNumber(
                contact_id=contact.id,
                phone=contact.phone,
                limit=contact.limit_hit,
                at=contact.limit_hit_at,
                unlinked=int(total or 0),
                messages=tuple(UnlinkedMessage(i.created_at, i.channel, i.text) for i in rows),
            )
        )
    return found


def mark_reviewed(session: Session, contact_id: int) -> str | None:
    """An operator has read a limited number's messages: off the list until it floods again.
    Returns the phone, or None when no marked number has that id."""
    contact = session.get(Contact, contact_id)
    if contact is None or contact.limit_hit_at is None:
        return None
    contact.limit_hit_at = None
    contact.limit_hit = None
    return contact.phone

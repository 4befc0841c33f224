"""Dead letters: contacts acknowledged to the provider that the database refused to store.

They are kept raw (the payload as JSON with every non-ASCII character escaped, so even a NUL
is storable) for an operator to read, re-enter by hand and mark as handled.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from casestore.fit import clip, column_length, fit_ref
from casestore.models import DeadLetter


@dataclass(frozen=True)
class Letter:
    """What is kept of one refused contact."""

    received_at: datetime
    channel: str
    provider: str
    route: str
    provider_ref: str | None
    department: str | None
    fields: Mapping[str, str]
    error: str


def encode_payload(fields: Mapping[str, str]) -> str:
    """The fields as ASCII-only JSON: every value survives, whatever the database accepts."""
    return json.dumps(dict(fields), ensure_ascii=True, sort_keys=True)


def _ascii(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii")


def keep(session: Session, letter: Letter) -> int:
    """Insert one dead letter; returns its id."""
    row = DeadLetter(
        received_at=letter.received_at,
        channel=clip(letter.channel, column_length(DeadLetter.channel)),
        provider=clip(letter.provider, column_length(DeadLetter.provider)),
        route=clip(letter.route, column_length(DeadLetter.route)),
        provider_ref=None
        if letter.provider_ref is None
        else fit_ref(_ascii(letter.provider_ref), column_length(DeadLetter.provider_ref)),
        department=letter.department,
        payload=encode_payload(letter.fields),
        error=_ascii(letter.error),
    )
    session.add(row)
    session.flush()
    return row.id


def visible(departments: Collection[str] | None) -> ColumnElement[bool]:
    """The letters a viewer may see: admins (None) all; others their departments' only
    (a letter of unknown department could be anyone's: admins only)."""
    if departments is None:
        return true()
    return DeadLetter.department.in_(list(departments))


def open_letters(
    session: Session, departments: Collection[str] | None, *, include_resolved: bool = False
) -> list[DeadLetter]:
    """Unhandled letters (all with `include_resolved`) the viewer may see, oldest first."""
    query = select(DeadLetter).where(visible(departments))
    if not include_resolved:
        query = query.where(DeadLetter.resolved_at.is_(None))
    return list(session.scalars(query.order_by(DeadLetter.received_at, DeadLetter.id)))


def resolve(
    session: Session,
    letter_id: int,
    actor: str,
    departments: Collection[str] | None,
    now: datetime,
) -> bool:
    """Mark a letter the viewer may see as handled; False when there is no such letter."""
    row = session.scalar(select(DeadLetter).where(DeadLetter.id == letter_id, visible(departments)))
    if row is None:
        return False
    if row.resolved_at is None:
        row.resolved_at = now
        row.resolved_by = clip(actor, column_length(DeadLetter.resolved_by))
    return True

"""The outbox: claiming rows to send, recording results, delivery reports, and sweeping.

Each row is sent at most once per claim: a row moves pending -> queued (dispatcher) -> sending
(claimed with a lease by exactly one worker) -> sent/failed/recorded. A worker that dies leaves
`sending` with an expired lease; the sweeper puts such rows back and marks them as possibly
sent, and rows lost from Redis (queued too long) go back to pending.

The worker claims and records a whole batch per statement (`claim_batch`, `record_sent`);
`claim` and `mark_*` do the same for one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import assert_never, cast

from sqlalchemy import Connection, Table, bindparam, case, or_, select, update
from sqlalchemy.orm import Session

from casestore.fit import clip, column_length
from casestore.inbound import StatusUpdate
from casestore.leases import Leased
from casestore.models import Contact, Interaction, MessageStatus, OutboundMessage
from casestore.reach import mark_not_sms_capable, unreachable_code

outbox = cast(Table, OutboundMessage.__table__)
contacts = cast(Table, Contact.__table__)
interactions = cast(Table, Interaction.__table__)

MAX_ATTEMPTS = 8
# Delays before retry 1, 2, 3…; the last repeats.
BACKOFF = (
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
)
LEASED = Leased(
    outbox,
    pending=MessageStatus.PENDING.value,
    queued=MessageStatus.QUEUED.value,
    working=MessageStatus.SENDING.value,
    failed=MessageStatus.FAILED.value,
    cancelled=MessageStatus.CANCELLED.value,
    max_attempts=MAX_ATTEMPTS,
    backoff=BACKOFF,
)


def status_rank(status: MessageStatus) -> int:
    """How far along a message is: late or repeated delivery reports never move it backwards."""
    match status:
        case MessageStatus.PENDING | MessageStatus.QUEUED | MessageStatus.SENDING:
            return 0
        case MessageStatus.SENT | MessageStatus.RECORDED:
            return 1
        case (
            MessageStatus.DELIVERED
            | MessageStatus.UNDELIVERED
            | MessageStatus.FAILED
            | MessageStatus.CANCELLED
        ):
            return 2
        case _:
            assert_never(status)


ERROR_CODE_LENGTH = column_length(OutboundMessage.error_code)
PROVIDER_STATUS_LENGTH = column_length(OutboundMessage.provider_status)


@dataclass(frozen=True)
class Claimed:
    id: int
    provider: str
    to_address: str
    body: str
    kind: str
    attempts: int
    contact_opted_out: bool
    interaction_id: int | None = None


# Written on a row resent after a dead worker when the provider could not be asked; kept when
# the resend succeeds, so the possible duplicate stays visible.
POSSIBLE_DUPLICATE = "possible_duplicate"
CLAIMABLE = (MessageStatus.PENDING.value, MessageStatus.QUEUED.value)


def take_due(conn: Connection, now: datetime, limit: int = 500) -> list[int]:
    """Mark up to `limit` due pending rows as queued and return their ids (the dispatcher)."""
    return LEASED.take_due(conn, now, limit)


def claim(conn: Connection, message_id: int, now: datetime) -> Claimed | None:
    """Take the row for sending, with a lease; None if another worker has it or it is done."""
    row = conn.execute(
        LEASED.claim(outbox.c.id == message_id, now).returning(
            outbox.c.id,
            outbox.c.provider,
            outbox.c.to_address,
            outbox.c.body,
            outbox.c.kind,
            outbox.c.attempts,
            outbox.c.contact_id,
        )
    ).first()
    if row is None:
        return None
    opted_out = False
    if row.contact_id is not None:
        contact = conn.execute(
            select(contacts.c.opted_out_at, contacts.c.provider_opted_out_at).where(
                contacts.c.id == row.contact_id
            )
        ).one()
        opted_out = contact.opted_out_at is not None or contact.provider_opted_out_at is not None
    return Claimed(
        id=row.id,
        provider=row.provider,
        to_address=row.to_address,
        body=row.body,
        kind=row.kind,
        attempts=row.attempts,
        contact_opted_out=opted_out,
    )


def claim_batch(conn: Connection, message_ids: Sequence[int], now: datetime) -> list[Claimed]:
    """`claim` for many rows in one statement: the claimable ones, in id order."""
    if not message_ids:
        return []
    rows = conn.execute(
        LEASED.claim(outbox.c.id.in_(message_ids), now).returning(
            outbox.c.id,
            outbox.c.provider,
            outbox.c.to_address,
            outbox.c.body,
            outbox.c.kind,
            outbox.c.attempts,
            outbox.c.contact_id,
            outbox.c.interaction_id,
        )
    ).all()
    contact_ids = {r.contact_id for r in rows if r.contact_id is not None}
    opted_out: set[int] = set()
    if contact_ids:
        opted_out = {
            int(c.id)
            for c in conn.execute(
                select(contacts.c.id).where(
                    contacts.c.id.in_(contact_ids),
                    or_(
                        contacts.c.opted_out_at.is_not(None),
                        contacts.c.provider_opted_out_at.is_not(None),
                    ),
                )
            )
        }
    return sorted(
        (
            Claimed(
                id=r.id,
                provider=r.provider,
                to_address=r.to_address,
                body=r.body,
                kind=r.kind,
                attempts=r.attempts,
                contact_opted_out=r.contact_id in opted_out,
                interaction_id=r.interaction_id,
            )
            for r in rows
        ),
        key=lambda c: c.id,
    )


def release(conn: Connection, message_ids: Sequence[int], until: datetime, now: datetime) -> int:
    """Hand claimed rows back unsent, due again at `until` (the claim's attempt is undone)."""
    if not message_ids:
        return 0
    count = conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(message_ids), outbox.c.status == MessageStatus.SENDING.value)
        .values(
            status=MessageStatus.PENDING.value,
            lease_until=None,
            next_attempt_at=until,
            attempts=outbox.c.attempts - 1,
            updated_at=now,
        )
    ).rowcount
    return int(count or 0)


def defer(conn: Connection, message_ids: Sequence[int], until: datetime, now: datetime) -> int:
    """Put queued rows back to pending, due at `until` (their sender has no slot before)."""
    if not message_ids:
        return 0
    count = conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(message_ids), outbox.c.status == MessageStatus.QUEUED.value)
        .values(status=MessageStatus.PENDING.value, next_attempt_at=until, updated_at=now)
    ).rowcount
    return int(count or 0)


@dataclass(frozen=True)
class Sent:
    """A provider's acceptance of one claimed row, to record."""

    message_id: int
    interaction_id: int | None
    provider_ref: str
    provider_status: str


def _sent_status(provider_status: str) -> str:
    status = MessageStatus.RECORDED if provider_status == "recorded" else MessageStatus.SENT
    return status.value


# A possible duplicate's note survives the successful resend; any other error is cleared.
_KEPT_ERROR = case((outbox.c.error_code == POSSIBLE_DUPLICATE, outbox.c.error), else_=None)


def record_sent(conn: Connection, sent: Sequence[Sent], now: datetime) -> None:
    """`mark_sent` for many rows: two executemany statements, whatever the count."""
    if not sent:
        return
    conn.execute(
        update(outbox)
        .where(outbox.c.id == bindparam("b_id"))
        .values(
            status=bindparam("b_status"),
            provider_ref=bindparam("b_ref"),
            provider_status=bindparam("b_provider_status"),
            lease_until=None,
            sent_at=now,
            updated_at=now,
            error=_KEPT_ERROR,
        ),
        [
            {
                "b_id": s.message_id,
                "b_status": _sent_status(s.provider_status),
                "b_ref": s.provider_ref,
                "b_provider_status": s.provider_status,
            }
            for s in sent
        ],
    )
    linked = [
        {"b_iid": s.interaction_id, "b_ref": s.provider_ref}
        for s in sent
        if s.interaction_id is not None
    ]
    if linked:
        conn.execute(
            update(interactions)
            .where(interactions.c.id == bindparam("b_iid"))
            .values(provider_ref=bindparam("b_ref")),
            linked,
        )


def mark_sent(
    conn: Connection, message_id: int, provider_ref: str, provider_status: str, now: datetime
) -> None:
    conn.execute(
        update(outbox)
        .where(outbox.c.id == message_id)
        .values(
            status=_sent_status(provider_status),
            provider_ref=provider_ref,
            provider_status=provider_status,
            lease_until=None,
            sent_at=now,
            updated_at=now,
            error=_KEPT_ERROR,
        )
    )
    conn.execute(
        update(interactions)
        .where(
            interactions.c.id
            == select(outbox.c.interaction_id).where(outbox.c.id == message_id).scalar_subquery()
        )
        .values(provider_ref=provider_ref)
    )


def mark_cancelled(conn: Connection, message_id: int, reason: str, now: datetime) -> None:
    LEASED.cancel(conn, message_id, reason, now)


def mark_failed(
    conn: Connection,
    message_id: int,
    *,
    reason: str,
    code: str | None,
    retryable: bool,
    attempts: int,
    now: datetime,
    opted_out: bool = False,
) -> str:
    """Record a failed send: back to pending after a backoff, or failed for good."""
    status = LEASED.fail(
        conn,
        message_id,
        reason=reason,
        retryable=retryable,
        attempts=attempts,
        now=now,
        error_code=code,
    )
    if opted_out:
        contact_id = select(outbox.c.contact_id).where(outbox.c.id == message_id)
        conn.execute(
            update(contacts)
            .where(contacts.c.id == contact_id.scalar_subquery())
            .values(provider_opted_out_at=now)
        )
    if code is not None:
        row = conn.execute(
            select(outbox.c.provider, outbox.c.contact_id).where(outbox.c.id == message_id)
        ).first()
        if row is not None:
            _note_unreachable(conn, row.provider, row.contact_id, code, now)
    return status


def _note_unreachable(
    conn: Connection, provider: str, contact_id: int | None, code: str | None, now: datetime
) -> None:
    """A provider said SMS cannot reach this number (a landline): later notices go by call."""
    if contact_id is not None and unreachable_code(provider, code):
        mark_not_sms_capable(conn, contact_id, f"{provider}:{code}", now)


def messages_of_case(session: Session, case_id: int) -> list[OutboundMessage]:
    """The messages the app sent (or is sending, or gave up on) for one case, oldest first."""
    return list(
        session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.case_id == case_id)
            .order_by(OutboundMessage.id)
        )
    )


def apply_status(conn: Connection, report: StatusUpdate, now: datetime) -> bool:
    """Apply a delivery report; idempotent, never moves a message backwards. False if unknown."""
    row = conn.execute(
        select(outbox.c.id, outbox.c.status, outbox.c.contact_id).where(
            outbox.c.provider == report.provider, outbox.c.provider_ref == report.provider_ref
        )
    ).first()
    if row is None:
        return False
    new = MessageStatus(report.status)
    if status_rank(new) >= status_rank(MessageStatus(row.status)) and row.status != new.value:
        conn.execute(
            update(outbox)
            .where(outbox.c.id == row.id)
            .values(
                status=new.value,
                provider_status=clip(report.provider_status, PROVIDER_STATUS_LENGTH),
                # Provider text of any length: the column keeps what fits.
                error_code=None
                if report.error_code is None
                else clip(report.error_code, ERROR_CODE_LENGTH),
                error=report.error,
                updated_at=now,
            )
        )
    if report.error_code is not None:
        _note_unreachable(conn, report.provider, row.contact_id, report.error_code, now)
    if report.opted_out and row.contact_id is not None:
        conn.execute(
            update(contacts)
            .where(contacts.c.id == row.contact_id, contacts.c.provider_opted_out_at.is_(None))
            .values(provider_opted_out_at=now)
        )
    return True


def sweep(conn: Connection, now: datetime) -> int:
    """Put back rows lost from Redis (queued for too long); returns how many."""
    return LEASED.requeue_lost(conn, now)


@dataclass(frozen=True)
class Unsettled:
    """A row whose sender died mid-send: the provider may or may not have it."""

    id: int
    provider: str
    to_address: str
    body: str
    since: datetime


def take_expired_leases(conn: Connection, now: datetime, limit: int = 200) -> list[Unsettled]:
    """Rows stuck in `sending` past their lease, claimed (a fresh lease) for reconciliation."""
    rows = LEASED.take_expired(conn, now, limit, ("id", "provider", "to_address", "body"))
    since = LEASED.since(now)
    return [Unsettled(r.id, r.provider, r.to_address, r.body, since) for r in rows]


def settle(
    conn: Connection, message_id: int, now: datetime, *, found_ref: str | None, could_ask: bool
) -> str:
    """After a provider look-up: sent (found), or back to pending to resend.

    A provider that cannot be asked gets the message again, and the possible duplicate is
    written on the row so people can see it.
    """
    if found_ref is not None:
        mark_sent(conn, message_id, found_ref, "reconciled", now)
        return MessageStatus.SENT.value
    note = (
        "worker stopped while sending; the provider has no such message: resent"
        if could_ask
        else "worker stopped while sending; the provider cannot be asked: resent, may duplicate"
    )
    LEASED.redo(
        conn, message_id, now, error=note, error_code=None if could_ask else POSSIBLE_DUPLICATE
    )
    return MessageStatus.PENDING.value

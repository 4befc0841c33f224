"""Calls the app starts: the outbound_calls rows are their outbox.

A row moves pending -> queued (dispatcher) -> calling (claimed with a lease by one worker) ->
placed (the provider is dialling) or recorded (the outbox provider only wrote it down) ->
answered -> completed, or unanswered / failed / cancelled. A provider's later reports never
move a row backwards. The missed-call rules (one open call-back per number, a daily cap,
nothing for withheld numbers) live here too; the routes only ask.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import assert_never, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, and_, func, select, update
from sqlalchemy.orm import Session

from casestore.intake import upsert_contact
from casestore.leases import LEASE as LEASE
from casestore.leases import QUEUED_TIMEOUT as QUEUED_TIMEOUT
from casestore.leases import Leased
from casestore.models import Contact, OutboundCall
from casestore.reach import note_presented_number
from casestore.states import CallStatus as CallStatus
from sms.phone import FIXED_LINE, contact_key, sms_unreachable_reason

calls = cast(Table, OutboundCall.__table__)
contacts = cast(Table, Contact.__table__)

# A call-back that cannot get through in a few tries is not worth ringing hours later.
MAX_ATTEMPTS = 5
BACKOFF = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
)
MAY_RING_TWICE = "worker stopped while calling: this call may ring twice"
MISSED_CALL = "missed_call"
# Rings an operator's phone to bridge a waiting caller: placed by the console at once and
# written here already placed (or recorded), never pending, so the worker never dials it.
OPERATOR_BRIDGE = "operator_bridge"
SURVEY = "survey"  # a voice survey's question (feedback.voice); the row names its survey


# Not dialled yet: a second missed call while one of these exists adds nothing.
UNDIALLED = (CallStatus.PENDING, CallStatus.QUEUED, CallStatus.CALLING)


def status_rank(status: CallStatus) -> int:
    """How far along a call is: a provider's later reports never move it backwards."""
    match status:
        case CallStatus.PENDING | CallStatus.QUEUED | CallStatus.CALLING:
            return 0
        case CallStatus.PLACED | CallStatus.RECORDED:
            return 1
        case CallStatus.ANSWERED:
            return 2
        case (
            CallStatus.COMPLETED | CallStatus.UNANSWERED | CallStatus.FAILED | CallStatus.CANCELLED
        ):
            return 3
        case _:
            assert_never(status)


LEASED = Leased(
    calls,
    pending=CallStatus.PENDING.value,
    queued=CallStatus.QUEUED.value,
    working=CallStatus.CALLING.value,
    failed=CallStatus.FAILED.value,
    cancelled=CallStatus.CANCELLED.value,
    max_attempts=MAX_ATTEMPTS,
    backoff=BACKOFF,
)


def _values(statuses: Iterable[CallStatus]) -> list[str]:
    return [s.value for s in statuses]


# ---------------------------------------------------------------- the worker's side


@dataclass(frozen=True)
class ClaimedCall:
    id: int
    provider: str
    to_address: str
    kind: str
    language: str | None
    attempts: int
    contact_opted_out: bool
    survey_id: int | None = None


def take_due(conn: Connection, now: datetime, limit: int = 500) -> list[int]:
    """Mark up to `limit` due pending calls as queued and return their ids (the dispatcher)."""
    return LEASED.take_due(conn, now, limit)


def claim(conn: Connection, call_id: int, now: datetime) -> ClaimedCall | None:
    """Take the call for dialling, with a lease; None if another worker has it or it is done."""
    row = conn.execute(
        LEASED.claim(calls.c.id == call_id, now).returning(
            calls.c.id,
            calls.c.provider,
            calls.c.to_address,
            calls.c.kind,
            calls.c.language,
            calls.c.attempts,
            calls.c.contact_id,
            calls.c.survey_id,
        )
    ).first()
    if row is None:
        return None
    opted_out = False
    if row.contact_id is not None:
        contact = conn.execute(
            select(contacts.c.opted_out_at).where(contacts.c.id == row.contact_id)
        ).one()
        opted_out = contact.opted_out_at is not None
    return ClaimedCall(
        id=row.id,
        provider=row.provider,
        to_address=row.to_address,
        kind=row.kind,
        language=row.language,
        attempts=row.attempts,
        contact_opted_out=opted_out,
        survey_id=row.survey_id,
    )


def mark_placed(
    conn: Connection, call_id: int, provider_ref: str, provider_status: str, now: datetime
) -> None:
    """The provider took the call (or the outbox recorded it)."""
    status = CallStatus.RECORDED if provider_status == "recorded" else CallStatus.PLACED
    conn.execute(
        update(calls)
        .where(calls.c.id == call_id)
        .values(
            status=status.value,
            provider_ref=provider_ref,
            lease_until=None,
            error=None,
            updated_at=now,
        )
    )


def mark_failed(
    conn: Connection,
    call_id: int,
    *,
    reason: str,
    retryable: bool,
    attempts: int,
    now: datetime,
) -> str:
    """A failed attempt: back to pending after a backoff, or failed for good."""
    return LEASED.fail(
        conn, call_id, reason=reason, retryable=retryable, attempts=attempts, now=now
    )


def mark_cancelled(conn: Connection, call_id: int, reason: str, now: datetime) -> None:
    LEASED.cancel(conn, call_id, reason, now)


def sweep(conn: Connection, now: datetime) -> int:
    """Put back calls lost from Redis; returns how many.

    A call whose lease ran out (its worker died while dialling) is not redialled here: the
    worker's sweeper claims it with `take_expired_leases` and asks the provider first; any
    beyond that batch wait for the next sweep, as interrupted messages do.
    """
    return LEASED.requeue_lost(conn, now)


@dataclass(frozen=True)
class UnsettledCall:
    """A call whose worker died while dialling: the provider may or may not have it."""

    id: int
    provider: str
    to_address: str
    since: datetime


def take_expired_leases(conn: Connection, now: datetime, limit: int = 200) -> list[UnsettledCall]:
    """Calls stuck in `calling` past their lease, claimed (a fresh lease) to ask the provider
    whether they were placed before any redial (as casestore.outbox does for messages)."""
    rows = LEASED.take_expired(conn, now, limit, ("id", "provider", "to_address"))
    since = LEASED.since(now)
    return [UnsettledCall(r.id, r.provider, r.to_address, since) for r in rows]


def settle(
    conn: Connection, call_id: int, now: datetime, *, found_ref: str | None, could_ask: bool
) -> None:
    """After asking the provider: placed (found), or dialled again (not found, or unknowable:
    then the row says the citizen may hear it ring twice)."""
    if found_ref is not None:
        mark_placed(conn, call_id, found_ref, "reconciled", now)
        return
    error = (
        "worker stopped while calling; the provider has no such call: dialled again"
        if could_ask
        else MAY_RING_TWICE
    )
    LEASED.redo(conn, call_id, now, error=error)


# ---------------------------------------------------------------- missed-call call-backs


class MissedCall(enum.StrEnum):
    """What a missed call led to."""

    QUEUED = "queued"  # a call-back row was written
    ALREADY_OPEN = "already_open"  # one is waiting to be dialled already
    LIMITED = "limited"  # the number reached its daily cap
    WITHHELD = "withheld"  # no number to call back


def local_day_start(now: datetime, timezone: ZoneInfo) -> datetime:
    """Midnight of `now`'s day in the deployment's zone (the daily cap resets then)."""
    local = now.astimezone(timezone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def request_missed_call_callback(
    session: Session,
    *,
    phone: str | None,
    provider: str,
    limit_per_day: int,
    timezone: ZoneInfo,
    now: datetime,
) -> MissedCall:
    """Write a call-back for a missed call unless one is open or the day's cap is reached."""
    if phone is None:
        return MissedCall.WITHHELD
    conn = session.connection()
    key = contact_key(phone)
    contact = upsert_contact(conn, key, now, "voice")
    note_presented_number(conn, contact.id, phone, now)
    # A landline is called back on the landline, not on the mobile form of its digits.
    address = phone if sms_unreachable_reason(phone) == FIXED_LINE else key
    if conn.dialect.name == "postgresql":
        # Two missed calls at once from one number: serialise on the contact so the cap holds.
        # (SQLite transactions here begin IMMEDIATE, which serialises them already.)
        conn.execute(select(contacts.c.id).where(contacts.c.id == contact.id).with_for_update())
    mine = and_(calls.c.kind == MISSED_CALL, calls.c.to_address == address)
    open_call = conn.execute(
        select(calls.c.id).where(mine, calls.c.status.in_(_values(UNDIALLED))).limit(1)
    ).first()
    if open_call is not None:
        return MissedCall.ALREADY_OPEN
    today = conn.execute(
        select(func.count())
        .select_from(calls)
        .where(
            mine,
            calls.c.created_at >= local_day_start(now, timezone),
            calls.c.status.not_in(_values((CallStatus.FAILED, CallStatus.CANCELLED))),
        )
    ).scalar_one()
    if today >= limit_per_day:
        return MissedCall.LIMITED
    session.add(
        OutboundCall(
            contact_id=contact.id,
            kind=MISSED_CALL,
            provider=provider,
            to_address=address,
            status=CallStatus.PENDING.value,
            language=contact.language,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    session.flush()
    return MissedCall.QUEUED


# ---------------------------------------------------------------- the call comes back


@dataclass(frozen=True)
class PlacedCall:
    """An outbound call of ours that a provider's callback refers to."""

    id: int
    kind: str
    to_address: str
    language: str | None
    status: str


def _advance(session: Session, call: OutboundCall, status: CallStatus, now: datetime) -> None:
    if status_rank(status) > status_rank(CallStatus(call.status)):
        call.status = status.value
        call.updated_at = now


def find_placed(session: Session, provider: str, provider_ref: str) -> OutboundCall | None:
    return session.scalar(
        select(OutboundCall).where(
            OutboundCall.provider == provider, OutboundCall.provider_ref == provider_ref
        )
    )


def mark_answered(
    session: Session, provider: str, provider_ref: str, now: datetime
) -> PlacedCall | None:
    """The citizen picked up a call we placed; None when the reference is not one of ours."""
    call = find_placed(session, provider, provider_ref)
    if call is None:
        return None
    _advance(session, call, CallStatus.ANSWERED, now)
    session.flush()
    return PlacedCall(call.id, call.kind, call.to_address, call.language, call.status)


def mark_finished(
    session: Session,
    provider: str,
    provider_ref: str,
    *,
    status: CallStatus,
    reason: str | None,
    now: datetime,
) -> bool:
    """The provider's last word on a call; never moves it backwards. False if not ours."""
    call = find_placed(session, provider, provider_ref)
    if call is None:
        return False
    before = call.status
    _advance(session, call, status, now)
    if call.status != before and reason and status in (CallStatus.UNANSWERED, CallStatus.FAILED):
        call.error = reason[:500]
    session.flush()
    return True


def mark_ended(
    session: Session, provider: str, provider_ref: str, *, reason: str | None, now: datetime
) -> bool:
    """The call is over: completed if the citizen had answered, else unanswered."""
    call = find_placed(session, provider, provider_ref)
    if call is None:
        return False
    answered = call.status == CallStatus.ANSWERED.value
    status = CallStatus.COMPLETED if answered else CallStatus.UNANSWERED
    return mark_finished(session, provider, provider_ref, status=status, reason=reason, now=now)


def recorded_calls(session: Session, phone: str) -> list[OutboundCall]:
    """Calls the outbox provider recorded for this phone, oldest first (the simulator rings)."""
    return list(
        session.scalars(
            select(OutboundCall)
            .where(
                OutboundCall.to_address.in_({contact_key(phone), phone}),  # landline too
                OutboundCall.status == CallStatus.RECORDED.value,
            )
            .order_by(OutboundCall.id)
        )
    )


def answer_recorded_call(session: Session, call_id: int, now: datetime) -> PlacedCall | None:
    """The simulator picked up a recorded call; None if there is no such call waiting."""
    call = session.get(OutboundCall, call_id)
    if call is None or call.status != CallStatus.RECORDED.value:
        return None
    _advance(session, call, CallStatus.ANSWERED, now)
    session.flush()
    return PlacedCall(call.id, call.kind, call.to_address, call.language, call.status)

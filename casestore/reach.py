"""Who can take an SMS, and how to reach those who cannot: by a notice call.

A contact is keyed by the mobile form of its number (sms.phone.contact_key), so whether it
takes SMS is kept on the row: a call from a landline (its type, as the network presented it)
or a provider's "landline or unreachable carrier" (Twilio 30006, Africa's Talking
UnsupportedNumberType) marks it; the citizen texting us later proves a mobile after all.
Status changes for such a citizen become notice calls that say the message (kind "notice"),
placed by the worker like every outbound call.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Table, insert, update
from sqlalchemy.orm import Session

from casestore.models import (
    CallStatus,
    Contact,
    OutboundCall,
)
from sms.phone import FIXED_LINE, can_receive_sms, sms_unreachable_reason

contacts = cast(Table, Contact.__table__)
calls_t = cast(Table, OutboundCall.__table__)

# outbound_calls.kind of a call that says a message (casestore.calls lists the other kinds).
NOTICE = "notice"

# Provider codes that mean "SMS cannot reach this number" (send-time errors and delivery
# reports). Twilio: 30006 landline or unreachable carrier, 30005 unknown destination handset
# (the number does not take SMS: a call may still reach it), 21614 "To" is not a mobile
# number. Not 30003 (handset off or out of coverage): that passes. Africa's Talking:
# UnsupportedNumberType (status 404) and InvalidPhoneNumber (403).
SMS_UNREACHABLE = {
    "twilio": frozenset({"30005", "30006", "21614"}),
    "africastalking": frozenset({"UnsupportedNumberType", "InvalidPhoneNumber"}),
}


def unreachable_code(provider: str, code: str | None) -> bool:
    """True when the provider's error code says SMS cannot reach the number at all."""
    return code is not None and code in SMS_UNREACHABLE.get(provider, frozenset())


def note_presented_number(conn: Connection, contact_id: int, presented: str, now: datetime) -> None:
    """A call came from `presented` (as the network showed it): a landline by its type makes
    the contact not SMS-capable, unless that phone has texted us (then it is a mobile)."""
    reason = sms_unreachable_reason(presented)
    if reason is None:
        return
    conn.execute(
        update(contacts)
        .where(
            contacts.c.id == contact_id,
            contacts.c.sms_capable.is_(True),
            contacts.c.inbound_window.is_(None),  # never texted us
        )
        .values(sms_capable=False, sms_capable_reason=reason, sms_capable_at=now)
    )


def mark_not_sms_capable(conn: Connection, contact_id: int, reason: str, now: datetime) -> bool:
    """Record that SMS cannot reach this contact (a provider's delivery error); True if new."""
    result = conn.execute(
        update(contacts)
        .where(contacts.c.id == contact_id, contacts.c.sms_capable.is_(True))
        .values(sms_capable=False, sms_capable_reason=reason[:40], sms_capable_at=now)
    )
    return bool(result.rowcount)


def can_text(contact: Contact) -> bool:
    """True when an SMS to this contact can arrive."""
    if contact.sms_capable:
        return can_receive_sms(contact.phone)
    # Marked by the number's type, but the citizen texted us since: a mobile after all.
    return (
        contact.sms_capable_reason == FIXED_LINE
        and contact.inbound_window is not None
        and contact.sms_capable_at is not None
        and contact.inbound_window >= contact.sms_capable_at
    )


# Provider answers that say "a landline" rather than "no SMS for some other reason".
_LANDLINE_CODES = frozenset(
    {"twilio:30006", "twilio:21614", "africastalking:UnsupportedNumberType"}
)


def reach_label(contact: Contact) -> str:
    """Why a contact that cannot take SMS cannot: "landline" or "no_sms" (for the console)."""
    reason = contact.sms_capable_reason or ""
    return "landline" if reason == FIXED_LINE or reason in _LANDLINE_CODES else "no_sms"


def dial_address(contact: Contact) -> str:
    """The number to call: a landline keyed by the Argentine mobile form is dialled as the
    landline it is ("+54 11 …", not "+54 9 11 …", which may be someone else's mobile)."""
    phone = contact.phone
    if contact.sms_capable_reason == FIXED_LINE and phone.startswith("+549"):
        return "+54" + phone[4:]
    return phone


def queue_notice_call(
    session: Session,
    contact: Contact,
    message: str,
    *,
    provider: str,
    language: str,
    now: datetime,
) -> int:
    """An outbound call that says `message` to a citizen who cannot take SMS; returns its id.
    The worker places it like any outbound call (lease, retries, once)."""
    call_id = (
        session.connection()
        .execute(
            insert(calls_t)
            .values(
                contact_id=contact.id,
                kind=NOTICE,
                provider=provider,
                to_address=dial_address(contact),
                status=CallStatus.PENDING.value,
                language=language,
                message=message,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            .returning(calls_t.c.id)
        )
        .scalar_one()
    )
    return int(call_id)

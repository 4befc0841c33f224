"""The closed sets of states a row can be in, as `str` enums (the database stores the values).

A leaf module (it imports nothing of ours): `sms/` reads the open statuses below casestore.
Code that branches on one of these matches every member and ends in `typing.assert_never`,
so a new member is a type error wherever it is not handled.
"""

from __future__ import annotations

import enum


class Channel(enum.StrEnum):
    """Where a case came from or an interaction happened."""

    SMS = "sms"
    WHATSAPP = "whatsapp"
    USSD = "ussd"
    VOICE = "voice"
    OPEN311 = "open311"
    CONSOLE = "console"
    IMPORT = "import"


class Direction(enum.StrEnum):
    """An interaction from the citizen (in) or to them (out)."""

    IN = "in"
    OUT = "out"


class CaseStatus(enum.StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING_CITIZEN = "waiting_citizen"
    RESOLVED = "resolved"
    CLOSED = "closed"


# The statuses in which a case is open (work remains): the one definition every list, badge,
# filter, conversation and escalation uses. A StrEnum is its value: `"new" in OPEN_STATUSES`.
OPEN_STATUSES: frozenset[CaseStatus] = frozenset(
    {CaseStatus.NEW, CaseStatus.ASSIGNED, CaseStatus.IN_PROGRESS, CaseStatus.WAITING_CITIZEN}
)


def is_open(status: str) -> bool:
    """True while work remains on a case in this status."""
    return status in OPEN_STATUSES


def open_values() -> list[str]:
    """The open statuses as plain strings, for a SQL `IN (...)`."""
    return [s.value for s in CaseStatus if s in OPEN_STATUSES]


class MessageStatus(enum.StrEnum):
    """Life of an outbox row; `sending` carries a lease so a dead worker is noticed."""

    PENDING = "pending"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    RECORDED = "recorded"
    CANCELLED = "cancelled"


class CallStatus(enum.StrEnum):
    """Life of an outbound_calls row (casestore.calls describes the moves)."""

    PENDING = "pending"
    QUEUED = "queued"
    CALLING = "calling"
    PLACED = "placed"
    RECORDED = "recorded"
    ANSWERED = "answered"
    COMPLETED = "completed"
    UNANSWERED = "unanswered"
    FAILED = "failed"
    CANCELLED = "cancelled"

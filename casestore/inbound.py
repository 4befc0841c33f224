"""The one internal model every provider adapter produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Inbound:
    """A message a citizen sent, as any provider delivered it.

    `sender` is the address as received (E.164 when it is a phone, else e.g. an alphanumeric
    sender id); `phone` is the normalised E.164 number, or None when the sender is not a phone.
    """

    provider: str
    provider_ref: str
    channel: str
    sender: str
    recipient: str
    text: str
    received_at: datetime
    phone: str | None
    media_urls: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class StatusUpdate:
    """A provider's delivery report for a message we sent."""

    provider: str
    provider_ref: str
    status: str
    provider_status: str
    error_code: str | None = None
    error: str | None = None
    opted_out: bool = False


@dataclass(frozen=True)
class IntakeResult:
    """What intake did with an Inbound: the reply to give, and whether it was a redelivery."""

    duplicate: bool
    reply: str | None
    tracking_number: str | None = None
    case_id: int | None = None
    action: str = ""

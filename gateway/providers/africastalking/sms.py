"""Africa's Talking messages: inbound SMS and delivery reports parsed, statuses by a table."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from casestore.fit import column_length, fit_ref
from casestore.inbound import Inbound, StatusUpdate
from casestore.models import Interaction
from gateway.forms import BadRequest, require
from sms.phone import PhoneError, sender_phone

PROVIDER = "africastalking"
REF_LENGTH = column_length(Interaction.provider_ref)

# AT delivery report status -> our outbox status (Rejected, Success and Failed are final).
STATUS_MAP: Mapping[str, str] = {
    "Sent": "sent",
    "Submitted": "sent",
    "Buffered": "sent",
    "Success": "delivered",
    "Rejected": "failed",
    "Failed": "undelivered",
}
# failureReason values meaning the citizen blocked us at the network.
OPTED_OUT_REASONS = frozenset({"UserInBlacklist", "UserInBlackList", "DeliveryFailure:Blacklisted"})
_KEYPAD = frozenset("0123456789*#")


def parse_sms(form: Mapping[str, str], received_at: datetime, country: str) -> Inbound:
    """An AT inbound SMS form as an Inbound."""
    require(dict(form), "id", "from")
    if "text" not in form:
        raise BadRequest("missing field: text")
    sender = form["from"].strip()
    try:
        phone = sender_phone(sender, country)
    except PhoneError as exc:
        raise BadRequest("unparseable phone number in from") from exc
    if phone is not None:
        sender = phone  # replies go out through the AT API, which takes E.164 only
    return Inbound(
        provider=PROVIDER,
        provider_ref=fit_ref(form["id"].strip(), REF_LENGTH),
        channel="sms",
        sender=sender,
        recipient=form.get("to", "").strip(),
        text=form["text"],
        received_at=received_at,
        phone=phone,
    )


def parse_delivery(form: Mapping[str, str]) -> StatusUpdate:
    """An AT delivery report as a StatusUpdate."""
    require(dict(form), "id", "status")
    raw = form["status"].strip()
    if raw not in STATUS_MAP:
        raise BadRequest(f"unknown status {raw!r}; expected one of {', '.join(STATUS_MAP)}")
    reason = (form.get("failureReason") or "").strip() or None
    return StatusUpdate(
        provider=PROVIDER,
        provider_ref=fit_ref(form["id"].strip(), REF_LENGTH),
        status=STATUS_MAP[raw],
        provider_status=raw,
        error_code=reason,
        error=reason,
        opted_out=reason in OPTED_OUT_REASONS,
    )

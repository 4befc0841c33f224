"""Africa's Talking adapter: token-protected callbacks in, delivery reports through a table."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
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


def verify_token(expected: str | None, given: str | None) -> None:
    """403 unless the callback URL carries the configured secret token."""
    if not expected:
        raise BadRequest("Africa's Talking webhooks are disabled: no webhook token set", 403)
    if not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise BadRequest("invalid token", 403)


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


@dataclass(frozen=True)
class VoiceRequest:
    """One AT voice callback, normalised."""

    session_id: str
    active: bool
    outbound: bool
    phone: str | None  # callerNumber in E.164; None when withheld
    caller: str  # callerNumber as received
    destination: str  # destinationNumber as received ("" when absent)
    digits: str | None  # dtmfDigits without the finishing "#"; None when nothing was pressed
    recording_url: str | None
    session_state: str
    hangup_cause: str


def parse_voice(form: Mapping[str, str], country: str) -> VoiceRequest:
    """An AT voice callback form as a VoiceRequest; BadRequest names the bad field."""
    require(dict(form), "sessionId", "isActive")
    if "callerNumber" not in form:
        # Present but empty is a withheld caller, who still gets the whole menu.
        raise BadRequest("missing field: callerNumber")
    active = form["isActive"].strip()
    if active not in ("0", "1"):
        raise BadRequest("isActive must be 0 or 1")
    direction = (form.get("direction") or "Inbound").strip().lower()
    if direction not in ("inbound", "outbound"):
        raise BadRequest(f"unknown direction {form['direction']!r}; expected Inbound or Outbound")
    caller = form["callerNumber"].strip()
    try:
        phone = sender_phone(caller, country) if caller else None
    except PhoneError as exc:
        raise BadRequest("unparseable phone number in callerNumber") from exc
    digits = (form.get("dtmfDigits") or "").strip()
    if digits.lower() == "undefined":  # what AT sends when GetDigits timed out
        digits = ""
    if len(digits) > 32 or not set(digits) <= _KEYPAD:
        raise BadRequest("dtmfDigits must be keypad digits")
    digits = digits.rstrip("#")
    recording = (form.get("recordingUrl") or "").strip()
    if recording and not recording.startswith(("https://", "http://")):
        raise BadRequest("recordingUrl must be an http(s) URL")
    return VoiceRequest(
        session_id=fit_ref(form["sessionId"].strip(), column_length(Interaction.provider_ref)),
        active=active == "1",
        outbound=direction == "outbound",
        phone=phone,
        caller=caller,
        destination=(form.get("destinationNumber") or "").strip(),
        digits=digits or None,
        recording_url=recording or None,
        session_state=(form.get("callSessionState") or "").strip(),
        hangup_cause=(form.get("hangupCause") or "").strip(),
    )

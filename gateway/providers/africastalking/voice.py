"""Africa's Talking voice callbacks parsed into one normalised request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from casestore.fit import column_length, fit_ref
from casestore.models import Interaction
from gateway.forms import BadRequest, require
from sms.phone import PhoneError, sender_phone

_KEYPAD = frozenset("0123456789*#")


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

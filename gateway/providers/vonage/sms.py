"""Vonage Messages API: inbound SMS and message statuses parsed from JSON, statuses by a table.

Vonage writes numbers in E.164 without the `+` ("5491155550001"); the internal model keeps
E.164 with it, as the other providers' parsers do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from casestore.fit import column_length, fit_ref
from casestore.inbound import Inbound, StatusUpdate
from casestore.models import Interaction
from gateway.forms import BadRequest
from sms.phone import PhoneError, sender_phone

PROVIDER = "vonage"
REF_LENGTH = column_length(Interaction.provider_ref)

# Messages API status -> our outbox status ("read" comes from channels with read receipts).
STATUS_MAP: Mapping[str, str] = {
    "submitted": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "rejected": "failed",
    "undeliverable": "undelivered",
}
# Error titles meaning the citizen blocked our messages. Vonage documents none for SMS today
# (its errors are carrier-specific); kept as a table so one found later is a one-line change.
OPTED_OUT_CODES: frozenset[str] = frozenset()


def json_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; 400 otherwise."""
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("malformed JSON body") from exc
    if not isinstance(value, dict):
        raise BadRequest("expected a JSON object")
    return value


def text_field(data: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    """A string field; 400 naming it when it is missing (and required) or not a string."""
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequest(f"missing field: {name}")
    return value


def e164(number: str) -> str:
    """Vonage's "5491155550001" as "+5491155550001"; anything else (an alphanumeric sender,
    a number already with "+") unchanged."""
    number = number.strip()
    return "+" + number if number.isascii() and number.isdigit() else number


def parse_sms(data: Mapping[str, Any], received_at: datetime, country: str) -> Inbound:
    """A Messages API inbound message (channel sms, type text) as an Inbound."""
    ref = text_field(data, "message_uuid")
    sender_raw = text_field(data, "from")
    channel = text_field(data, "channel", required=False) or "sms"
    if channel != "sms":
        raise BadRequest(f"unsupported channel {channel!r}; expected sms")
    kind = text_field(data, "message_type", required=False) or "text"
    if kind != "text":
        raise BadRequest(f"unsupported message_type {kind!r}; expected text")
    text = text_field(data, "text", required=False)
    if "text" not in data:
        raise BadRequest("missing field: text")
    sender = e164(sender_raw)
    try:
        phone = sender_phone(sender, country)
    except PhoneError as exc:
        raise BadRequest("unparseable phone number in from") from exc
    if phone is not None:
        sender = phone  # replies go out through the Messages API to this number
    return Inbound(
        provider=PROVIDER,
        provider_ref=fit_ref(ref.strip(), REF_LENGTH),
        channel="sms",
        sender=sender,
        recipient=e164(text_field(data, "to", required=False)),
        text=text,
        received_at=received_at,
        phone=phone,
    )


def parse_status(data: Mapping[str, Any]) -> StatusUpdate:
    """A Messages API message status as a StatusUpdate."""
    ref = text_field(data, "message_uuid")
    raw = text_field(data, "status").strip().lower()
    if raw not in STATUS_MAP:
        raise BadRequest(f"unknown status {raw!r}; expected one of {', '.join(STATUS_MAP)}")
    error = data.get("error")
    code = reason = None
    if isinstance(error, dict):
        # {"type": "https://developer.nexmo.com/api-errors/messages-olympus#1340",
        #  "title": "1340", "detail": "Invalid sender"}: the title is the code.
        code = str(error.get("title") or "").strip() or None
        reason = str(error.get("detail") or "").strip() or code
    return StatusUpdate(
        provider=PROVIDER,
        provider_ref=fit_ref(ref.strip(), REF_LENGTH),
        status=STATUS_MAP[raw],
        provider_status=raw,
        error_code=code,
        error=reason,
        opted_out=code in OPTED_OUT_CODES,
    )

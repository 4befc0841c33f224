"""Twilio messages: inbound SMS/WhatsApp forms and status callbacks parsed, TwiML replies."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from xml.sax.saxutils import escape as xml_escape

from twilio.twiml.messaging_response import MessagingResponse

from casestore.fit import column_length, fit_ref
from casestore.inbound import Inbound, StatusUpdate
from casestore.models import Interaction
from gateway.forms import BadRequest, require
from sms.phone import PhoneError, sender_phone

PROVIDER = "twilio"
WHATSAPP_PREFIX = "whatsapp:"

# Twilio MessageStatus -> our outbox status. "receiving"/"received" belong to inbound messages.
STATUS_MAP: Mapping[str, str] = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "cancelled",
}
OPTED_OUT_CODES = frozenset({"21610"})
REF_LENGTH = column_length(Interaction.provider_ref)


def _address(raw: str, field: str, country: str) -> tuple[str, str | None]:
    """(sender without channel prefix, in E.164 when a phone; the phone, or None if not one)."""
    address = raw.strip()
    if address.lower().startswith(WHATSAPP_PREFIX):
        address = address[len(WHATSAPP_PREFIX) :].strip()
    if not address:
        raise BadRequest(f"missing field: {field}")
    try:
        phone = sender_phone(address, country)
    except PhoneError as exc:
        raise BadRequest(f"unparseable phone number in {field}") from exc
    if phone is None:
        return address, None
    # Replies and the outbox address the sender: keep it in E.164, whatever format came in.
    return phone, phone


def parse_sms(form: Mapping[str, str], received_at: datetime, country: str) -> Inbound:
    """A Twilio inbound SMS or WhatsApp form as an Inbound."""
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid") or ""
    if not sid.strip():
        raise BadRequest("missing field: MessageSid")
    require(dict(form), "From", "To")
    channel = "whatsapp" if form["From"].lower().startswith(WHATSAPP_PREFIX) else "sms"
    sender, phone = _address(form["From"], "From", country)
    recipient = form["To"].strip()
    if recipient.lower().startswith(WHATSAPP_PREFIX):
        recipient = recipient[len(WHATSAPP_PREFIX) :]
    media: list[str] = []
    num_media = form.get("NumMedia", "0") or "0"
    # isascii(): str.isdigit() also accepts "²", which int() then refuses (a 500, not a 400).
    if not (num_media.isascii() and num_media.isdigit()):
        raise BadRequest("NumMedia must be a number")
    for i in range(min(int(num_media), 10)):
        url = form.get(f"MediaUrl{i}")
        if url:
            media.append(url)
    return Inbound(
        provider=PROVIDER,
        provider_ref=fit_ref(sid.strip(), REF_LENGTH),
        channel=channel,
        sender=sender,
        recipient=recipient,
        text=form.get("Body", ""),
        received_at=received_at,
        phone=phone,
        media_urls=tuple(media),
    )


def parse_status(form: Mapping[str, str]) -> StatusUpdate:
    """A Twilio message status callback as a StatusUpdate."""
    require(dict(form), "MessageSid", "MessageStatus")
    raw = form["MessageStatus"].strip().lower()
    if raw not in STATUS_MAP:
        raise BadRequest(f"unknown MessageStatus {raw!r}; expected one of {', '.join(STATUS_MAP)}")
    code = (form.get("ErrorCode") or "").strip() or None
    return StatusUpdate(
        provider=PROVIDER,
        provider_ref=fit_ref(form["MessageSid"].strip(), REF_LENGTH),
        status=STATUS_MAP[raw],
        provider_status=raw,
        error_code=code,
        error=form.get("ErrorMessage") or None,
        opted_out=code in OPTED_OUT_CODES,
    )


EMPTY_RESPONSE = str(MessagingResponse())


def render_sms_reply(text: str | None) -> str:
    """TwiML answering an inbound message; an empty <Response/> sends nothing."""
    if not text:
        return EMPTY_RESPONSE
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
        f"{xml_escape(text)}</Message></Response>"
    )

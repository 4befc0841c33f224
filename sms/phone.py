"""Phone numbers: E.164 normalisation, the contact key, and who can be texted."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

DEFAULT_REGION = "AR"

# Twilio presents a withheld caller ID as this number (a Lesotho-looking +266 696687).
TWILIO_WITHHELD = "+266696687"
WITHHELD_WORDS = frozenset({"anonymous", "restricted", "unknown", "private", "unavailable"})

# Operators route SMS to anything under 7 digits as a short code, never to a subscriber.
SHORT_CODE_MAX_DIGITS = 6

_WHATSAPP_PREFIX = "whatsapp:"

_SMS_TYPES = frozenset(
    {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE, PhoneNumberType.UNKNOWN}
)


class PhoneError(ValueError):
    """A text that is not a usable phone number; the message says why, briefly."""


def _strip_prefix(raw: str) -> str:
    if raw.strip().lower().startswith(_WHATSAPP_PREFIX):
        return raw.strip()[len(_WHATSAPP_PREFIX) :]
    return raw


def _parse(raw: str, default_region: str) -> phonenumbers.PhoneNumber:
    text = _strip_prefix(raw)
    stripped = text.strip()
    if not stripped:
        raise PhoneError("empty phone number")
    if any(ch.isalpha() for ch in stripped):
        # phonenumbers reads letters as a vanity number ("0800-CLARO"): a typo must not do that.
        raise PhoneError("phone number contains letters")
    candidates = [stripped]
    if text[:1].isspace() and stripped[:1].isdigit() and not stripped.startswith("0"):
        # A "+" sent unencoded in a URL query or form arrives as a space.
        candidates.insert(0, "+" + stripped)
    parsed: list[phonenumbers.PhoneNumber] = []
    for candidate in candidates:
        try:
            parsed.append(phonenumbers.parse(candidate, default_region))
        except NumberParseException:
            continue
    if not parsed:
        raise PhoneError("not a phone number")
    for check in (phonenumbers.is_valid_number, phonenumbers.is_possible_number):
        for number in parsed:
            if check(number):
                return number
    return parsed[0]


@lru_cache(maxsize=8192)
def normalise_phone(raw: str, default_region: str = DEFAULT_REGION) -> str:
    """Return `raw` as E.164; national numbers are read in `default_region`.

    Accepts `whatsapp:` addresses and a leading space standing for "+". Raises PhoneError for
    text that is not a possible phone number.
    """
    number = _parse(raw, default_region)
    if not phonenumbers.is_possible_number(number):
        raise PhoneError("not a possible phone number")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


@lru_cache(maxsize=8192)
def contact_key(e164: str) -> str:
    """Return the form of an E.164 number that identifies one contact.

    An Argentine mobile is "+54 9 <area> <number>", but some routes (voice mostly) present it
    without the 9. Both forms map to one contact, keyed by the mobile form. The key says who,
    not how to reach them: a real landline calls from "+54 <area> <number>" too, so whether the
    contact takes SMS is learnt separately (`sms_unreachable_reason` of the number as
    presented, delivery errors; casestore.reach). Any other number is returned unchanged.
    """
    if not e164.startswith("+54") or e164.startswith("+549"):
        return e164
    mobile = "+549" + e164[3:]
    try:
        number = phonenumbers.parse(mobile, None)
    except NumberParseException:
        return e164
    return mobile if phonenumbers.is_valid_number(number) else e164


def is_phone_address(raw: str, default_region: str = DEFAULT_REGION) -> bool:
    """True when a sender address is a phone number that can be answered.

    False for alphanumeric sender IDs, short codes, withheld caller IDs and empty addresses.
    """
    text = _strip_prefix(raw).strip()
    if not text or text.lower() in WITHHELD_WORDS:
        return False
    if text.isdigit() and len(text) <= SHORT_CODE_MAX_DIGITS:
        return False
    try:
        e164 = normalise_phone(raw, default_region)
    except PhoneError:
        return False
    return e164 != TWILIO_WITHHELD


def sender_phone(raw: str, default_region: str = DEFAULT_REGION) -> str | None:
    """The E.164 number of a sender that is a phone; None for alphanumeric ids, short codes,
    withheld ids. Raises PhoneError for an address that looks like a phone (starts with "+")
    but is not one."""
    if is_phone_address(raw, default_region):
        return normalise_phone(raw, default_region)  # cached by is_phone_address's call
    text = _strip_prefix(raw).strip()
    if text == TWILIO_WITHHELD or text.lower() in WITHHELD_WORDS:
        return None  # a withheld caller: no phone, but not a malformed request
    if text.startswith("+"):
        raise PhoneError("unparseable phone number")
    return None


def can_receive_sms(e164: str) -> bool:
    """True when an E.164 number can take an SMS: mobile, fixed line or mobile, or unknown type.

    Fixed lines, toll-free, premium-rate, shared-cost, VoIP and other special numbers give
    False. In Argentina a number without the 9 ("+54 11 4321 0000") is a fixed line: check the
    number as it should be texted, e.g. the `contact_key` of an SMS sender.
    """
    if e164 == TWILIO_WITHHELD:
        return False
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return False
    if not phonenumbers.is_possible_number(number):
        return False
    return phonenumbers.number_type(number) in _SMS_TYPES


FIXED_LINE = "fixed_line"
NOT_MOBILE = "not_mobile"


def sms_unreachable_reason(presented: str) -> str | None:
    """Why the number as the network presented it cannot take an SMS, or None if it can.

    "fixed_line" for a landline ("+54 11 4321 0000": in Argentina a number without the 9, or a
    national "0 <area> 15 …" turned into "+54 9 …" by `normalise_phone`, is read by its type),
    "not_mobile" for toll-free, premium-rate, VoIP and other special numbers. Mobile, fixed
    line or mobile (US, …) and unknown types are taken as SMS-capable.
    """
    if can_receive_sms(presented):
        return None
    try:
        number = phonenumbers.parse(presented, None)
    except NumberParseException:
        return NOT_MOBILE
    if phonenumbers.number_type(number) == PhoneNumberType.FIXED_LINE:
        return FIXED_LINE
    return NOT_MOBILE

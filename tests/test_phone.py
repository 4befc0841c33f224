from __future__ import annotations

import pytest

from sms.phone import PhoneError, can_receive_sms, contact_key, is_phone_address, normalise_phone

# Fictional numbers only. Argentina has no reserved fictional range: "+54 9 11 5555 xxxx" (and
# "+54 9 351 555 xxxx") look fictional and phonenumbers 9.0 accepts them as valid mobiles.
MOBILE = "+5491155550001"
MOBILE_WITHOUT_9 = "+541155550001"


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+54 9 11 5555-0001", MOBILE),
        ("+5491155550001", MOBILE),
        ("011 15 5555-0001", MOBILE),  # national format with the mobile prefix 15
        ("11 15 5555 0001", MOBILE),
        ("(011) 15-5555-0001", MOBILE),
        ("00 54 9 11 5555 0001", MOBILE),  # Argentina's international prefix
        ("whatsapp:+5491155550001", MOBILE),
        ("WhatsApp:+5491155550001", MOBILE),
        ("  +5491155550001  ", MOBILE),
        (" 5491155550001", MOBILE),  # "+" sent unencoded in a query string
        ("whatsapp: 5491155550001", MOBILE),
        (" 1155550001", MOBILE_WITHOUT_9),  # "+1 155…" is not valid: read nationally
        ("+54 11 5555 0001", MOBILE_WITHOUT_9),
        ("0351 15 555 0001", "+5493515550001"),
        ("+54 9 351 555 0001", "+5493515550001"),
        ("+34 612 34 56 78", "+34612345678"),
        ("+1 202 555 0100", "+12025550100"),
        ("+44 7700 900123", "+447700900123"),  # possible though not valid: kept
    ],
)
def test_normalise_phone(raw: str, e164: str) -> None:
    assert normalise_phone(raw) == e164


def test_normalise_phone_reads_national_numbers_in_the_region_given() -> None:
    assert normalise_phone("612 34 56 78", default_region="ES") == "+34612345678"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("whatsapp:", "empty"),
        ("MOVISTAR", "letters"),
        ("0800-CLARO", "letters"),  # phonenumbers alone would read it as a vanity number
        ("+54 9 11 5555 000A", "letters"),
        ("anonymous", "letters"),
        ("--", "not a phone number"),
        ("2020", "not a possible"),
        ("+266696687", "not a possible"),
        ("+54 9 11 5555 00011", "not a possible"),
    ],
)
def test_normalise_phone_refuses_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(PhoneError, match=reason):
        normalise_phone(raw)


def test_phone_error_is_a_value_error() -> None:
    assert issubclass(PhoneError, ValueError)


@pytest.mark.parametrize(
    ("e164", "key"),
    [
        (MOBILE, MOBILE),
        (MOBILE_WITHOUT_9, MOBILE),  # the same citizen, presented without the 9
        ("+543515550001", "+5493515550001"),
        ("+5493515550001", "+5493515550001"),
        ("+548002221234", "+548002221234"),  # toll-free: "+549800…" is not a number
        ("+34612345678", "+34612345678"),
        ("+12025550100", "+12025550100"),
        ("+266696687", "+266696687"),
    ],
)
def test_contact_key(e164: str, key: str) -> None:
    assert contact_key(e164) == key


@pytest.mark.parametrize(
    ("raw", "is_phone"),
    [
        ("+5491155550001", True),
        ("whatsapp:+5491155550001", True),
        (" 5491155550001", True),
        ("011 15 5555-0001", True),
        ("+541155550001", True),
        ("+34612345678", True),
        ("+447700900123", True),
        # alphanumeric sender ids
        ("MOVISTAR", False),
        ("Claro-Info", False),
        ("Personal", False),
        # short codes
        ("2020", False),
        ("46250", False),
        ("123456", False),
        # withheld caller ids
        ("anonymous", False),
        ("Anonymous", False),
        ("restricted", False),
        ("unknown", False),
        ("+266696687", False),
        ("", False),
        ("  ", False),
    ],
)
def test_is_phone_address(raw: str, is_phone: bool) -> None:
    assert is_phone_address(raw) is is_phone


@pytest.mark.parametrize(
    ("e164", "can"),
    [
        (MOBILE, True),
        ("+5493515550001", True),
        ("+34612345678", True),  # Spanish mobile
        ("+12025550100", True),  # US: fixed line or mobile
        ("+447700900123", True),  # possible, type unknown
        (MOBILE_WITHOUT_9, False),  # without the 9 it is an Argentine fixed line
        ("+541143210000", False),
        ("+442079460000", False),  # UK fixed line
        ("+548002221234", False),  # toll-free
        ("+18005550100", False),
        ("+546002221234", False),  # premium rate
        ("+266696687", False),
        ("+5491155550001123", False),  # too long
        ("not a number", False),
    ],
)
def test_can_receive_sms(e164: str, can: bool) -> None:
    assert can_receive_sms(e164) is can

"""Africa's Talking USSD: the callback form parsed, screens rendered as its CON/END text.

AT sends `text` = "" on a session's first request, then every input so far joined by
`SEPARATOR` ("1*3*sin agua"); following a session over that text is the route's work
(gateway.routes.ussd), reading and answering it in AT's shape is this module's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from casestore.fit import column_length, fit_ref
from casestore.models import Interaction
from gateway.forms import BadRequest, require
from ivr.machine import Screen
from sms.phone import PhoneError, normalise_phone
from sms.segments import septets, to_gsm7

log = logging.getLogger(__name__)

SEPARATOR = "*"  # joins a session's inputs in `text`
SCREEN_MAX = 160  # characters a screen shows; 182 is the usual GSM maximum
# The provider reference is "<sessionId>:<step>": room for the step left in the column.
SESSION_ID_MAX = (column_length(Interaction.provider_ref) or 80) - 16


@dataclass(frozen=True)
class UssdRequest:
    """One USSD request as AT sends it; `phone` is E.164."""

    session_id: str
    service_code: str
    phone: str
    network_code: str
    text: str


def parse_phone(raw: str, country: str) -> str:
    """E.164 for a USSD phoneNumber; some aggregators drop the "+" of an international number."""
    try:
        return normalise_phone(raw, country)
    except PhoneError:
        digits = raw.strip()
        if digits.isdigit() and not digits.startswith("0"):
            return normalise_phone("+" + digits, country)
        raise


def parse_ussd(form: Mapping[str, str], country: str) -> UssdRequest:
    """An AT USSD form as a UssdRequest; 400 naming what is missing or unusable."""
    require(dict(form), "sessionId", "serviceCode", "phoneNumber")
    if "text" not in form:
        raise BadRequest("missing field: text")
    # A longer sessionId is shortened the same way every time: its steps still deduplicate.
    session_id = fit_ref(form["sessionId"].strip(), SESSION_ID_MAX)
    try:
        phone = parse_phone(form["phoneNumber"], country)
    except PhoneError as exc:
        raise BadRequest("unparseable phone number in phoneNumber") from exc
    return UssdRequest(
        session_id=session_id,
        service_code=form["serviceCode"].strip(),
        phone=phone,
        network_code=form.get("networkCode", "").strip(),
        text=form["text"],
    )


def screen_text(screen: Screen) -> str:
    """What the phone shows: the prompt, then one "key label" line per option, in GSM-7."""
    return _compose(screen.text, screen.options)


def _compose(text: str, options: tuple[tuple[str, str], ...]) -> str:
    lines = [text.strip(), *(f"{key} {label}" for key, label in options)]
    return to_gsm7("\n".join(line for line in lines if line)).strip()


def render_ussd(screen: Screen) -> str:
    """The AT answer: "CON " while the session goes on, "END " when it is over."""
    return _render(screen.text, screen.options, screen.end)


def render_end(text: str) -> str:
    """An answer that ends the session with `text` (a refusal, an apology), in GSM-7."""
    return "END " + to_gsm7(text)


@lru_cache(maxsize=4096)  # a few dozen menu screens, and the number-bearing ones at the end
def _render(text: str, options: tuple[tuple[str, str], ...], end: bool) -> str:
    shown = _compose(text, options)
    if septets(shown) > SCREEN_MAX:
        # The shipped prompts fit (tests walk every screen); a deployment's longer ones are cut
        # in the prompt, never in the options, rather than have the network drop the session.
        log.warning("USSD screen over %d characters; prompt shortened", SCREEN_MAX)
        lines = to_gsm7("\n".join(f"{key} {label}" for key, label in options))
        room = SCREEN_MAX - septets(lines) - (1 if lines else 0) - 3
        prompt = to_gsm7(text.strip())[: max(room, 0)].rstrip() + "..."
        shown = "\n".join(part for part in (prompt, lines) if part)
    return ("END " if end else "CON ") + shown

"""Africa's Talking voice: callbacks parsed into one normalised request, answers as AT XML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from casestore.config import Config
from casestore.fit import column_length, fit_ref
from casestore.models import Interaction
from gateway.forms import BadRequest, require
from ivr.machine import Expect, Screen
from ivr.menu import Menu
from ivr.speech import speech, spoken_options
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


# ---------------------------------------------------------------- rendering (AT voice XML)

XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'
EMPTY = XML_HEAD + "<Response/>"
REJECT = XML_HEAD + "<Response><Reject/></Response>"
CHOICE_TIMEOUT = 10  # seconds to press a key
DIGITS_TIMEOUT = 30  # seconds to key a whole tracking number
SURVEY_KEY_TIMEOUT = 8  # seconds to press the rating key before the question counts unanswered
DEFAULT_VOICE = "woman"  # AT documents "man" and "woman"


@dataclass(frozen=True)
class Voice:
    """How the menu is spoken and where the next step goes."""

    voice: str
    digits_url: str
    recording_url: str
    recording_max_seconds: int
    hold_music_url: str | None


def voice_of(config: Config, language: str, *, fallback: bool = False) -> str:
    """The <Say voice> of `[ivr.voice.<language>] at_voice`; with `fallback`, the default
    language's table when that language has none."""
    table: Mapping[str, Any] = config.raw.get("ivr", {}).get("voice", {})
    settings = table.get(language) or (table.get(config.default_language) if fallback else None)
    return str((settings or {}).get("at_voice") or DEFAULT_VOICE)


def say(text: str, voice: str) -> str:
    """One <Say> element."""
    return f'<Say voice={quoteattr(voice)} playBeep="false">{escape(text)}</Say>'


def _get_digits(text: str, voice: str, url: str, digits: int, timeout: int) -> str:
    # If nothing is pressed AT goes on to the next action: the Redirect brings that back to
    # the same step as "no input", so silence counts as an invalid attempt.
    return (
        f'{XML_HEAD}<Response><GetDigits numDigits="{digits}" timeout="{timeout}" '
        f'finishOnKey="#" callbackUrl={quoteattr(url)}>{say(text, voice)}</GetDigits>'
        f"<Redirect>{escape(url)}</Redirect></Response>"
    )


def render_words(text: str, voice: str) -> str:
    """Only words (none when `text` is empty); a document that simply ends hangs the call up."""
    said = say(text, voice) if text else ""
    return f"{XML_HEAD}<Response>{said}</Response>"


def render_screen(menu: Menu, screen: Screen, voice: Voice) -> str:
    """The Screen as AT voice XML; a document that simply ends hangs the call up."""
    lang = screen.state.language
    if screen.action is not None and screen.action.kind == "enqueue":
        # AT's Enqueue has no waitUrl: nothing can be said while the caller waits.
        text = f"{screen.text} {speech(menu.config, lang, 'queue_notice')}".strip()
        hold = f" holdMusic={quoteattr(voice.hold_music_url)}" if voice.hold_music_url else ""
        name = quoteattr(screen.action.department or menu.operator_department)
        said = say(text, voice.voice) if text else ""
        return f"{XML_HEAD}<Response>{said}<Enqueue name={name}{hold}/></Response>"
    if screen.end or screen.expect == Expect.NOTHING:
        return render_words(screen.text, voice.voice)
    if screen.expect == Expect.RECORDING:
        return (
            f'{XML_HEAD}<Response><Record finishOnKey="#" '
            f'maxLength="{voice.recording_max_seconds}" trimSilence="true" playBeep="true" '
            f"callbackUrl={quoteattr(voice.recording_url)}>"
            f"{say(screen.text, voice.voice)}</Record></Response>"
        )
    if screen.expect == Expect.DIGITS:
        text, digits, timeout = screen.text, screen.digits or 12, DIGITS_TIMEOUT
    else:  # a choice; free text cannot be keyed on a phone, so it is read as one too
        text = f"{screen.text} {spoken_options(menu.config, screen)}".strip()
        digits = max((len(key) for key, _ in screen.options), default=1)
        timeout = CHOICE_TIMEOUT
    return _get_digits(text, voice.voice, voice.digits_url, digits, timeout)


def render_survey(text: str, voice: str, callback_url: str | None) -> str:
    """The survey call: `text` inside a one-key GetDigits posting to `callback_url`, or only
    `text` (the call then ends) when `callback_url` is None."""
    if callback_url is None:
        return render_words(text, voice)
    return _get_digits(text, voice, callback_url, 1, SURVEY_KEY_TIMEOUT)


def render_notice(message: str, voice: str) -> str:
    """A notice call: the message twice (the call ends after the last action)."""
    said = say(message, voice)
    return f"{XML_HEAD}<Response>{said}{said}</Response>"

"""Twilio voice: call webhooks parsed, and each answer as TwiML from the menu's screens and
the app's spoken texts.

Pure functions: a form in, a VoiceCall out; what to say (already chosen by the caller) in,
TwiML out. The paths are the URLs Twilio calls back, all under VENTANILLA_PUBLIC_URL; the
routes register them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from twilio.twiml.voice_response import VoiceResponse

from casestore.calls import CallStatus
from casestore.config import Config
from casestore.menu_actions import spoken_tracking
from gateway.forms import BadRequest, require
from ivr.machine import Expect, Screen
from ivr.menu import Menu
from ivr.speech import spoken_options
from sms.phone import PhoneError, sender_phone

VOICE_PATH = "/webhooks/twilio/voice"
WAIT_PATH = VOICE_PATH + "/wait"
HOLD_PATH = VOICE_PATH + "/hold"
QUEUE_PATH = VOICE_PATH + "/queue"
STATUS_PATH = VOICE_PATH + "/status"

# Gather timeouts (seconds without a key press before Twilio posts what it has).
CHOICE_TIMEOUT = 6
PAIR_TIMEOUT = 4  # screens with a two-digit key ("98"): a single key goes after this pause
DIGITS_TIMEOUT = 10
WAIT_TIMEOUT = 15
RECORD_SILENCE = 5
SURVEY_KEY_TIMEOUT = 8  # seconds to press the rating key before the question counts unanswered
DIAL_TIMEOUT = 20  # seconds the operator's leg waits for the caller to reach its queue

# Nine or more digits, possibly separated by single spaces or hyphens: a tracking number.
DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){8,}")
EMPTY = str(VoiceResponse())
# "busy": the caller hears a busy tone. Twilio's default ("rejected") plays a not-in-service
# message, which would tell the citizen the number is wrong.
REJECT = '<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/></Response>'

Voice = Mapping[str, str]  # <Say> attributes: language, voice


@dataclass(frozen=True)
class VoiceCall:
    """The parts of a Twilio voice request the IVR needs."""

    call_sid: str
    phone: str | None  # the citizen's E.164 number; None when withheld or not a phone
    status: str
    direction: str


def caller_phone(raw: str, country: str) -> str | None:
    """E.164 of a caller ID; None for withheld (anonymous, +266696687), SIP or client ids."""
    try:
        return sender_phone(raw, country)
    except PhoneError:
        return None  # a call still gets the IVR; its case just has no phone to text


def parse_sid(raw: str, name: str) -> str:
    """A Twilio SID (CallSid, DequeingCallSid, or one the app put in a URL); 400 "malformed
    <name>" unless it is 1 to 64 ASCII letters and digits."""
    sid = raw.strip()
    if not sid or len(sid) > 64 or not (sid.isascii() and sid.isalnum()):
        raise BadRequest(f"malformed {name}")
    return sid


def parse_call(form: Mapping[str, str], country: str) -> VoiceCall:
    """A Twilio voice webhook form as a VoiceCall; 400 without CallSid or From."""
    require(dict(form), "CallSid", "From")
    sid = parse_sid(form["CallSid"], "CallSid")
    direction = form.get("Direction", "inbound").strip().lower()
    address = form["From"]
    if direction == "outbound-api":  # a call the app placed: the citizen is the callee
        require(dict(form), "To")
        address = form["To"]
    return VoiceCall(
        call_sid=sid,
        phone=caller_phone(address, country),
        status=form.get("CallStatus", "").strip().lower(),
        direction=direction,
    )


# Twilio CallStatus -> what it means for a call we placed.
CALL_STATUS_MAP: Mapping[str, CallStatus] = {
    "queued": CallStatus.PLACED,
    "initiated": CallStatus.PLACED,
    "ringing": CallStatus.PLACED,
    "in-progress": CallStatus.ANSWERED,
    "completed": CallStatus.COMPLETED,
    "busy": CallStatus.UNANSWERED,
    "no-answer": CallStatus.UNANSWERED,
    "canceled": CallStatus.UNANSWERED,
    "failed": CallStatus.FAILED,
}


@dataclass(frozen=True)
class CallStatusReport:
    """A call status callback for a call we placed."""

    call_sid: str
    status: CallStatus
    provider_status: str  # Twilio's own word, lower case


def parse_call_status(form: Mapping[str, str]) -> CallStatusReport:
    """A Twilio call status callback; 400 naming a missing field or the unknown status."""
    require(dict(form), "CallSid", "CallStatus")
    raw = form["CallStatus"].strip().lower()
    if raw not in CALL_STATUS_MAP:
        allowed = ", ".join(CALL_STATUS_MAP)
        raise BadRequest(f"unknown CallStatus {raw!r}; expected one of {allowed}")
    return CallStatusReport(form["CallSid"].strip(), CALL_STATUS_MAP[raw], raw)


# CallStatus words after which the call is over (its menu session can go at once).
FINAL_CALL_STATUSES = frozenset(
    word
    for word, status in CALL_STATUS_MAP.items()
    if status not in (CallStatus.PLACED, CallStatus.ANSWERED)
)

# QueueResult of the Enqueue action: what the caller hears next.
CALLBACK_RESULTS = frozenset({"leave", "queue-full", "error", "system-error"})
GONE_RESULTS = frozenset({"hangup", "redirected"})
DONE_RESULTS = frozenset({"bridged", "bridging-in-process", "redirected-from-bridged"})
QUEUE_RESULTS = CALLBACK_RESULTS | GONE_RESULTS | DONE_RESULTS


def step_input(form: Mapping[str, str], recording: bool) -> str:
    """The caller's input: the keys pressed, or the recording URL after <Record>."""
    if recording:
        url = form.get("RecordingUrl", "").strip()
        return url if url.startswith(("https://", "http://")) else ""
    return form.get("Digits", "").strip()[:32]


@dataclass(frozen=True)
class QueueWait:
    """What Twilio tells the Enqueue waitUrl about a queued caller (defaults when absent)."""

    position: int  # 1 = next to be answered
    waited: int  # seconds this caller has been queued
    expected: int  # Twilio's average wait of the callers now queued, in seconds


def _number(form: Mapping[str, str], name: str, default: int) -> int:
    raw = form.get(name, "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 9 else default


def parse_queue_wait(form: Mapping[str, str]) -> QueueWait:
    """The waitUrl's QueuePosition, QueueTime and AvgQueueTime; a bad value is its default."""
    return QueueWait(
        position=max(1, _number(form, "QueuePosition", 1)),
        waited=_number(form, "QueueTime", 0),
        expected=_number(form, "AvgQueueTime", 0),
    )


@dataclass(frozen=True)
class BridgedCall:
    """The `<Queue url>` request: Twilio is about to connect a queued caller to an operator."""

    call_sid: str  # the queued caller's call
    leg_sid: str | None  # the operator's leg that dequeued it
    queued_seconds: int | None  # how long the caller waited; None when not told
    phone: str | None  # the caller's E.164 number; None when withheld


def parse_bridged(form: Mapping[str, str], country: str) -> BridgedCall:
    """A `<Queue url>` form (CallSid, DequeingCallSid, QueueTime, From); 400 for a bad CallSid."""
    queued = form.get("QueueTime", "").strip()
    return BridgedCall(
        call_sid=parse_sid(form.get("CallSid", ""), "CallSid"),
        leg_sid=form.get("DequeingCallSid", "").strip() or None,
        queued_seconds=int(queued)
        if queued.isascii() and queued.isdigit() and len(queued) < 9
        else None,
        phone=caller_phone(form.get("From", ""), country),
    )


def parse_queue_result(form: Mapping[str, str]) -> str:
    """The Enqueue action's QueueResult, lower case; 400 naming the allowed ones otherwise."""
    result = form.get("QueueResult", "").strip().lower()
    if result not in QUEUE_RESULTS:
        allowed = ", ".join(sorted(QUEUE_RESULTS))
        raise BadRequest(f"unknown QueueResult {result!r}; expected one of {allowed}")
    return result


def voice_of(config: Config, language: str, *, fallback: bool = False) -> dict[str, str]:
    """<Say> attributes (language, voice) from `[ivr.voice.<language>]`; with `fallback`, the
    default language's table when that language has none."""
    table: Mapping[str, Any] = config.raw.get("ivr", {}).get("voice", {})
    settings = table.get(language) or (table.get(config.default_language) if fallback else None)
    return {k: str(settings[k]) for k in ("language", "voice") if settings and settings.get(k)}


def url(base: str, path: str, **params: str | int) -> str:
    """An absolute callback URL with its query string."""
    return f"{base}{path}?{urlencode(params)}" if params else f"{base}{path}"


def speak(parent: Any, text: str, voice: Voice) -> None:
    """Say `text`; a tracking number in it is read digit by digit, in groups, then a pause."""
    position = 0
    for run in DIGIT_RUN.finditer(text):
        before = text[position : run.start()].strip().lstrip(".,;")
        if before.strip():
            parent.say(before.strip(), **voice)
        parent.say(spoken_tracking(re.sub(r"\D", "", run.group())), **voice)
        parent.pause(length=1)
        position = run.end()
    rest = text[position:].strip().lstrip(".,;").strip()
    if rest:
        parent.say(rest, **voice)


def _queue_flags(department: str, urgent: bool) -> dict[str, str]:
    return {"q": department, "u": "1" if urgent else "0"}


def _enqueue(response: VoiceResponse, base: str, department: str, urgent: bool, step: int) -> None:
    """Join a department's queue with the IVR's wait and action URLs."""
    flags = _queue_flags(department, urgent)
    response.enqueue(
        department,
        wait_url=url(base, WAIT_PATH, **flags),
        wait_url_method="POST",
        action=url(base, QUEUE_PATH, step=step, **flags),
        method="POST",
    )


def render_screen(menu: Menu, base: str, screen: Screen, next_step: int) -> str:
    """TwiML for one menu screen; action URLs carry `next_step`."""
    voice = voice_of(menu.config, screen.state.language)
    response = VoiceResponse()
    action = url(base, VOICE_PATH, step=next_step)
    if screen.action is not None and screen.action.kind == "enqueue":
        speak(response, screen.text, voice)
        department = screen.action.department or menu.operator_department
        _enqueue(response, base, department, screen.action.urgent, next_step)
    elif screen.end or screen.expect == Expect.NOTHING:
        speak(response, screen.text, voice)
        response.hangup()
    elif screen.expect == Expect.RECORDING:
        speak(response, screen.text, voice)
        recorded = url(base, VOICE_PATH, step=next_step, rec=1)
        response.record(
            action=recorded,
            method="POST",
            max_length=int(menu.config.raw.get("ivr", {}).get("recording_max_seconds", 120)),
            timeout=RECORD_SILENCE,
            finish_on_key="#",
            play_beep=True,
        )
        # Twilio skips the action when nothing was recorded: the same step then sees no URL.
        response.redirect(recorded, method="POST")
    elif screen.expect == Expect.DIGITS:
        gather = response.gather(
            input="dtmf",
            num_digits=screen.digits or menu.config.tracking_length,
            finish_on_key="#",
            timeout=DIGITS_TIMEOUT,
            action=action,
            method="POST",
            action_on_empty_result=True,
        )
        speak(gather, screen.text, voice)
    else:
        pair = any(len(key) > 1 for key, _ in screen.options)
        gather = response.gather(
            input="dtmf",
            num_digits=2 if pair else 1,
            finish_on_key="#" if pair else None,
            timeout=PAIR_TIMEOUT if pair else CHOICE_TIMEOUT,
            action=action,
            method="POST",
            action_on_empty_result=True,
        )
        options = spoken_options(menu.config, screen)
        speak(gather, f"{screen.text} {options}" if options else screen.text, voice)
    return str(response)


def render_wait(menu: Menu, base: str, screen: Screen, department: str, urgent: bool) -> str:
    """While queued: position and wait, inside a Gather whose 1 leaves a call-back request."""
    voice = voice_of(menu.config, screen.state.language)
    response = VoiceResponse()
    gather = response.gather(
        input="dtmf",
        num_digits=1,
        timeout=WAIT_TIMEOUT,
        action=url(base, HOLD_PATH, **_queue_flags(department, urgent)),
        method="POST",
    )
    speak(gather, screen.text, voice)
    # Nothing pressed: the document ends and Twilio requests the waitUrl again.
    return str(response)


def render_hold(leave: bool, invalid: str | None, voice: Voice) -> str:
    """A key pressed while queued: <Leave/> the queue, or say `invalid` and keep waiting."""
    response = VoiceResponse()
    if leave:
        response.leave()
    elif invalid is not None:
        speak(response, invalid, voice)
    return str(response)


def render_goodbye(text: str, voice: Voice) -> str:
    """The last words, then hang up."""
    response = VoiceResponse()
    speak(response, text, voice)
    response.hangup()
    return str(response)


def render_redirect(again_url: str) -> str:
    """Ask Twilio to request `again_url` (a step still being answered by its twin)."""
    response = VoiceResponse()
    response.redirect(again_url, method="POST")
    return str(response)


def render_survey(text: str, voice: Voice, action_url: str | None) -> str:
    """The survey call: `text` inside a one-key Gather posting to `action_url`, or `text` and
    a hang-up when `action_url` is None."""
    response = VoiceResponse()
    if action_url is not None:
        gather = response.gather(
            input="dtmf",
            num_digits=1,
            timeout=SURVEY_KEY_TIMEOUT,
            action=action_url,
            method="POST",
            action_on_empty_result=True,  # silence comes back too: it is an answer to handle
        )
        gather.say(text, **voice)
        return str(response)
    if text:
        response.say(text, **voice)
    response.hangup()
    return str(response)


def render_notice(message: str, voice: Voice) -> str:
    """A notice call: the message, a pause, the message again, hang up."""
    response = VoiceResponse()
    response.say(message, **voice)
    response.pause(length=1)
    response.say(message, **voice)
    response.hangup()
    return str(response)


def render_leg(notice: str, over: str, voice: Voice, queue: str, bridged_url: str) -> str:
    """The operator's leg: who is calling, then Dial the queue; `over` when the caller left."""
    response = VoiceResponse()
    response.say(notice, **voice)
    dial = response.dial(timeout=DIAL_TIMEOUT)
    dial.queue(queue, url=bridged_url, method="POST")
    response.say(over, **voice)
    response.hangup()
    return str(response)


def render_private_queue(queue: str, goodbye: str, voice: Voice) -> str:
    """The chosen caller moved to a queue of their own, where the operator's Dial finds them."""
    # No waitUrl: the caller hears hold music for the second before the bridge, and no
    # waitUrl request puts them back in the department's list.
    response = VoiceResponse()
    response.enqueue(queue)
    response.say(goodbye, **voice)
    response.hangup()
    return str(response)


def render_transfer(
    base: str, text: str, voice: Voice, department: str, urgent: bool, step: int
) -> str:
    """A word, then the other department's queue (same wait URLs as the IVR's, so the caller
    hears their position and may leave a call-back request)."""
    response = VoiceResponse()
    response.say(text, **voice)
    _enqueue(response, base, department, urgent, step)
    return str(response)


def render_say(text: str, voice: Voice) -> str:
    """Only words (the caller's side of a bridge: "connecting you")."""
    response = VoiceResponse()
    response.say(text, **voice)
    return str(response)

"""The operator's leg of a live call: choosing who places it, bridging, transfer, its end.

No HTTP here: the routes (gateway.routes.operator_leg, the voice callbacks) and the console
call these with what the provider told them; the provider modules do the talking
(gateway.providers.twilio.live moves a Twilio call, Africa's Talking can only dequeue).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from casestore import calls
from casestore.calls import CallStatus
from casestore.models import Operator
from gateway.live import queue as livequeue
from gateway.live.queue import LiveCall, Waiting
from gateway.providers import registry
from gateway.providers.twilio import live as twilio_live
from gateway.providers.twilio import voice as twilio_voice
from ivr.speech import speech

if TYPE_CHECKING:
    from gateway.runtime import Runtime

TRANSFER_STEP = 5000  # action steps of transfers: far from the menu's own step numbers
FINAL = frozenset({CallStatus.COMPLETED, CallStatus.UNANSWERED, CallStatus.FAILED})


class BridgeError(Exception):
    """The operator cannot be connected to this caller as the deployment is set up."""


def private_queue(department: str, call_sid: str) -> str:
    """A queue holding one caller, so the operator's Dial bridges exactly them (≤ 64 chars)."""
    return f"{department}.{call_sid}"[:64]


def bridge_provider(rt: Runtime, entry: Waiting) -> str:
    """Who places the operator's call: the provider holding the caller, which must be the
    configured voice provider; a simulated caller gets a simulated (outbox) call."""
    if entry.provider == "simulator":
        return "outbox"
    if entry.provider != rt.settings.voice_provider:
        raise BridgeError(
            f"this caller waits at {entry.provider}, but VENTANILLA_VOICE_PROVIDER is "
            f"{rt.settings.voice_provider}: the operator's call could not reach them"
        )
    return entry.provider


# ---------------------------------------------------------------- moving a live call


def _queue_step(rt: Runtime, call_sid: str) -> int:
    """A fresh step for the Enqueue action of a transfer (its answer is cached per step)."""
    key = rt.redis_keys.live + "step:" + call_sid
    step = int(rt.redis.incr(key))
    rt.redis.expire(key, livequeue.CALL_SECONDS)
    return TRANSFER_STEP + step


def transfer_twiml(rt: Runtime, entry: Waiting, department: str, step: int) -> str:
    """The caller's new TwiML: a word, then the other department's queue (same wait URLs as
    the IVR's, so the caller hears their position and may leave a call-back request)."""
    lang = entry.language
    label = rt.config.departments[department].label(lang)
    text = speech(rt.config, lang, "transfer", department=label)
    voice = twilio_voice.voice_of(rt.config, lang)
    return twilio_voice.render_transfer(
        rt.settings.public_url, text, voice, department, entry.urgent, step
    )


def transfer(rt: Runtime, entry: Waiting, department: str) -> Waiting:
    """Move the caller to another department's queue (blocking); returns their new entry."""
    if department not in rt.config.departments:
        raise BridgeError(f"unknown department {department!r}")
    if entry.provider in registry.NAMES and not registry.info(entry.provider).moves_live_calls:
        label = registry.info(entry.provider).label
        raise BridgeError(f"{label} cannot move a live call to another queue")
    if entry.provider == "twilio":
        step = _queue_step(rt, entry.call_sid)
        twiml = transfer_twiml(rt, entry, department, step)
        twilio_live.redirect_call(rt.settings.env, entry.call_sid, twiml)
    now = time.time()
    moved = replace(entry, department=department, since=now, seen=now, position=None)
    livequeue.unclaim(rt.redis, entry.call_sid)
    livequeue.register(rt.redis, moved)
    return moved


def move_to_private_queue(rt: Runtime, department: str, call_sid: str) -> str:
    """Move the chosen Twilio caller into a queue of their own (blocking); its name.
    SendError when Twilio refuses (the caller hung up meanwhile)."""
    call = livequeue.load_call(rt.redis, call_sid)
    language = call.language if call else rt.config.default_language
    queue = private_queue(department, call_sid)
    twiml = twilio_voice.render_private_queue(
        queue, speech(rt.config, language, "goodbye"), twilio_voice.voice_of(rt.config, language)
    )
    twilio_live.redirect_call(rt.settings.env, call_sid, twiml)
    return queue


# ---------------------------------------------------------------- what the provider reported


def set_available(rt: Runtime, operator_id: int) -> None:
    """The operator is free again (their phone did not take the call)."""
    with rt.sessions() as session, session.begin():
        operator = session.get(Operator, operator_id)
        if operator is not None and operator.availability == "busy":
            operator.availability = "available"


def leg_finished(rt: Runtime, leg_ref: str, status: CallStatus) -> None:
    """The operator's call is over: a caller it never reached waits again (blocking)."""
    caller_sid = livequeue.call_for_leg(rt.redis, leg_ref)
    call = livequeue.load_call(rt.redis, caller_sid) if caller_sid else None
    if call is None or status not in FINAL:
        return
    if call.state == "ringing":
        livequeue.set_state(rt.redis, call.call_sid, "missed")
        livequeue.release(rt.redis, call.waiting())
        livequeue.finish_operator(rt.redis, call)  # nothing for them to wrap up
        set_available(rt, call.operator_id)
    elif call.state == "connected":
        livequeue.set_state(rt.redis, call.call_sid, "ended")


def bridged(
    rt: Runtime, caller_sid: str, leg_ref: str | None, fallback: Waiting | None
) -> LiveCall | None:
    """The provider connected `caller_sid` to the operator's leg: the call is live.

    If the provider bridged someone else than the caller we chose (they hung up, another
    operator's leg got them), the operator's call follows the caller actually on the line and
    the one we chose waits again.
    """
    expected = livequeue.call_for_leg(rt.redis, leg_ref) if leg_ref else None
    found = livequeue.get(rt.redis, caller_sid) or fallback
    livequeue.remove(rt.redis, caller_sid)
    if expected is not None and expected != caller_sid and found is not None:
        chosen = livequeue.load_call(rt.redis, expected)
        if chosen is not None:
            livequeue.update_call(
                rt.redis, expected, lambda c: replace(c, state="replaced", replaced_by=caller_sid)
            )
            livequeue.unclaim(rt.redis, expected)  # their next waitUrl request re-registers them
            livequeue.start_call(
                rt.redis,
                replace(
                    chosen,
                    call_sid=caller_sid,
                    department=found.department,
                    provider=found.provider,
                    phone=found.phone,
                    urgent=found.urgent,
                    language=found.language,
                    since=found.since,
                    state="connected",
                    cases=(),
                    replaced_by=None,
                ),
            )
            return livequeue.load_call(rt.redis, caller_sid)
    return livequeue.set_state(rt.redis, caller_sid, "connected")


def at_leg_answered(rt: Runtime, session_id: str) -> str | None:
    """If this answered AT outbound call is an operator's leg, mark it connected and return
    the department whose queue it dequeues; None for any other call (blocking)."""
    caller_sid = livequeue.call_for_leg(rt.redis, session_id)
    if caller_sid is None:
        return None
    call = livequeue.load_call(rt.redis, caller_sid)
    if call is None or call.via != "africastalking":
        return None
    with rt.sessions() as session, session.begin():
        calls.mark_answered(session, "africastalking", session_id, datetime.now(UTC))
    livequeue.remove(rt.redis, caller_sid)
    livequeue.set_state(rt.redis, caller_sid, "connected")
    return call.department


def at_session_ended(rt: Runtime, session_id: str) -> None:
    """The last request of an AT call: a waiting caller left; an operator's leg ended."""
    livequeue.caller_gone(rt.redis, session_id)
    if livequeue.call_for_leg(rt.redis, session_id) is not None:
        leg_finished(rt, session_id, CallStatus.COMPLETED)

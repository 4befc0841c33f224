"""Africa's Talking voice: the callback form in, the shared menu out as AT voice XML.

AT posts every request of a call to URLs we choose: the first and the last (`isActive=0`) to
the number's configured callback, every later step to the `callbackUrl` of our previous
answer. Those URLs carry `?token=` (AT signs nothing), the step number (so a redelivered
step gets the same answer and changes nothing) and what the step collects (`in=d` digits,
`in=r` a recording). AT has no per-call URL for calls we place: an answered call-back comes
in here with `direction=Outbound`, recognised by its `sessionId`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

import redis
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from casestore import calls
from gateway.answer_once import answer_once, exclusive
from gateway.forms import BadRequest, read_form
from gateway.live import leg
from gateway.live import queue as livequeue
from gateway.menu_session import Call, advance, session_key
from gateway.providers.africastalking import PROVIDER, VoiceRequest, parse_voice
from gateway.providers.africastalking.voice import (
    EMPTY,
    REJECT,
    Voice,
    render_screen,
    render_words,
    voice_of,
)
from gateway.routes import operator_leg, voice_notice, voice_survey
from gateway.routes.missed_call import handle_missed_call, is_missed_call_number
from gateway.routes.verified import verified_at
from gateway.routes.webhooks import refuse
from gateway.runtime import Runtime
from ivr.speech import speech
from sms.phone import PhoneError, contact_key, normalise_phone, sender_phone

log = logging.getLogger(__name__)

PATH = "/webhooks/africastalking/voice"
# One step of a session at a time: AT may redeliver while we are still answering.
LOCK_SECONDS = 15.0
LOCK_WAIT = 3.0
_INPUTS = {"d": "digits", "r": "recording"}


@dataclass(frozen=True)
class Step:
    """Where a request sits in our flow, from the query string of the URL AT called."""

    number: int  # 0: the number's own callback URL (first or last request)
    collects: str | None  # "digits" | "recording" | None


def parse_step(query: Mapping[str, str]) -> Step:
    raw = query.get("step", "0")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 4:
        raise BadRequest("step must be a number")
    collects = query.get("in")
    if collects is not None and collects not in _INPUTS:
        raise BadRequest("in must be d or r")
    return Step(int(raw), _INPUTS[collects] if collects else None)


def step_value(request: VoiceRequest, step: Step) -> str | None:
    """The menu input this request carries; None opens the session (the number's own URL)."""
    if step.number == 0:
        return None
    if step.collects == "recording":
        return request.recording_url or ""
    return request.digits or ""  # a GetDigits that timed out is "no input"


def _step_url(rt: Runtime, number: int, collects: str) -> str:
    query = urlencode({"token": rt.settings.at_webhook_token or "", "step": number, "in": collects})
    return f"{rt.settings.public_url}{PATH}?{query}"


def _voice_for(rt: Runtime, language: str, next_step: int) -> Voice:
    ivr = rt.config.raw.get("ivr", {})
    return Voice(
        voice=voice_of(rt.config, language),
        digits_url=_step_url(rt, next_step, "d"),
        recording_url=_step_url(rt, next_step, "r"),
        recording_max_seconds=int(ivr.get("recording_max_seconds", 120)),
        hold_music_url=str(ivr.get("hold_music_url") or "") or None,
    )


# ---------------------------------------------------------------- the route


@dataclass(frozen=True)
class Party:
    """Who the citizen on this call is."""

    phone: str | None
    language: str | None = None


def _our_number(rt: Runtime, number: str) -> bool:
    ours = rt.settings.env.get("AT_VOICE_NUMBER", "")
    if not ours or not number:
        return False
    try:
        return contact_key(normalise_phone(number, rt.config.country)) == contact_key(
            normalise_phone(ours, rt.config.country)
        )
    except PhoneError:
        return False


def _outbound_party(rt: Runtime, request: VoiceRequest) -> Party:
    """For a call we placed but cannot find: the party that is not our own number."""
    if _our_number(rt, request.caller) and request.destination:
        try:
            return Party(sender_phone(request.destination, rt.config.country))
        except PhoneError:
            return Party(None)
    return Party(request.phone)


async def _party(rt: Runtime, request: VoiceRequest, first: bool) -> Party:
    """The citizen: the caller on inbound calls, the number we dialled on calls we placed."""
    if not request.outbound:
        return Party(request.phone)
    remembered = rt.redis_keys.atvoice + "party:" + request.session_id
    if first:

        def answered() -> calls.PlacedCall | None:
            with rt.sessions() as session, session.begin():
                return calls.mark_answered(session, PROVIDER, request.session_id, datetime.now(UTC))

        placed = await run_in_threadpool(answered)
        if placed is None:
            log.warning("outbound call answered that we did not place (or not recorded yet)")
            party = _outbound_party(rt, request)
        else:
            party = Party(placed.to_address, placed.language)
        rt.redis.set(remembered, json.dumps([party.phone, party.language]), ex=rt.menu_store.ttl)
        return party
    raw = rt.redis.get(remembered)
    if raw is None:
        return _outbound_party(rt, request)
    phone, language = json.loads(raw)
    return Party(phone, language)


async def _menu_answer(rt: Runtime, request: VoiceRequest, step: Step) -> str:
    """Run one step of the menu and render it."""
    if (
        step.number == 0
        and not request.outbound
        and is_missed_call_number(rt.config, request.destination)
    ):
        await handle_missed_call(rt, PROVIDER, request.session_id, request.phone)
        return REJECT
    if step.number == 0 and request.outbound:  # an operator's phone answering "take call"?
        dequeue = await run_in_threadpool(operator_leg.at_leg_answer, rt, request.session_id)
        if dequeue is not None:
            return dequeue
    if step.number == 0 and request.outbound:  # a voice survey's call asks its own question
        survey_question = await voice_survey.at_answered(rt, request.session_id)
        if survey_question is not None:
            return survey_question
        notice = await voice_notice.at_answered(rt, request.session_id)
        if notice is not None:
            return notice
    party = await _party(rt, request, first=step.number == 0)
    screen = await advance(
        rt,
        rt.menu,
        rt.menu_store,
        Call(
            channel="voice",
            provider=PROVIDER,
            session_id=request.session_id,
            step_ref=str(step.number),
            phone=party.phone,
            value=step_value(request, step),
            language=party.language,
        ),
    )
    if screen.action is not None and screen.action.kind == "enqueue":
        department = screen.action.department or rt.menu.operator_department
        livequeue.arrived(  # the operators' live queue view
            rt.redis, request.session_id, department, PROVIDER, party.phone,
            urgent=screen.action.urgent, language=screen.state.language,
        )  # fmt: skip
    return render_screen(rt.menu, screen, _voice_for(rt, screen.state.language, step.number + 1))


async def _finish(rt: Runtime, request: VoiceRequest) -> str:
    """The last request (isActive=0): keep a recording the caller hung up on, then clean up."""
    store = rt.menu_store
    key = session_key(PROVIDER, request.session_id)
    state = store.load(key)
    if state is not None and state.node == "describe" and request.recording_url:
        # Many callers hang up instead of pressing "#": the recording still becomes the case
        # (its SMS copy tells them the number they could not hear).
        party = await _party(rt, request, first=False)
        await advance(
            rt,
            rt.menu,
            store,
            Call(
                channel="voice",
                provider=PROVIDER,
                session_id=request.session_id,
                step_ref="final",
                phone=party.phone,
                value=request.recording_url,
            ),
        )
    store.drop(key)
    rt.redis.delete(rt.redis_keys.atvoice + "party:" + request.session_id)
    await run_in_threadpool(leg.at_session_ended, rt, request.session_id)
    if request.outbound:
        reason = request.hangup_cause or request.session_state or None

        def ended() -> bool:
            with rt.sessions() as session, session.begin():
                return calls.mark_ended(
                    session, PROVIDER, request.session_id, reason=reason, now=datetime.now(UTC)
                )

        await run_in_threadpool(ended)
    return EMPTY


async def at_voice(request: Request) -> Response:
    try:
        rt = verified_at(request)
        step = parse_step(request.query_params)
        form = await read_form(request)
        voice_request = parse_voice(form, rt.config.country)
    except BadRequest as exc:
        return refuse(exc)
    try:
        answer = await _answer(rt, voice_request, step)
    except DBAPIError:
        raise  # the app answers 503: the caller's step could not be kept
    except Exception as exc:  # Redis down or a bug: an apology and a clean end, never a 500
        log.error("AT voice step failed: %s", type(exc).__name__, exc_info=not _is_redis(exc))
        answer = _sorry(rt)
    return Response(answer, media_type="application/xml")


async def _answer(rt: Runtime, voice_request: VoiceRequest, step: Step) -> str:
    session_id = voice_request.session_id
    # One request of a call at a time; after LOCK_WAIT go on rather than keep AT waiting.
    lock = rt.redis_keys.atvoice + "lock:" + session_id
    async with exclusive(rt.redis, lock, hold_seconds=LOCK_SECONDS, wait_seconds=LOCK_WAIT):
        if not voice_request.active:
            return await _finish(rt, voice_request)
        # A redelivered step: same answer, nothing done twice.
        return await answer_once(
            rt.menu_store.answers,
            f"atvoice:{session_id}:{step.number}",
            lambda: _menu_answer(rt, voice_request, step),
        )


def _is_redis(exc: Exception) -> bool:
    return isinstance(exc, redis.RedisError)


def _sorry(rt: Runtime) -> str:
    language = rt.config.default_language
    return render_words(speech(rt.config, language, "sorry"), voice_of(rt.config, language))


routes: list[BaseRoute] = [Route(PATH, at_voice, methods=["POST"])]

"""The operator's side of a live call, as routes: ringing the operator's phone, the TwiML and
status callbacks of their leg. What a bridge or a transfer does to the live queue is
gateway.live.leg; moving a Twilio call is gateway.providers.twilio.live.

Twilio: "take call" places a call to the operator's phone whose TwiML (the URL below) is
`<Dial><Queue>DEPT</Queue></Dial>`: Twilio bridges the caller at the head of the department's
queue. When the caller we chose is not at that head (an urgent caller goes first), the URL
names them (`c=`): once the operator answers, that caller's live call is moved into a queue of
their own and the operator's leg dials that one. A transfer moves the caller's live call into
another department's queue with new TwiML (Calls API). Every URL is signed like the IVR's:

    POST /webhooks/twilio/operator?q=DEPT[&c=CallSid]   the operator answered: Dial the queue
    POST /webhooks/twilio/operator/bridged?q=DEPT       <Queue url>: who was actually bridged
    POST /webhooks/twilio/operator/status               status callback of the operator's call

Africa's Talking has no per-call URL: the operator's answered call arrives on the number's voice
callback (gateway.routes.voice_africastalking asks `at_leg_answer`) and is answered with
`<Dequeue phoneNumber=AT_VOICE_NUMBER name=DEPT/>`, which bridges the longest-waiting caller.
It has no way to move a live call between queues, so transfer is Twilio and simulator only.

The outbox provider (the embedded default) records the operator's call; the simulator rings it
and its "answer" connects the two phones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlencode

import redis
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from casestore import calls
from casestore.calls import CallStatus
from gateway.answer_once import Answers, answer_once
from gateway.forms import BadRequest, require
from gateway.live import leg
from gateway.live.leg import BridgeError
from gateway.live.queue import Waiting
from gateway.menu_session import session_key
from gateway.providers import registry, twilio
from gateway.providers.africastalking import live as at_live
from gateway.providers.africastalking import voice as at_voice
from gateway.providers.base import Caller, CallResult, SendError
from gateway.providers.twilio import voice as twilio_voice
from gateway.routes.verified import verified_twilio_form
from gateway.routes.webhooks import refuse, unavailable
from gateway.runtime import Runtime
from ivr.speech import speech

log = logging.getLogger(__name__)

LEG_PATH = "/webhooks/twilio/operator"
BRIDGED_PATH = LEG_PATH + "/bridged"
LEG_STATUS_PATH = LEG_PATH + "/status"
_ANSWER_SECONDS = 600


def leg_url(rt: Runtime, department: str, call_sid: str | None) -> str:
    params = {"q": department, **({"c": call_sid} if call_sid else {})}
    return f"{rt.settings.public_url}{LEG_PATH}?{urlencode(params)}"


# ---------------------------------------------------------------- placing the operator's call


def caller(rt: Runtime, provider: str) -> Caller:
    """The client that places the operator's call (the registry's, for this environment)."""
    return registry.caller(provider, env=rt.settings.env)


def place_operator_call(
    rt: Runtime, entry: Waiting, operator_phone: str, *, jump: bool
) -> tuple[str, CallResult]:
    """Ring the operator's phone for this caller (blocking); returns (provider, result).

    Raises BridgeError when the deployment cannot bridge, SendError when the provider refused.
    """
    via = leg.bridge_provider(rt, entry)
    if via == "twilio":
        url = leg_url(rt, entry.department, entry.call_sid if jump else None)
        status = rt.settings.public_url + LEG_STATUS_PATH
        return via, caller(rt, via).place_call(operator_phone, url=url, status_callback=status)
    if via == "africastalking":
        if not rt.settings.env.get("AT_VOICE_NUMBER"):
            raise BridgeError("AT_VOICE_NUMBER must be set: Dequeue names the number's queue")
        return via, caller(rt, via).place_call(operator_phone, url=None, status_callback=None)
    return via, caller(rt, via).place_call(operator_phone, url=None, status_callback=None)


async def _verified(request: Request) -> tuple[Runtime, dict[str, str]]:
    rt, form = await verified_twilio_form(request)
    require(form, "CallSid")
    return rt, form


def _department(rt: Runtime, query: Mapping[str, str]) -> str:
    department = query.get("q", "")
    if department not in rt.config.departments:
        raise BadRequest("unknown queue")
    return department


def _xml(twiml: str) -> Response:
    return Response(twiml, media_type="application/xml")


def render_leg(rt: Runtime, department: str, queue: str) -> str:
    """The operator's leg: who is calling, then Dial the queue; a word when the caller left."""
    lang = rt.config.default_language
    label = rt.config.departments[department].label(lang)
    notice = speech(rt.config, lang, "operator_notice", department=label)
    bridged_url = f"{rt.settings.public_url}{BRIDGED_PATH}?{urlencode({'q': department})}"
    return twilio_voice.render_leg(
        notice,
        speech(rt.config, lang, "over"),
        twilio_voice.voice_of(rt.config, lang),
        queue,
        bridged_url,
    )


async def operator_answered(request: Request) -> Response:
    """The operator picked up: dial the department's queue (or the chosen caller's own)."""
    try:
        rt, form = await _verified(request)
        department = _department(rt, request.query_params)
        chosen = request.query_params.get("c")
        chosen = twilio_voice.parse_sid(chosen, "c") if chosen is not None else None
    except BadRequest as exc:
        return refuse(exc)
    leg_ref = form["CallSid"].strip()

    async def connect() -> str:
        queue = department
        if chosen is not None:
            try:
                queue = await run_in_threadpool(leg.move_to_private_queue, rt, department, chosen)
            except SendError as exc:  # the caller hung up meanwhile: take the next one in line
                log.warning("could not move the chosen caller to the operator: %s", exc.reason)
        twiml = render_leg(rt, department, queue)

        def answered() -> None:
            with rt.sessions() as session, session.begin():
                calls.mark_answered(session, twilio.PROVIDER, leg_ref, datetime.now(UTC))

        try:
            await run_in_threadpool(answered)
        except DBAPIError:
            log.error("operator leg: could not record the answer (database unavailable)")
        return twiml

    # A redelivery must not move the caller twice.
    answers = Answers(rt.redis, rt.redis_keys.live + "answer:", _ANSWER_SECONDS)
    return _xml(await answer_once(answers, leg_ref, connect))


async def queue_bridged(request: Request) -> Response:
    """`<Queue url>`: Twilio is about to connect a caller; played on the caller's side."""
    try:
        rt, form = await _verified(request)
        department = _department(rt, request.query_params)
        bridged = twilio_voice.parse_bridged(form, rt.config.country)
    except BadRequest as exc:
        return refuse(exc)
    caller_sid = bridged.call_sid
    state = rt.menu_store.load(session_key(twilio.PROVIDER, caller_sid))
    language = state.language if state else rt.config.default_language
    now = time.time()
    fallback = Waiting(
        call_sid=caller_sid,
        department=department,
        provider=twilio.PROVIDER,
        phone=bridged.phone,
        urgent=False,
        language=language,
        since=now - bridged.queued_seconds if bridged.queued_seconds is not None else now,
        seen=now,
    )
    try:
        await run_in_threadpool(leg.bridged, rt, caller_sid, bridged.leg_sid, fallback)
    except redis.RedisError as exc:  # the caller still gets connected
        log.error("live queue: could not record a bridge: %s", type(exc).__name__)
    text = speech(rt.config, language, "connecting")
    return _xml(twilio_voice.render_say(text, twilio_voice.voice_of(rt.config, language)))


async def leg_status(request: Request) -> Response:
    """Status callback of the operator's call: its row, and the caller it never reached."""
    try:
        rt, form = await _verified(request)
        report = twilio_voice.parse_call_status(form)
    except BadRequest as exc:
        return refuse(exc)
    leg_ref, status, raw = report.call_sid, report.status, report.provider_status

    def work() -> bool:
        with rt.sessions() as session, session.begin():
            now = datetime.now(UTC)
            if status is CallStatus.ANSWERED:
                return calls.mark_answered(session, twilio.PROVIDER, leg_ref, now) is not None
            return calls.mark_finished(
                session, twilio.PROVIDER, leg_ref, status=status, reason=f"twilio {raw}", now=now
            )

    try:
        known = await run_in_threadpool(work)
        await run_in_threadpool(leg.leg_finished, rt, leg_ref, status)
    except DBAPIError:
        return unavailable()
    if not known:
        return PlainTextResponse("unknown call", status_code=404)
    return PlainTextResponse("ok")


# ---------------------------------------------------------------- Africa's Talking


def at_dequeue(rt: Runtime, department: str) -> str:
    """The operator's leg on Africa's Talking: bridge the department queue's next caller."""
    lang = rt.config.default_language
    label = rt.config.departments[department].label(lang)
    notice = speech(rt.config, lang, "operator_notice", department=label)
    number = rt.settings.env.get("AT_VOICE_NUMBER", "")
    return at_live.render_dequeue(notice, at_voice.voice_of(rt.config, lang), number, department)


def at_leg_answer(rt: Runtime, session_id: str) -> str | None:
    """If this answered outbound call is an operator's leg, its Dequeue XML (blocking)."""
    department = leg.at_leg_answered(rt, session_id)
    return None if department is None else at_dequeue(rt, department)


routes: list[BaseRoute] = [
    Route(LEG_PATH, operator_answered, methods=["POST"]),
    Route(BRIDGED_PATH, queue_bridged, methods=["POST"]),
    Route(LEG_STATUS_PATH, leg_status, methods=["POST"]),
]

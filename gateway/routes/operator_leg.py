"""The operator's side of a live call: ringing the operator's phone and bridging the caller.

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
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import redis
import requests
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client as TwilioClient

from casestore import calls
from casestore.calls import CallStatus
from casestore.models import Operator
from gateway import livequeue
from gateway.calls import OutboxCaller, caller_from_env
from gateway.forms import BadRequest, read_form, require, signed_fields
from gateway.livequeue import LiveCall, Waiting
from gateway.providers import twilio
from gateway.providers.africastalking import voice as at_voice
from gateway.providers.base import Caller, CallResult, SendError
from gateway.providers.registry import provider_env
from gateway.providers.twilio import voice as twilio_voice
from gateway.routes.missed_call import TWILIO_CALL_STATUS
from gateway.routes.voice_twilio import caller_phone, session_key
from gateway.routes.webhooks import public_url, refuse, runtime, unavailable
from gateway.runtime import Runtime
from gateway.senders import _network_error, _scrub
from ivr.speech import speech

log = logging.getLogger(__name__)

LEG_PATH = "/webhooks/twilio/operator"
BRIDGED_PATH = LEG_PATH + "/bridged"
LEG_STATUS_PATH = LEG_PATH + "/status"
TRANSFER_STEP = 5000  # action steps of transfers: far from the menu's own step numbers
_ANSWER_SECONDS = 600

FINAL = frozenset({CallStatus.COMPLETED, CallStatus.UNANSWERED, CallStatus.FAILED})


class BridgeError(Exception):
    """The operator cannot be connected to this caller as the deployment is set up."""


def private_queue(department: str, call_sid: str) -> str:
    """A queue holding one caller, so the operator's Dial bridges exactly them (≤ 64 chars)."""
    return f"{department}.{call_sid}"[:64]


def leg_url(rt: Runtime, department: str, call_sid: str | None) -> str:
    params = {"q": department, **({"c": call_sid} if call_sid else {})}
    return f"{rt.settings.public_url}{LEG_PATH}?{urlencode(params)}"


# ---------------------------------------------------------------- placing the operator's call


def _relevant_env(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return provider_env(env)


@lru_cache(maxsize=8)
def _caller_for(provider: str, env: tuple[tuple[str, str], ...]) -> Caller:
    return caller_from_env(provider, dict(env))


_outbox = OutboxCaller()


def caller(rt: Runtime, provider: str) -> Caller:
    """The client that places the operator's call (one per provider and environment)."""
    if provider == "outbox":
        return _outbox
    return _caller_for(provider, _relevant_env(rt.settings.env))


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


def place_operator_call(
    rt: Runtime, entry: Waiting, operator_phone: str, *, jump: bool
) -> tuple[str, CallResult]:
    """Ring the operator's phone for this caller (blocking); returns (provider, result).

    Raises BridgeError when the deployment cannot bridge, SendError when the provider refused.
    """
    via = bridge_provider(rt, entry)
    if via == "twilio":
        url = leg_url(rt, entry.department, entry.call_sid if jump else None)
        status = rt.settings.public_url + LEG_STATUS_PATH
        return via, caller(rt, via).place_call(operator_phone, url=url, status_callback=status)
    if via == "africastalking":
        if not rt.settings.env.get("AT_VOICE_NUMBER"):
            raise BridgeError("AT_VOICE_NUMBER must be set: Dequeue names the number's queue")
        return via, caller(rt, via).place_call(operator_phone, url=None, status_callback=None)
    return via, caller(rt, via).place_call(operator_phone, url=None, status_callback=None)


# ---------------------------------------------------------------- moving a Twilio live call


@lru_cache(maxsize=4)
def _twilio_rest(account_sid: str, auth_token: str, base_url: str | None) -> Any:
    client: Any = TwilioClient(account_sid, auth_token, http_client=TwilioHttpClient(timeout=10))
    client.edge = None  # TWILIO_EDGE / TWILIO_REGION would rewrite the host
    client.region = None
    if base_url:
        client.api.base_url = base_url.rstrip("/")
    return client


def redirect_twilio_call(rt: Runtime, call_sid: str, twiml: str) -> None:
    """Give a live Twilio call new TwiML (Calls API update); SendError if Twilio refuses."""
    env = rt.settings.env
    sid, token = env.get("TWILIO_ACCOUNT_SID", ""), env.get("TWILIO_AUTH_TOKEN", "")
    if not sid or not token:
        raise SendError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set", retryable=False)
    client = _twilio_rest(sid, token, env.get("TWILIO_API_BASE_URL") or None)
    try:
        client.calls(call_sid).update(twiml=twiml)
    except TwilioException as exc:
        status = getattr(exc, "status", None)
        text = _scrub(f"twilio HTTP {status}: {getattr(exc, 'msg', exc)}", (token,))
        retryable = isinstance(status, int) and (status == 429 or status >= 500)
        raise SendError(text, retryable=retryable) from None
    except requests.RequestException as exc:
        raise _network_error("twilio", exc, (token,)) from None


def _queue_step(rt: Runtime, call_sid: str) -> int:
    """A fresh step for the Enqueue action of a transfer (its answer is cached per step)."""
    key = rt.redis_keys.live + "step:" + call_sid
    step = int(rt.redis.incr(key))
    rt.redis.expire(key, livequeue.CALL_SECONDS)
    return TRANSFER_STEP + step


def transfer_twiml(rt: Runtime, entry: Waiting, department: str, step: int) -> str:
    """The caller's new TwiML: a word, then the other department's queue."""
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
    if entry.provider == "africastalking":
        raise BridgeError("Africa's Talking cannot move a live call to another queue")
    if entry.provider == "twilio":
        step = _queue_step(rt, entry.call_sid)
        redirect_twilio_call(rt, entry.call_sid, transfer_twiml(rt, entry, department, step))
    now = time.time()
    moved = replace(entry, department=department, since=now, seen=now, position=None)
    livequeue.unclaim(rt.redis, entry.call_sid)
    livequeue.register(rt.redis, moved)
    return moved


# ---------------------------------------------------------------- provider requests


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


async def _verified(request: Request) -> tuple[Runtime, dict[str, str]]:
    rt = runtime(request)
    form = await read_form(request)
    twilio.verify_signature(
        rt.settings.twilio_auth_token,
        public_url(request),
        signed_fields(request, form),
        request.headers.get("x-twilio-signature"),
    )
    require(form, "CallSid")
    return rt, form


def _department(rt: Runtime, query: Mapping[str, str]) -> str:
    department = query.get("q", "")
    if department not in rt.config.departments:
        raise BadRequest("unknown queue")
    return department


def _sid(raw: str, name: str) -> str:
    sid = raw.strip()
    if not sid or len(sid) > 64 or not (sid.isascii() and sid.isalnum()):
        raise BadRequest(f"malformed {name}")
    return sid


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


def _private_twiml(rt: Runtime, department: str, call_sid: str, language: str) -> str:
    return twilio_voice.render_private_queue(
        private_queue(department, call_sid),
        speech(rt.config, language, "goodbye"),
        twilio_voice.voice_of(rt.config, language),
    )


async def operator_answered(request: Request) -> Response:
    """The operator picked up: dial the department's queue (or the chosen caller's own)."""
    try:
        rt, form = await _verified(request)
        department = _department(rt, request.query_params)
        chosen = request.query_params.get("c")
        chosen = _sid(chosen, "c") if chosen is not None else None
    except BadRequest as exc:
        return refuse(exc)
    leg = form["CallSid"].strip()
    cached = rt.redis.get(rt.redis_keys.live + "answer:" + leg)
    if cached is not None:  # a redelivery must not move the caller twice
        return _xml(cached.decode() if isinstance(cached, bytes) else str(cached))
    queue = department
    if chosen is not None:
        call = livequeue.load_call(rt.redis, chosen)
        language = call.language if call else rt.config.default_language
        try:
            twiml = _private_twiml(rt, department, chosen, language)
            await run_in_threadpool(redirect_twilio_call, rt, chosen, twiml)
            queue = private_queue(department, chosen)
        except SendError as exc:  # the caller hung up meanwhile: take the next one in line
            log.warning("could not move the chosen caller to the operator: %s", exc.reason)
    twiml = render_leg(rt, department, queue)
    rt.redis.set(rt.redis_keys.live + "answer:" + leg, twiml, ex=_ANSWER_SECONDS)

    def answered() -> None:
        with rt.sessions() as session, session.begin():
            calls.mark_answered(session, twilio.PROVIDER, leg, datetime.now(UTC))

    try:
        await run_in_threadpool(answered)
    except DBAPIError:
        log.error("operator leg: could not record the answer (database unavailable)")
    return _xml(twiml)


async def queue_bridged(request: Request) -> Response:
    """`<Queue url>`: Twilio is about to connect a caller; played on the caller's side."""
    try:
        rt, form = await _verified(request)
        department = _department(rt, request.query_params)
        caller_sid = _sid(form["CallSid"], "CallSid")
        leg = form.get("DequeingCallSid", "").strip() or None
    except BadRequest as exc:
        return refuse(exc)
    state = rt.menu_store.load(session_key(caller_sid))
    language = state.language if state else rt.config.default_language
    now = time.time()
    queued = form.get("QueueTime", "").strip()
    fallback = Waiting(
        call_sid=caller_sid,
        department=department,
        provider=twilio.PROVIDER,
        phone=caller_phone(form.get("From", ""), rt.config.country),
        urgent=False,
        language=language,
        since=now - int(queued) if queued.isdigit() and len(queued) < 9 else now,
        seen=now,
    )
    try:
        await run_in_threadpool(bridged, rt, caller_sid, leg, fallback)
    except redis.RedisError as exc:  # the caller still gets connected
        log.error("live queue: could not record a bridge: %s", type(exc).__name__)
    text = speech(rt.config, language, "connecting")
    return _xml(twilio_voice.render_say(text, twilio_voice.voice_of(rt.config, language)))


async def leg_status(request: Request) -> Response:
    """Status callback of the operator's call: its row, and the caller it never reached."""
    try:
        rt, form = await _verified(request)
        require(form, "CallStatus")
        raw = form["CallStatus"].strip().lower()
        if raw not in TWILIO_CALL_STATUS:
            allowed = ", ".join(TWILIO_CALL_STATUS)
            raise BadRequest(f"unknown CallStatus {raw!r}; expected one of {allowed}")
    except BadRequest as exc:
        return refuse(exc)
    leg, status = form["CallSid"].strip(), TWILIO_CALL_STATUS[raw]

    def work() -> bool:
        with rt.sessions() as session, session.begin():
            now = datetime.now(UTC)
            if status is CallStatus.ANSWERED:
                return calls.mark_answered(session, twilio.PROVIDER, leg, now) is not None
            return calls.mark_finished(
                session, twilio.PROVIDER, leg, status=status, reason=f"twilio {raw}", now=now
            )

    try:
        known = await run_in_threadpool(work)
        await run_in_threadpool(leg_finished, rt, leg, status)
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
    return at_voice.render_dequeue(notice, at_voice.voice_of(rt.config, lang), number, department)


def at_leg_answer(rt: Runtime, session_id: str) -> str | None:
    """If this answered outbound call is an operator's leg, its Dequeue XML (blocking)."""
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
    return at_dequeue(rt, call.department)


def at_session_ended(rt: Runtime, session_id: str) -> None:
    """The last request of an AT call: a waiting caller left; an operator's leg ended."""
    livequeue.caller_gone(rt.redis, session_id)
    if livequeue.call_for_leg(rt.redis, session_id) is not None:
        leg_finished(rt, session_id, CallStatus.COMPLETED)


routes: list[BaseRoute] = [
    Route(LEG_PATH, operator_answered, methods=["POST"]),
    Route(BRIDGED_PATH, queue_bridged, methods=["POST"]),
    Route(LEG_STATUS_PATH, leg_status, methods=["POST"]),
]

"""Twilio voice: the shared menu spoken as TwiML; every step signed and answered once.

URLs the app hands to Twilio, all checked with X-Twilio-Signature over VENTANILLA_PUBLIC_URL:

    POST /webhooks/twilio/voice                   incoming call (step 0)
    POST /webhooks/twilio/voice?step=N[&rec=1]    action of the Gather/Record of step N-1
    POST /webhooks/twilio/voice/wait?q=D&u=0|1    Enqueue waitUrl: position and expected wait
    POST /webhooks/twilio/voice/hold?q=D&u=0|1    the wait Gather's action: 1 answers <Leave/>
    POST /webhooks/twilio/voice/queue?step=N&q=D&u=0|1   Enqueue action: QueueResult
    POST /webhooks/twilio/voice/status            call status callback: drops the session

`step` grows by one with every answer, so CallSid + step names one request: its TwiML is
cached and a redelivery gets it back without touching the menu again (first answer wins).
Queue name = department code; urgent callers join the same queue (the case carries the flag).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import redis
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.answer_once import answer_once, exclusive
from gateway.forms import BadRequest
from gateway.live import queue as livequeue
from gateway.menu_session import Call, advance, perform
from gateway.menu_session import session_key as menu_session_key
from gateway.menu_store import SessionStore
from gateway.providers.twilio.voice import (
    CALLBACK_RESULTS,
    EMPTY,
    FINAL_CALL_STATUSES,
    GONE_RESULTS,
    HOLD_PATH,
    QUEUE_PATH,
    STATUS_PATH,
    VOICE_PATH,
    WAIT_PATH,
    parse_queue_result,
    parse_queue_wait,
    render_goodbye,
    render_hold,
    render_redirect,
    render_screen,
    render_wait,
    step_input,
    voice_of,
)
from gateway.rediskeys import keys_of
from gateway.routes.verified import verified_twilio_call
from gateway.routes.webhooks import public_url, refuse, runtime, unavailable
from ivr.machine import Action, State, queue_wait, resume
from ivr.menu import Menu
from ivr.speech import speech

log = logging.getLogger(__name__)

PROVIDER = "twilio"
MAX_STEP = 10_000

LOCK_SECONDS = 15
TWIN_WAIT_SECONDS = 10.0


def parse_step(query: Mapping[str, str], required: bool = False) -> int:
    """The step number of an action URL the app emitted; 0 is the incoming call."""
    raw = query.get("step")
    if raw is None and not required:
        return 0
    if raw is None or not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_STEP:
        raise BadRequest("bad step")
    return int(raw)


def parse_queue(query: Mapping[str, str], menu: Menu) -> tuple[str, bool]:
    """(department, urgent) of a queue URL the app emitted."""
    department = query.get("q", "")
    if department not in menu.config.departments:
        raise BadRequest("unknown queue")
    if query.get("u") not in ("0", "1"):
        raise BadRequest("bad urgent flag")
    return department, query["u"] == "1"


def session_key(call_sid: str) -> str:
    """The key `advance` keeps this call's menu session under."""
    return menu_session_key(PROVIDER, call_sid)


def goodbye(menu: Menu, language: str, name: str = "goodbye") -> str:
    """The last words (the menu's goodbye prompt, or the apology) and hang up."""
    text = menu.prompt(name, language) if name != "sorry" else speech(menu.config, language, name)
    return render_goodbye(text, voice_of(menu.config, language))


# ---------------------------------------------------------------- routes


def _xml(twiml: str) -> Response:
    return Response(twiml, media_type="application/xml")


async def _guarded(request: Request, handler: Callable[[], Awaitable[Response]]) -> Response:
    """Errors as the contract wants them: 4xx for bad requests, 503 for the database only."""
    try:
        return await handler()
    except BadRequest as exc:
        return refuse(exc)
    except DBAPIError as exc:
        log.error("voice step failed, database unavailable: %s", type(exc).__name__)
        return unavailable()
    except Exception as exc:  # Redis or a bug: the caller hears an apology, never a 500
        bug = not isinstance(exc, redis.RedisError)
        log.error("voice step failed: %s", type(exc).__name__, exc_info=bug)
        menu = runtime(request).menu
        return _xml(goodbye(menu, menu.config.default_language, "sorry"))


async def _once(
    store: SessionStore, key: str, again_url: str, produce: Callable[[], Awaitable[str]]
) -> Response:
    """Answer a step once: a redelivery (even concurrent) gets the first answer back."""
    cached = store.answers.get(key)
    if cached is not None:
        return _xml(cached)
    lock = keys_of(store.client).twilio_voice_lock + key
    async with exclusive(
        store.client, lock, hold_seconds=LOCK_SECONDS, wait_seconds=TWIN_WAIT_SECONDS, poll=0.05
    ) as held:
        if not held:  # still busy: ask Twilio to come back; by then the answer is cached
            return _xml(render_redirect(again_url))
        # The twin we waited for has answered: that answer is the one kept.
        return _xml(await answer_once(store.answers, key, produce))


async def voice(request: Request) -> Response:
    """The incoming call and every menu step after it."""

    async def handle() -> Response:
        rt, form, call = await verified_twilio_call(request)
        step = parse_step(request.query_params)
        value = None if step == 0 else step_input(form, request.query_params.get("rec") == "1")

        async def produce() -> str:
            menu_call = Call("voice", PROVIDER, call.call_sid, str(step), call.phone, value)
            screen = await advance(rt, rt.menu, rt.menu_store, menu_call)
            return render_screen(rt.menu, rt.settings.public_url, screen, step + 1)

        key = f"voice:{call.call_sid}:{step}"
        return await _once(rt.menu_store, key, public_url(request), produce)

    return await _guarded(request, handle)


async def wait(request: Request) -> Response:
    """Enqueue waitUrl, requested again each time its TwiML ends: nothing is created here."""

    async def handle() -> Response:
        rt, form, call = await verified_twilio_call(request)
        department, urgent = parse_queue(request.query_params, rt.menu)
        store, menu = rt.menu_store, rt.menu
        state = store.load(session_key(call.call_sid))
        state = state or State(channel="voice", language=menu.config.default_language)
        queued = parse_queue_wait(form)
        waited, position = queued.waited, queued.position
        limit = int(menu.config.raw.get("ivr", {}).get("max_queue_wait_seconds", 300))
        # machine.queue_wait floors Twilio's expected wait at 1 min.
        screen = queue_wait(menu, state, position, queued.expected, timed_out=waited >= limit)
        store.save(session_key(call.call_sid), screen.state)  # a long wait keeps the session
        livequeue.arrived(  # the operators' live queue view
            rt.redis, call.call_sid, department, PROVIDER, call.phone,
            urgent=urgent, language=state.language, waited=waited, position=position,
        )  # fmt: skip
        return _xml(render_wait(menu, rt.settings.public_url, screen, department, urgent))

    return await _guarded(request, handle)


async def hold(request: Request) -> Response:
    """A key pressed while queued: 1 leaves the queue (the Enqueue action records the call-back)."""

    async def handle() -> Response:
        rt, form, call = await verified_twilio_call(request)
        parse_queue(request.query_params, rt.menu)
        if step_input(form, recording=False) == "1":
            # A withheld number cannot be called back: it keeps waiting.
            return _xml(render_hold(call.phone is not None, None, {}))
        state = rt.menu_store.load(session_key(call.call_sid))
        lang = state.language if state else rt.menu.config.default_language
        invalid = rt.menu.prompt("invalid", lang)
        return _xml(render_hold(False, invalid, voice_of(rt.menu.config, lang)))

    return await _guarded(request, handle)


async def queue_result(request: Request) -> Response:
    """The caller left the queue: a call-back request (pressed 1, queue full), or goodbye."""

    async def handle() -> Response:
        rt, form, call = await verified_twilio_call(request)
        step = parse_step(request.query_params, required=True)
        department, urgent = parse_queue(request.query_params, rt.menu)
        result = parse_queue_result(form)
        livequeue.remove(rt.redis, call.call_sid, department)  # not a queue it moved on to
        store, menu = rt.menu_store, rt.menu

        async def produce() -> str:
            key = session_key(call.call_sid)
            state = store.load(key) or State(channel="voice", language=menu.config.default_language)
            twiml = goodbye(menu, state.language)
            if result in GONE_RESULTS:
                twiml = EMPTY
            elif result in CALLBACK_RESULTS and call.phone is not None:
                # Not `advance(..., "1")`: the queue's own department and urgency must be kept.
                queued = replace(state, node="operator", phase="queue")
                action = Action("callback", department=department, urgent=urgent)
                menu_call = Call("voice", PROVIDER, call.call_sid, str(step), call.phone, "1")
                now = datetime.now(UTC)
                outcome = await run_in_threadpool(perform, rt, menu, menu_call, queued, action, now)
                screen = resume(menu, queued, action, outcome)
                twiml = render_screen(menu, rt.settings.public_url, screen, step + 1)
            store.drop(key)
            return twiml

        key = f"voice:{call.call_sid}:{step}"
        return await _once(store, key, public_url(request), produce)

    return await _guarded(request, handle)


async def call_status(request: Request) -> Response:
    """Call status callback: a finished call's session is dropped at once, not at its TTL."""

    async def handle() -> Response:
        rt, form, call = await verified_twilio_call(request)
        if call.status in FINAL_CALL_STATUSES:
            rt.menu_store.drop(session_key(call.call_sid))
            livequeue.caller_gone(rt.redis, call.call_sid)
        return _xml(EMPTY)

    return await _guarded(request, handle)


routes: list[BaseRoute] = [
    Route(VOICE_PATH, voice, methods=["POST"]),
    Route(WAIT_PATH, wait, methods=["POST"]),
    Route(HOLD_PATH, hold, methods=["POST"]),
    Route(QUEUE_PATH, queue_result, methods=["POST"]),
    Route(STATUS_PATH, call_status, methods=["POST"]),
]

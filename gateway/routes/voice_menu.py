"""The shared voice menu for every provider with a `VoiceMenu` in the registry.

Each such provider gets three routes at the paths its adapter names: the call's first request
(`answer_path`, GET or POST), every later step (`step_path`, at URLs the app's answers carry:
`?step=N&call=ID[&p=PHONE]`), and call events (`event_path`). The routes verify, parse, run
the one menu runner (gateway.menu_session.advance) and render with the adapter; an event is
recorded on the outbound call it belongs to. Vonage is the first user; Twilio and Africa's
Talking keep their own routes until their renderers move under gateway/providers/.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import urlencode

import redis
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from casestore import calls
from gateway.answer_once import answer_once
from gateway.forms import BadRequest
from gateway.menu_session import Call, advance, perform
from gateway.providers import registry
from gateway.providers.base import Answer, CallEvent, CallStep, SendError, VoiceMenu
from gateway.routes.webhooks import read_webhook, refuse, runtime, unavailable
from gateway.runtime import Runtime
from ivr.machine import Action, Screen, resume
from ivr.speech import speech

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


def _response(answer: Answer) -> Response:
    return Response(answer.body, media_type=answer.media_type)


def _session_key(provider: str, call_id: str) -> str:
    return f"{provider}:{call_id}"  # the key gateway.menu_session.advance uses


async def _without_queue(rt: Runtime, call: Call, screen: Screen) -> Screen:
    """A provider that cannot hold a caller in a live queue takes a call-back request instead
    of queueing (the menu's "talk to an operator")."""
    action = screen.action
    if action is None or action.kind != "enqueue":
        return screen
    callback = Action("callback", department=action.department, urgent=action.urgent)
    now = datetime.now(UTC)
    outcome = await run_in_threadpool(perform, rt, rt.menu, call, screen.state, callback, now)
    answer = resume(rt.menu, screen.state, callback, outcome)
    key = _session_key(call.provider, call.session_id)
    if answer.end:
        rt.menu_store.drop(key)
    else:
        rt.menu_store.save(key, answer.state)
    return answer


async def _screen_for(rt: Runtime, provider: str, adapter: VoiceMenu, step: CallStep) -> Answer:
    """Advance the caller's menu session by this step and render the screen it leads to."""
    if step.step == 0:
        value = None
    elif step.recording_url is not None:
        value = step.recording_url
    else:
        value = step.digits or ""
    call = Call("voice", provider, step.call_id, str(step.step), step.phone, value)
    screen = await advance(rt, rt.menu, rt.menu_store, call)
    if not registry.info(provider).queues_callers:
        screen = await _without_queue(rt, call, screen)
    params: dict[str, str | int] = {"step": step.step + 1, "call": step.call_id}
    if step.phone:
        params["p"] = step.phone
    factory = registry.info(provider).voice_menu
    assert factory is not None
    next_url = f"{rt.settings.public_url}{factory.step_path}?{urlencode(params)}"
    return adapter.render_screen(rt.menu, screen, next_url)


async def _guarded(
    rt: Runtime, adapter: VoiceMenu, handle: Callable[[], Awaitable[Response]]
) -> Response:
    """Errors as the contract wants them: 4xx for bad requests, 503 for the database only;
    anything else and the caller hears an apology, never a 500."""
    try:
        return await handle()
    except BadRequest as exc:
        return refuse(exc)
    except DBAPIError as exc:
        log.error("voice step failed, database unavailable: %s", type(exc).__name__)
        return unavailable()
    except Exception as exc:
        bug = not isinstance(exc, redis.RedisError)
        log.error("voice step failed: %s", type(exc).__name__, exc_info=bug)
        language = rt.menu.config.default_language
        sorry = speech(rt.config, language, "sorry")
        return _response(adapter.render_goodbye(rt.menu, sorry, language))


def menu_step(provider: str) -> Handler:
    """The route of `provider`'s call steps: the first request, and every step after it."""

    async def route(request: Request) -> Response:
        rt = runtime(request)
        adapter = rt.voice_menus[provider]

        async def handle() -> Response:
            webhook = await read_webhook(request)
            adapter.verify(webhook)
            step = adapter.parse_step(webhook, rt.config.country)
            # A redelivered step gets the first answer back and changes nothing.
            key = f"voice:{provider}:{step.call_id}:{step.step}"

            async def produce() -> str:
                answer = await _screen_for(rt, provider, adapter, step)
                if step.pushed:  # the provider will not read this answer: send it to the call
                    try:
                        await run_in_threadpool(adapter.push, step.call_id, answer)
                    except SendError as exc:
                        log.error("%s: could not continue the call: %s", provider, exc.reason)
                return answer.body

            body = await answer_once(rt.menu_store.answers, key, produce)
            return _response(Answer(body, "application/json"))

        return await _guarded(rt, adapter, handle)

    return route


def _record(rt: Runtime, provider: str, event: CallEvent) -> None:
    """The event on the outbound call it belongs to (nothing when the call is not ours)."""
    now = datetime.now(UTC)
    with rt.sessions() as session, session.begin():
        if event.answered:
            calls.mark_answered(session, provider, event.call_id, now)
        elif event.status == "completed":
            calls.mark_ended(session, provider, event.call_id, reason=event.status, now=now)
        elif event.ended:
            status = calls.CallStatus.FAILED if event.failed else calls.CallStatus.UNANSWERED
            calls.mark_finished(
                session, provider, event.call_id, status=status, reason=event.status, now=now
            )


def call_event(provider: str) -> Handler:
    """The route of `provider`'s call events: recorded on our outbound call; a finished
    call's menu session is dropped at once, not at its TTL."""

    async def route(request: Request) -> Response:
        rt = runtime(request)
        adapter = rt.voice_menus[provider]
        try:
            webhook = await read_webhook(request)
            adapter.verify(webhook)
            event = adapter.parse_event(webhook)
        except BadRequest as exc:
            return refuse(exc)
        try:
            await run_in_threadpool(_record, rt, provider, event)
        except DBAPIError as exc:
            log.error("call event not recorded: %s", type(exc).__name__)
            return unavailable()
        if event.ended:
            rt.menu_store.drop(_session_key(provider, event.call_id))
        return Response(status_code=204)

    return route


routes: list[BaseRoute] = [
    route
    for p in registry.PROVIDERS
    if p.voice_menu is not None
    for route in (
        Route(p.voice_menu.answer_path, menu_step(p.name), methods=["GET", "POST"]),
        Route(p.voice_menu.step_path, menu_step(p.name), methods=["POST"]),
        Route(p.voice_menu.event_path, call_event(p.name), methods=["POST"]),
    )
]

"""Africa's Talking USSD over the shared menu: a session followed over AT's accumulated `text`
(the form parsed and the CON/END screens rendered in gateway.providers.africastalking.ussd).

AT sends `text` = "" on a session's first request, then every input so far joined by "*"
("1*3*sin agua"). The session's last `text` is kept in Redis beside its menu state, so the new
input is what follows it, even when a free-text answer contains "*". When that is gone (Redis
lost the session, or a dial string that already carries inputs) the position is rebuilt by
walking the menu over the whole string. Answers are cached per session and `text`, so a
redelivered request gets the same body and changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from redis.client import Pipeline
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from casestore.db import is_database_error, is_unreachable
from casestore.menu_actions import ussd_limit_hit
from gateway import dead_letters
from gateway.forms import BadRequest
from gateway.menu_session import Call, advance, keep, run_step, session_key
from gateway.menu_store import SessionStore, decode_state
from gateway.providers import africastalking
from gateway.providers.africastalking.ussd import (
    SEPARATOR,
    UssdRequest,
    parse_ussd,
    render_end,
    render_ussd,
)
from gateway.redis_batch import batch_for
from gateway.routes.verified import verified_at_form
from gateway.runtime import Runtime
from ivr.machine import Channel, Expect, Outcome, Screen, State, resume, start, step
from ivr.menu import Menu

log = logging.getLogger(__name__)

PROVIDER = africastalking.PROVIDER
UNAVAILABLE = "Servicio no disponible. Intente mas tarde."


# ---------------------------------------------------------------- following the text (pure)


def step_ref(text: str) -> str:
    """The step a request is at, from its `text` alone: every request adds a "*" to it, so
    the count is unique in a session, and a redelivery or a replay reuses the same reference."""
    return str(text.count(SEPARATOR) + 1) if text else "0"


def following(previous: str | None, text: str) -> str | None:
    """The input `text` adds to the session's previous `text`; None when it does not extend it."""
    if previous is None:
        return None
    if previous == "":
        return text
    if text.startswith(previous + SEPARATOR):
        return text[len(previous) + 1 :]
    return None


def _is_choice(part: str) -> bool:
    stripped = part.strip()
    return 0 < len(stripped) <= 2 and stripped.isascii() and stripped.isdigit()


def replay(menu: Menu, text: str) -> tuple[State, str] | None:
    """Walk the menu over every input of `text` but the last; return that state and the last.

    A free-text answer takes the following "*"-parts too, up to one that looks like a key
    press (1 or 2 digits): "1*3*casa * patio*1" is category 3, "casa * patio", confirm 1.
    Look-ups on the way found nothing (a found case ends the session). None when the walk
    ends before the last input: that text cannot come from this menu.
    """
    parts = text.split(SEPARATOR)
    screen = start(menu, Channel.USSD)
    i = 0
    while True:
        end = i + 1
        if screen.expect == Expect.TEXT:
            while end < len(parts) and not _is_choice(parts[end]):
                end += 1
        value = SEPARATOR.join(parts[i:end])
        if end >= len(parts):
            return screen.state, value
        screen = step(menu, screen.state, value)
        while screen.action is not None and screen.action.kind == "case_status":
            screen = resume(menu, screen.state, screen.action, Outcome(ok=False))
        if screen.end or screen.action is not None:
            return None
        i = end


# ---------------------------------------------------------------- the session


def _text_key(store: SessionStore, key: str) -> str:
    return store.prefix + "t:" + key


def _answer_key(key: str, text: str) -> str:
    digest = hashlib.blake2s(text.encode(), digest_size=8).hexdigest()
    return f"ussd:{key}:{step_ref(text)}:{digest}"


def remember(store: SessionStore, key: str, text: str) -> None:
    """Keep the session's last `text`, to read the next request's input off it."""
    store.client.set(_text_key(store, key), text, ex=store.ttl)


@dataclass(frozen=True)
class _Session:
    cached: str | None
    previous: str | None
    state: State | None


async def _read(store: SessionStore, key: str, answer_key: str) -> _Session:
    """The cached answer, the last text and the menu state, in one command."""
    keys = [store.answers.key(answer_key), _text_key(store, key), store.state_key(key)]
    ((cached, previous, state),) = await batch_for(store.client).run(lambda pipe: pipe.mget(keys))
    return _Session(
        cached.decode() if isinstance(cached, bytes) else cached,
        previous.decode() if isinstance(previous, bytes) else previous,
        decode_state(state),
    )


async def _write(
    store: SessionStore,
    key: str,
    answer_key: str,
    text: str,
    body: str,
    screen: Screen,
    call: Call | None = None,
) -> None:
    """Cache the answer and keep the last text; with `call`, also save the session as
    `advance` saves it (the state, and a new request the citizen may resume)."""

    def fill(pipe: Pipeline) -> None:
        queued = SessionStore(pipe, store.ttl, store.resume_seconds)
        if call is not None:
            keep(queued, key, call, screen)
        queued.answers.put(answer_key, body)
        if screen.end:
            pipe.delete(_text_key(store, key))
        else:
            remember(queued, key, text)

    await batch_for(store.client).run(fill)


async def respond(rt: Runtime, provider: str, request: UssdRequest) -> str:
    """The answer to one USSD request: cached for a redelivery, else the menu's next screen."""
    store = rt.menu_store
    key = session_key(provider, request.session_id)
    answer_key = _answer_key(key, request.text)
    session = await _read(store, key, answer_key)
    if session.cached is not None:
        return session.cached
    call = Call(
        channel=Channel.USSD,
        provider=provider,
        session_id=request.session_id,
        step_ref=step_ref(request.text),
        phone=request.phone,
        value=None,
    )
    value = following(session.previous, request.text)
    state = session.state
    if request.text and (value is None or state is None):
        # The session's state or last text is gone: rebuild the position from the whole text.
        rebuilt = replay(rt.menu, request.text)
        if rebuilt is None:
            log.info("USSD %s session %s: text does not fit the menu", provider, call.session_id)
        else:
            state, value = rebuilt
    if not request.text and rt.config.limits.ussd_sessions_per_hour:
        over = await _over_session_limit(rt, store, request.phone)
        if over is not None:
            await batch_for(store.client).run(
                lambda pipe: SessionStore(pipe, store.ttl, store.resume_seconds).answers.put(
                    answer_key, over
                )
            )
            return over
    if not request.text or value is None or state is None:
        # A dial (or a text that cannot be followed): `advance` starts the session, offering
        # to resume a new request this phone left unfinished.
        screen = await advance(rt, rt.menu, store, call)
        body = render_ussd(screen)
        await _write(store, key, answer_key, request.text, body, screen)
        return body
    # The state just read, not `advance`: it would read the session again, and a redelivery
    # of the same request running alongside may have ended it in between.
    stepped = replace(call, value=value)
    screen = await run_step(rt, rt.menu, stepped, state)
    body = render_ussd(screen)
    await _write(store, key, answer_key, request.text, body, screen, stepped)
    return body


SESSION_WINDOW_SECONDS = 3600


async def _over_session_limit(rt: Runtime, store: SessionStore, phone: str) -> str | None:
    """Count a new session (dial) of this phone in its one-hour window; over
    `[limits] ussd_sessions_per_hour` the END screen that says so, in the citizen's language
    and with the emergency lines (nothing urgent is refused: SMS and calls stay open)."""
    limit = rt.config.limits.ussd_sessions_per_hour
    key = store.prefix + "n:" + phone

    def count(pipe: Pipeline) -> None:
        pipe.set(key, 0, ex=SESSION_WINDOW_SECONDS, nx=True)  # the window opens with the first
        pipe.incr(key)

    (_, dials) = await batch_for(store.client).run(count)
    if int(dials) <= limit:
        return None
    now = datetime.now(UTC)
    language = await run_in_threadpool(_note_limit_hit, rt, phone, now, int(dials) == limit + 1)
    lang = rt.config.language_or_default(language)
    emergency = rt.config.emergency_lines.get(lang, "")
    return render_end(rt.menu.prompt("limit_ussd", lang, emergency=emergency))


def _note_limit_hit(rt: Runtime, phone: str, now: datetime, record: bool) -> str | None:
    with rt.sessions() as session, session.begin():
        return ussd_limit_hit(session, rt.config, phone, now, record=record)


def unavailable_text(menu: Menu) -> str:
    """END screen when Redis or the code failed: the citizen is told, not left hanging."""
    prompts = menu.prompts.get(menu.config.default_language, {})
    return render_end(prompts.get("unavailable", UNAVAILABLE))


# ---------------------------------------------------------------- the route


async def at_ussd(request: Request) -> Response:
    try:
        rt, form = await verified_at_form(request)
        ussd = parse_ussd(form, rt.config.country)
    except BadRequest as exc:
        return PlainTextResponse(exc.reason, status_code=exc.status)
    return await answer(rt, PROVIDER, ussd)


async def answer(rt: Runtime, provider: str, ussd: UssdRequest) -> Response:
    """Run one request and answer it; only an unreachable database gives a 5xx (503)."""
    try:
        body = await respond(rt, provider, ussd)
    except Exception as exc:
        if not is_database_error(exc):  # Redis down or a bug: end the session politely
            log.exception("USSD step failed for %s", provider)
            return PlainTextResponse(unavailable_text(rt.menu))
        if not is_unreachable(exc):
            # The database is up but refused what the citizen typed: keep it for an operator.
            kept = await dead_letters.keep(
                rt,
                channel="ussd",
                provider=provider,
                route=ROUTE,
                provider_ref=f"{ussd.session_id}:{step_ref(ussd.text)}",
                department=None,
                fields=asdict(ussd),
                exc=exc,
            )
            if kept:
                return PlainTextResponse(unavailable_text(rt.menu))
        log.error("USSD step failed, database unavailable: %s", type(exc).__name__)
        return PlainTextResponse("temporarily unable to store the request; retry", 503)
    return PlainTextResponse(body)


ROUTE = "/webhooks/africastalking/ussd"
routes: list[BaseRoute] = [Route(ROUTE, at_ussd, methods=["POST"])]

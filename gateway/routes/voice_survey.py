"""The survey call on both providers: the question spoken, one key read, the rating kept.

    POST /webhooks/twilio/survey?survey=ID[&step=N&keyed=0|1]
        Twilio: the URL the worker places the call with (step 0) and each Gather action;
        X-Twilio-Signature checked over VENTANILLA_PUBLIC_URL.
    POST /webhooks/africastalking/survey?token=T&survey=ID&step=N&keyed=0|1
        Africa's Talking: each GetDigits callback. The answered call itself comes to the
        number's voice callback, where gateway.routes.voice_africastalking hands survey calls to
        `at_answered`; the final request (isActive=0) ends the call there like any other.

How a call ended (Twilio's call status callback, AT's final request) is kept on its
outbound_calls row by the routes that handle those; feedback.voice.follow_up reads it there.
Every answer is cached per call and step, and the rating is kept only while the survey waits
for it: a redelivered step gets the same words and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from casestore import calls
from feedback.voice import VoiceScreen, answer_call, begin_call, prompt, survey_of_call
from gateway.answer_once import answer_once
from gateway.forms import BadRequest, read_form
from gateway.providers import africastalking, twilio
from gateway.providers.africastalking import parse_voice
from gateway.providers.africastalking import voice as at_voice
from gateway.providers.twilio import voice as twilio_voice
from gateway.routes.verified import verified_at, verified_twilio_call
from gateway.routes.webhooks import refuse
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

TWILIO_PATH = "/webhooks/twilio/survey"
AT_PATH = "/webhooks/africastalking/survey"
LAST_STEP = 2  # the question, then once more
_CACHE = "survey:"


@dataclass(frozen=True)
class Position:
    """Where a request sits in a survey call, from the URL the app handed the provider."""

    survey_id: int
    step: int  # 0: the call was answered; 1, 2: the key pressed after the question
    keyed: bool  # keys were pressed on an earlier step


def parse_position(query: Mapping[str, str]) -> Position:
    """The survey, step and earlier keys of a survey URL; BadRequest names the bad one."""
    survey = query.get("survey", "")
    if not (survey.isascii() and survey.isdigit()) or len(survey) > 18:
        raise BadRequest("survey must be a survey id")
    step = query.get("step", "0")
    if not (step.isascii() and step.isdigit()) or not 0 <= int(step) <= LAST_STEP:
        raise BadRequest(f"step must be 0 to {LAST_STEP}")
    keyed = query.get("keyed", "0")
    if keyed not in ("0", "1"):
        raise BadRequest("keyed must be 0 or 1")
    return Position(int(survey), int(step), keyed == "1")


def _next_query(survey_id: int, screen: VoiceScreen) -> dict[str, int]:
    return {"survey": survey_id, "step": screen.next_step, "keyed": int(screen.keyed)}


# ---------------------------------------------------------------- rendering


def render_twiml(rt: Runtime, screen: VoiceScreen, survey_id: int) -> str:
    """TwiML: the text inside a one-key Gather, or the text and a hang-up."""
    voice = twilio_voice.voice_of(rt.config, screen.language, fallback=True)
    query = urlencode(_next_query(survey_id, screen))
    action = f"{rt.settings.public_url}{TWILIO_PATH}?{query}" if screen.gather else None
    return twilio_voice.render_survey(screen.text, voice, action)


def render_at(rt: Runtime, screen: VoiceScreen, survey_id: int) -> str:
    """AT voice XML: the text inside a one-key GetDigits, or the text (the call then ends)."""
    voice = at_voice.voice_of(rt.config, screen.language, fallback=True)
    url = None
    if screen.gather:
        query = {"token": rt.settings.at_webhook_token or "", **_next_query(survey_id, screen)}
        url = f"{rt.settings.public_url}{AT_PATH}?{urlencode(query)}"
    return at_voice.render_survey(screen.text, voice, url)


def _sorry(rt: Runtime, provider: str) -> str:
    language = rt.config.default_language
    screen = VoiceScreen(prompt(rt.config, language, "sorry"), language)
    return render_twiml(rt, screen, 0) if provider == twilio.PROVIDER else render_at(rt, screen, 0)


# ---------------------------------------------------------------- answering once per step


async def _answer_once(
    rt: Runtime, provider: str, key: str, produce: Callable[[], str | None]
) -> Response:
    """The step's answer: cached if already given, else produced (in a thread) and cached.
    The cache is best effort: the database still makes the step safe to repeat."""

    async def produced() -> str | None:
        return await run_in_threadpool(produce)

    try:
        body = await answer_once(rt.menu_store.answers, _CACHE + key, produced, best_effort=True)
    except DBAPIError:
        raise  # the app answers 503; the step can come again and find nothing done
    except Exception:  # a bug: the citizen hears an apology, never silence or a 500
        log.exception("survey call step failed")
        body = _sorry(rt, provider)
    if body is None:
        return PlainTextResponse("unknown survey call", status_code=404)
    return Response(body, media_type="application/xml")


# ---------------------------------------------------------------- routes


async def twilio_survey(request: Request) -> Response:
    """Twilio: the answered survey call (step 0) and each key pressed after the question."""
    try:
        rt, form, call = await verified_twilio_call(request)
        at = parse_position(request.query_params)
    except BadRequest as exc:
        return refuse(exc)

    def produce() -> str | None:
        now = datetime.now(UTC)
        with rt.sessions() as session, session.begin():
            if at.step == 0:
                screen = begin_call(
                    session, rt.config, at.survey_id, twilio.PROVIDER, call.call_sid, now
                )
            else:
                keys = twilio_voice.step_input(form, recording=False)[:8]
                screen = answer_call(session, rt.config, at.survey_id, at.step, keys, at.keyed, now)
        return None if screen is None else render_twiml(rt, screen, at.survey_id)

    return await _answer_once(rt, twilio.PROVIDER, f"twilio:{call.call_sid}:{at.step}", produce)


async def at_answered(rt: Runtime, session_id: str) -> str | None:
    """AT's voice callback got an answered call we placed: the question, if it is a survey call;
    None for any other call (the menu then runs)."""

    def work() -> str | None:
        now = datetime.now(UTC)
        with rt.sessions() as session, session.begin():
            survey_id = survey_of_call(session, africastalking.PROVIDER, session_id)
            if survey_id is None:
                return None
            screen = begin_call(
                session, rt.config, survey_id, africastalking.PROVIDER, session_id, now
            )
            return None if screen is None else render_at(rt, screen, survey_id)

    return await run_in_threadpool(work)


async def at_survey(request: Request) -> Response:
    """Africa's Talking: each key pressed (or the silence) after the survey question."""
    try:
        rt = verified_at(request)
        at = parse_position(request.query_params)
        if at.step == 0:
            raise BadRequest("step must be 1 or 2: the call starts on the voice callback")
        form = await read_form(request)
        voice = parse_voice(form, rt.config.country)
    except BadRequest as exc:
        return refuse(exc)
    if not voice.active:
        # The final request normally goes to the number's callback; if it comes here the call
        # ends the same way.
        def ended() -> bool:
            with rt.sessions() as session, session.begin():
                return calls.mark_ended(
                    session,
                    africastalking.PROVIDER,
                    voice.session_id,
                    reason=voice.hangup_cause or voice.session_state or None,
                    now=datetime.now(UTC),
                )

        await run_in_threadpool(ended)
        return Response(at_voice.EMPTY, media_type="application/xml")

    def produce() -> str | None:
        now = datetime.now(UTC)
        with rt.sessions() as session, session.begin():
            # The token proves AT; the sessionId must also be the survey's own call.
            if survey_of_call(session, africastalking.PROVIDER, voice.session_id) != at.survey_id:
                return None
            screen = answer_call(
                session, rt.config, at.survey_id, at.step, voice.digits, at.keyed, now
            )
        return None if screen is None else render_at(rt, screen, at.survey_id)

    key = f"at:{voice.session_id}:{at.step}"
    return await _answer_once(rt, africastalking.PROVIDER, key, produce)


routes: list[BaseRoute] = [
    Route(TWILIO_PATH, twilio_survey, methods=["POST"]),
    Route(AT_PATH, at_survey, methods=["POST"]),
]

"""Notice calls: a status change said by voice to a citizen whose phone cannot take SMS.

    POST /webhooks/twilio/notice?call=ID
        Twilio: the URL the worker places a notice call with; X-Twilio-Signature checked over
        VENTANILLA_PUBLIC_URL. The answer says the message twice and hangs up.
    Africa's Talking takes no URL per call: the answered call comes to the number's voice
        callback, where gateway.routes.voice_africastalking hands notice calls to `at_answered`.

The words are the outbound_calls row's `message` (casestore.reach.queue_notice_call). How the
call ended comes back on the call status routes, as for every call the app places.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from casestore import calls
from casestore.models import OutboundCall
from casestore.reach import NOTICE
from gateway.forms import BadRequest
from gateway.providers import africastalking, twilio
from gateway.providers.africastalking import voice as at_voice
from gateway.providers.twilio import voice as twilio_voice
from gateway.routes.verified import verified_twilio_call
from gateway.routes.webhooks import refuse
from gateway.runtime import Runtime

TWILIO_PATH = "/webhooks/twilio/notice"


def render_twiml(rt: Runtime, message: str, language: str) -> str:
    """TwiML: the message, a pause, the message again, hang up."""
    voice = twilio_voice.voice_of(rt.config, language, fallback=True)
    return twilio_voice.render_notice(message, voice)


def render_at(rt: Runtime, message: str, language: str) -> str:
    """AT voice XML: the message twice (the call ends after the last action)."""
    return at_voice.render_notice(message, at_voice.voice_of(rt.config, language, fallback=True))


def parse_call_id(query: Any) -> int:
    raw = str(query.get("call", ""))
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadRequest("call must be an outbound call id")
    return int(raw)


def _notice(rt: Runtime, provider: str, *, call_id: int | None, ref: str) -> tuple[str, str] | None:
    """(message, language) of our notice call, marked answered; None if it is not one."""
    with rt.sessions() as session, session.begin():
        query = select(OutboundCall).where(
            OutboundCall.kind == NOTICE, OutboundCall.provider == provider
        )
        if call_id is not None:
            query = query.where(OutboundCall.id == call_id)
        else:
            query = query.where(OutboundCall.provider_ref == ref)
        call = session.scalar(query)
        if call is None or call.message is None:
            return None
        # Twilio may fetch the URL before the worker recorded the CallSid; never another call's.
        if call.provider_ref not in (None, ref):
            return None
        if call.provider_ref is not None:
            calls.mark_answered(session, provider, ref, datetime.now(UTC))
        return call.message, call.language or rt.config.default_language


async def twilio_notice(request: Request) -> Response:
    """Twilio: the answered notice call."""
    try:
        rt, _, call = await verified_twilio_call(request)
        call_id = parse_call_id(request.query_params)
    except BadRequest as exc:
        return refuse(exc)
    found = await run_in_threadpool(
        _notice, rt, twilio.PROVIDER, call_id=call_id, ref=call.call_sid
    )
    if found is None:
        return PlainTextResponse("unknown notice call", status_code=404)
    return Response(render_twiml(rt, *found), media_type="application/xml")


async def at_answered(rt: Runtime, session_id: str) -> str | None:
    """AT's voice callback got an answered call we placed: the notice, if it is a notice call."""
    found = await run_in_threadpool(
        _notice, rt, africastalking.PROVIDER, call_id=None, ref=session_id
    )
    return None if found is None else render_at(rt, *found)


routes: list[BaseRoute] = [Route(TWILIO_PATH, twilio_notice, methods=["POST"])]

"""Missed-call call-back: a trigger number rejects the call unanswered, the app calls back.

The citizen pays nothing: the call is never answered, and the call-back (placed by the worker
through VENTANILLA_VOICE_PROVIDER) runs the same voice menu. On Africa's Talking the trigger
number's calls arrive on the ordinary voice callback (gateway.routes.voice_africastalking asks
`is_missed_call_number`); on Twilio the number's voice webhook points at
`/webhooks/twilio/missed-call`. Twilio's status reports for the calls we place land here too.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from casestore import calls
from casestore.calls import CallStatus, MissedCall
from casestore.config import Config
from gateway.answer_once import Answers, answer_once
from gateway.forms import BadRequest, require
from gateway.menu_session import session_key
from gateway.providers import twilio
from gateway.providers.twilio import voice as twilio_voice
from gateway.routes.verified import verified_twilio_form
from gateway.routes.webhooks import refuse
from gateway.runtime import Runtime
from sms.phone import PhoneError, contact_key, normalise_phone

log = logging.getLogger(__name__)

_SEEN_SECONDS = 24 * 3600


def missed_call_numbers(config: Config) -> frozenset[str]:
    """The configured `[ivr] missed_call_numbers`, as contact keys (E.164)."""
    numbers = set()
    for raw in config.raw.get("ivr", {}).get("missed_call_numbers", []):
        try:
            numbers.add(contact_key(normalise_phone(str(raw), config.country)))
        except PhoneError:
            log.error("ivr.missed_call_numbers: %r is not a phone number; ignored", raw)
    return frozenset(numbers)


def is_missed_call_number(config: Config, number: str | None) -> bool:
    """Whether a call to `number` is a missed-call trigger."""
    if not number:
        return False
    try:
        key = contact_key(normalise_phone(number, config.country))
    except PhoneError:
        return False
    return key in missed_call_numbers(config)


def _limit(config: Config) -> int:
    return int(config.raw.get("ivr", {}).get("missed_call_callbacks_per_day", 3))


def record_missed_call(rt: Runtime, phone: str | None, now: datetime) -> MissedCall:
    """Write the call-back (blocking: run it in a thread)."""
    with rt.sessions() as session, session.begin():
        outcome = calls.request_missed_call_callback(
            session,
            phone=phone,
            provider=rt.settings.voice_provider,
            limit_per_day=_limit(rt.config),
            timezone=rt.config.timezone,
            now=now,
        )
    if outcome is not MissedCall.QUEUED:
        log.info("missed call not called back: %s", outcome.value)
    return outcome


async def handle_missed_call(rt: Runtime, provider: str, ref: str, phone: str | None) -> None:
    """Record one trigger call once, whatever the provider redelivers."""
    handled = Answers(rt.redis, rt.redis_keys.missed, _SEEN_SECONDS)

    async def record() -> str:
        await run_in_threadpool(record_missed_call, rt, phone, datetime.now(UTC))
        return "1"

    await answer_once(handled, f"{provider}:{ref}", record)  # a redelivery adds nothing


async def twilio_missed_call(request: Request) -> Response:
    """A call to the trigger number: reject it unanswered and queue the call-back."""
    try:
        rt, form = await verified_twilio_form(request)
        require(form, "CallSid", "From")
        # None when withheld (+266696687, anonymous) or unreadable: nothing to call back,
        # but the caller is still rejected unbilled.
        phone = twilio_voice.caller_phone(form["From"], rt.config.country)
    except BadRequest as exc:
        return refuse(exc)
    await handle_missed_call(rt, twilio.PROVIDER, form["CallSid"].strip(), phone)
    return Response(twilio_voice.REJECT, media_type="application/xml")


_FINAL = frozenset({CallStatus.COMPLETED, CallStatus.UNANSWERED, CallStatus.FAILED})


async def twilio_call_status(request: Request) -> Response:
    """Twilio's status callback for a call we placed (the worker passes this URL)."""
    try:
        rt, form = await verified_twilio_form(request)
        report = twilio_voice.parse_call_status(form)
    except BadRequest as exc:
        return refuse(exc)

    def work() -> bool:
        with rt.sessions() as session, session.begin():
            return calls.mark_finished(
                session,
                twilio.PROVIDER,
                report.call_sid,
                status=report.status,
                reason=f"twilio {report.provider_status}",
                now=datetime.now(UTC),
            )

    if report.status in _FINAL:
        rt.menu_store.drop(
            session_key(twilio.PROVIDER, report.call_sid)
        )  # the menu session `advance` kept
    if not await run_in_threadpool(work):
        return PlainTextResponse("unknown call", status_code=404)
    return PlainTextResponse("ok")


routes = [
    Route("/webhooks/twilio/missed-call", twilio_missed_call, methods=["POST"]),
    Route("/webhooks/twilio/call-status", twilio_call_status, methods=["POST"]),
]

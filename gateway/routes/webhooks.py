"""Provider webhook routes: read, verify, parse, store, answer. Nothing else happens here."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from casestore import outbox
from casestore.db import is_unreachable
from casestore.inbound import Inbound, IntakeResult, StatusUpdate
from casestore.intake import IntakeRequest
from casestore.writer import StoreUnavailable
from gateway import dead_letters, outage
from gateway.clean_input import RAW_QUERY
from gateway.forms import BadRequest, read_form, signed_fields
from gateway.providers import africastalking, twilio
from gateway.runtime import Runtime
from sms.conversation import Plan, classify_sms
from sms.segments import to_gsm7

log = logging.getLogger(__name__)


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def public_url(request: Request) -> str:
    """The URL the provider called, rebuilt from the configured public base (proxies)."""
    url = runtime(request).settings.public_url + request.url.path
    # The query as received: a signature covers it even when cleaning changed it.
    raw = request.scope.get(RAW_QUERY)
    query = raw.decode("latin-1") if raw is not None else request.url.query
    return f"{url}?{query}" if query else url


def refuse(exc: BadRequest) -> Response:
    return PlainTextResponse(exc.reason, status_code=exc.status)


def unavailable() -> Response:
    return PlainTextResponse("temporarily unable to store the message; retry", status_code=503)


async def store(
    request: Request, inbound: Inbound, reply_inline: bool, form: dict[str, str]
) -> IntakeResult | None:
    rt = runtime(request)
    plan = classify_sms(inbound.text, rt.config)
    intake = IntakeRequest(inbound, plan, reply_inline)
    if rt.spool.has_pending():  # an outage, or its replay still running: keep the order
        return await _spool(rt, intake)
    try:
        return await rt.intake.submit(intake)
    except Exception as exc:
        if isinstance(exc, StoreUnavailable) or is_unreachable(exc):
            return await _spool(rt, intake)  # an outage: kept locally, replayed later
        # The database is up but refused it (or a defect): kept raw as a dead letter.
        log.error("intake failed for %s message: %s", inbound.provider, type(exc).__name__)
        return await keep_refused(request, inbound, plan, form, exc)


async def _spool(rt: Runtime, intake: IntakeRequest) -> IntakeResult | None:
    """The database is unreachable (or the spool still holds contacts): keep the contact in
    the local spool and answer as if stored (see gateway.outage)."""
    try:
        return await run_in_threadpool(outage.spool_sms, rt, intake)
    except OSError as exc:  # the spool's disk failed too: only now is the contact not kept
        log.error("spool write failed: %s", exc)
        return None


async def keep_refused(
    request: Request, inbound: Inbound, plan: Plan, form: dict[str, str], exc: Exception
) -> IntakeResult | None:
    """The database is up but refused this message: keep it raw as a dead letter and
    acknowledge it (no receipt: there is no case); None when it could not be kept at all."""
    rt = runtime(request)
    category = rt.config.categories.get(plan.category)
    kept = await dead_letters.keep(
        rt,
        channel=inbound.channel,
        provider=inbound.provider,
        route=request.url.path,
        provider_ref=inbound.provider_ref,
        department=category.department if category is not None else None,
        fields=signed_fields(request, form),
        exc=exc,
    )
    if not kept:
        return None
    # No case, so no receipt; but an urgent message still gets the emergency lines at once
    # (urgent always wins). A reply that travels separately (Africa's Talking) would need the
    # database's outbox, so only an inline reply (Twilio) carries them.
    language = rt.config.language_or_default(plan.language)
    lines = rt.config.emergency_lines.get(language, "")
    reply = to_gsm7(lines) if plan.urgent and lines else None
    return IntakeResult(duplicate=False, reply=reply, action="dead_letter")


async def twilio_sms(request: Request) -> Response:
    rt = runtime(request)
    try:
        form = await read_form(request)
        twilio.verify_signature(
            rt.settings.twilio_auth_token,
            public_url(request),
            signed_fields(request, form),
            request.headers.get("x-twilio-signature"),
        )
        inbound = twilio.parse_sms(form, datetime.now(UTC), rt.config.country)
    except BadRequest as exc:
        return refuse(exc)
    result = await store(request, inbound, reply_inline=True, form=form)
    if result is None:
        return unavailable()
    return Response(twilio.render_sms_reply(result.reply), media_type="application/xml")


async def _apply_status(request: Request, update: StatusUpdate) -> Response:
    rt = runtime(request)

    def work() -> bool:
        with rt.engine.begin() as conn:
            return outbox.apply_status(conn, update, datetime.now(UTC))

    try:
        known = await run_in_threadpool(work)
    except Exception as exc:
        log.error("status update failed: %s", type(exc).__name__)
        return unavailable()
    if not known:
        return PlainTextResponse("unknown message id", status_code=404)
    return PlainTextResponse("ok")


async def twilio_status(request: Request) -> Response:
    rt = runtime(request)
    try:
        form = await read_form(request)
        twilio.verify_signature(
            rt.settings.twilio_auth_token,
            public_url(request),
            signed_fields(request, form),
            request.headers.get("x-twilio-signature"),
        )
        update = twilio.parse_status(form)
    except BadRequest as exc:
        return refuse(exc)
    return await _apply_status(request, update)


async def at_sms(request: Request) -> Response:
    rt = runtime(request)
    try:
        africastalking.verify_token(rt.settings.at_webhook_token, request.query_params.get("token"))
        form = await read_form(request)
        inbound = africastalking.parse_sms(form, datetime.now(UTC), rt.config.country)
    except BadRequest as exc:
        return refuse(exc)
    result = await store(request, inbound, reply_inline=False, form=form)
    if result is None:
        return unavailable()
    return PlainTextResponse("ok")


async def at_delivery(request: Request) -> Response:
    rt = runtime(request)
    try:
        africastalking.verify_token(rt.settings.at_webhook_token, request.query_params.get("token"))
        form = await read_form(request)
        update = africastalking.parse_delivery(form)
    except BadRequest as exc:
        return refuse(exc)
    return await _apply_status(request, update)


routes = [
    Route("/webhooks/twilio/sms", twilio_sms, methods=["POST"]),
    Route("/webhooks/twilio/status", twilio_status, methods=["POST"]),
    Route("/webhooks/africastalking/sms", at_sms, methods=["POST"]),
    Route("/webhooks/africastalking/delivery", at_delivery, methods=["POST"]),
]

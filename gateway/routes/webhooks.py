"""Provider webhook routes: read, verify, parse, store, answer. Nothing else happens here."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
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
from gateway.forms import RAW_BODY, BadRequest, read_body
from gateway.providers import registry
from gateway.providers.base import WebhookRequest
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
    request: Request, inbound: Inbound, reply_inline: bool, fields: dict[str, str]
) -> IntakeResult | None:
    """Store a parsed contact (spooled in an outage, a dead letter if refused); `fields` is
    what was received, kept raw if the database refuses the contact."""
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
        return await keep_refused(request, inbound, plan, fields, exc)


async def _spool(rt: Runtime, intake: IntakeRequest) -> IntakeResult | None:
    """The database is unreachable (or the spool still holds contacts): keep the contact in
    the local spool and answer as if stored (see gateway.outage)."""
    try:
        return await run_in_threadpool(outage.spool_sms, rt, intake)
    except OSError as exc:  # the spool's disk failed too: only now is the contact not kept
        log.error("spool write failed: %s", exc)
        return None


async def keep_refused(
    request: Request, inbound: Inbound, plan: Plan, fields: dict[str, str], exc: Exception
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
        fields=fields,
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


async def read_webhook(request: Request) -> WebhookRequest:
    """The request as the provider sent it (413 over 64 KiB), for an adapter to verify."""
    body = await read_body(request)
    return WebhookRequest(
        url=public_url(request),
        headers=request.headers,
        query=request.query_params,
        body=body,
        raw_body=request.scope.get(RAW_BODY, body),
    )


def inbound_sms(provider: str) -> Callable[[Request], Awaitable[Response]]:
    """The route for `provider`'s inbound messages: verify, parse, store, answer."""

    async def route(request: Request) -> Response:
        rt = runtime(request)
        adapter = rt.sms_webhooks[provider]
        try:
            webhook = await read_webhook(request)
            adapter.verify(webhook)
            inbound = adapter.parse_sms(webhook, datetime.now(UTC), rt.config.country)
        except BadRequest as exc:
            return refuse(exc)
        result = await store(request, inbound, adapter.replies_inline, webhook.received_fields())
        if result is None:
            return unavailable()
        answer = adapter.answer_sms(result.reply if adapter.replies_inline else None)
        return Response(answer.body, media_type=answer.media_type)

    return route


async def _apply_status(request: Request, update: StatusUpdate) -> Response | None:
    """None once recorded; else the answer that says why not."""
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
    return None


def delivery_status(provider: str) -> Callable[[Request], Awaitable[Response]]:
    """The route for `provider`'s delivery statuses: verify, parse, record on the outbox."""

    async def route(request: Request) -> Response:
        adapter = runtime(request).sms_webhooks[provider]
        try:
            webhook = await read_webhook(request)
            adapter.verify(webhook)
            update = adapter.parse_status(webhook)
        except BadRequest as exc:
            return refuse(exc)
        refused = await _apply_status(request, update)
        if refused is not None:
            return refused
        answer = adapter.answer_status()
        return Response(answer.body, media_type=answer.media_type)

    return route


routes = [
    route
    for p in registry.PROVIDERS
    if p.sms_webhooks is not None
    for route in (
        Route(p.sms_webhooks.sms_path, inbound_sms(p.name), methods=["POST"]),
        Route(p.sms_webhooks.status_path, delivery_status(p.name), methods=["POST"]),
    )
]

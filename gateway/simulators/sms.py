"""A phone in the browser: text the gateway as a citizen through the real intake path."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from casestore.inbound import Inbound
from casestore.intake import IntakeRequest
from casestore.models import Contact, Interaction, OutboundMessage
from gateway.forms import BadRequest, read_form
from gateway.providers.africastalking import ussd as at_ussd
from gateway.routes import ussd
from gateway.runtime import Runtime
from gateway.simulators import access as simulator_access
from sms.conversation import classify_sms
from sms.phone import PhoneError, contact_key, normalise_phone

templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))
DEFAULT_PHONE = "+54 9 11 5555 0001"
PROVIDER = "simulator"


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def conversation(rt: Runtime, phone: str) -> list[dict[str, Any]]:
    """Every message to and from this phone, oldest first, with outbox delivery state."""
    tz = rt.config.timezone
    with rt.sessions() as session:
        contact_id = session.scalar(select(Contact.id).where(Contact.phone == contact_key(phone)))
        if contact_id is None:
            return []
        rows = session.execute(
            select(Interaction, OutboundMessage.status)
            .outerjoin(OutboundMessage, OutboundMessage.interaction_id == Interaction.id)
            .where(Interaction.contact_id == contact_id)
            .order_by(Interaction.id)
        ).all()
    return [
        {
            "direction": i.direction,
            "text": i.text,
            "at": i.created_at.astimezone(tz).strftime("%d/%m %H:%M:%S"),
            "status": status,
        }
        for i, status in rows
    ]


async def page(request: Request, *, phone: str, error: str | None = None) -> Response:
    rt = _runtime(request)
    messages: list[dict[str, Any]] = []
    if phone and error is None:
        try:
            messages = await run_in_threadpool(
                conversation, rt, normalise_phone(phone, rt.config.country)
            )
        except PhoneError as exc:
            error = str(exc)
    return templates.TemplateResponse(
        request,
        "simulator.html",
        {"phone": phone, "messages": messages, "error": error, "lang": "es"},
        status_code=400 if error else 200,
    )


async def simulator(request: Request) -> Response:
    rt = _runtime(request)
    refused = await simulator_access.refuse(request)
    if refused is not None:
        return refused
    if request.method == "GET":
        return await page(request, phone=request.query_params.get("phone", DEFAULT_PHONE))
    try:
        form = await read_form(request)
    except BadRequest as exc:
        return PlainTextResponse(exc.reason, exc.status)
    raw_phone = form.get("phone", "").strip()
    text = form.get("text", "")
    try:
        phone = normalise_phone(raw_phone, rt.config.country)
    except PhoneError:
        return await page(request, phone=raw_phone, error="Número de teléfono no válido.")
    if not text.strip():
        return await page(request, phone=raw_phone, error="Escriba un mensaje.")
    inbound = Inbound(
        provider=PROVIDER,
        provider_ref=uuid.uuid4().hex,
        channel="sms",
        sender=phone,
        recipient="simulator",
        text=text[:1600],
        received_at=datetime.now(UTC),
        phone=phone,
    )
    plan = classify_sms(inbound.text, rt.config)
    try:
        await rt.intake.submit(IntakeRequest(inbound, plan, reply_inline=True))
    except Exception:
        return PlainTextResponse("could not store the message; try again", 503)
    # Post/redirect/get: reloading the page does not send the message again.
    return RedirectResponse(f"/simulator?phone={quote(raw_phone)}", status_code=303)


# ---------------------------------------------------------------- USSD mode

USSD_CODE = "*123#"
USSD_INPUT_MAX = 182  # the longest USSD string a handset sends


async def ussd_page(
    request: Request,
    *,
    phone: str,
    session: str = "",
    text: str = "",
    screen: str | None = None,
    ended: bool = False,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return templates.TemplateResponse(
        request,
        "simulator_ussd.html",
        {
            "phone": phone,
            "session": session,
            "text": text,
            "screen": screen,
            "ended": ended,
            "error": error,
            "code": USSD_CODE,
            "lang": "es",
        },
        status_code=status_code,
    )


async def simulator_ussd(request: Request) -> Response:
    """Dial the USSD menu: the same code path as the AT webhook, with provider "simulator"."""
    rt = _runtime(request)
    refused = await simulator_access.refuse(request)
    if refused is not None:
        return refused
    if request.method == "GET":
        return await ussd_page(request, phone=request.query_params.get("phone", DEFAULT_PHONE))
    try:
        form = await read_form(request)
    except BadRequest as exc:
        return PlainTextResponse(exc.reason, exc.status)
    raw_phone = form.get("phone", "").strip()
    try:
        phone = at_ussd.parse_phone(raw_phone, rt.config.country)
    except PhoneError:
        return await ussd_page(
            request, phone=raw_phone, error="Número de teléfono no válido.", status_code=400
        )
    session, text = form.get("session", ""), form.get("text", "")
    if form.get("action") != "send" or not session or len(session) > at_ussd.SESSION_ID_MAX:
        session, text = "SIM" + uuid.uuid4().hex, ""  # dial: a new session, text "" like AT
    else:
        typed = form.get("input", "")[:USSD_INPUT_MAX]
        # Like AT: the first input alone, then every input so far joined by "*".
        text = f"{text}{at_ussd.SEPARATOR}{typed}" if text else typed
    request_ = at_ussd.UssdRequest(session, USSD_CODE, phone, "simulator", text)
    response = await ussd.answer(rt, PROVIDER, request_)
    body = bytes(response.body).decode()
    if response.status_code != 200:
        return await ussd_page(
            request, phone=raw_phone, error=body, status_code=response.status_code
        )
    return await ussd_page(
        request,
        phone=raw_phone,
        session=session,
        text=text,
        screen=body[4:],
        ended=body.startswith("END"),
    )


routes = [
    Route("/simulator", simulator, methods=["GET", "POST"]),
    Route("/simulator/ussd", simulator_ussd, methods=["GET", "POST"]),
]

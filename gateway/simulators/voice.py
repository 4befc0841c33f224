"""The simulator's voice mode: call the IVR with a keypad; prompts are shown as text.

It walks the same menu and the same actions as the Twilio and Africa's Talking routes
(gateway.menu_session.advance), with provider "simulator"; a recording is simulated.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from gateway.forms import BadRequest, read_form
from gateway.menu_session import Call, advance
from gateway.runtime import Runtime
from gateway.simulators import access as simulator_access
from ivr.machine import Expect, Screen
from sms.phone import PhoneError, sender_phone

templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))
PROVIDER = "simulator"
DEFAULT_PHONE = "+54 9 11 5555 0001"


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def describe(screen: Screen) -> dict[str, object]:
    """What the caller would hear, and what the keypad expects."""
    expects = {
        Expect.CHOICE: "Presione una tecla",
        Expect.DIGITS: f"Marque {screen.digits or ''} dígitos",
        Expect.RECORDING: "Hable después del tono (simulado: escriba lo que diría)",
        Expect.TEXT: "Escriba",
        Expect.NOTHING: "",
    }
    waiting = screen.action is not None and screen.action.kind == "enqueue"
    return {
        "text": screen.text,
        "options": screen.options,
        "expect": screen.expect.value,
        "hint": expects[screen.expect],
        "ended": screen.end,
        "queued": waiting,
        "department": screen.action.department if waiting and screen.action else None,
    }


async def simulator_voice(request: Request) -> Response:
    rt = _runtime(request)
    refused = await simulator_access.refuse(request)
    if refused is not None:
        return refused
    context: dict[str, object] = {"phone": DEFAULT_PHONE, "call": "", "step": 0, "lang": "es"}
    if request.method == "GET":
        context["phone"] = request.query_params.get("phone", DEFAULT_PHONE)
        return templates.TemplateResponse(request, "simulator_voice.html", context)
    try:
        form = await read_form(request)
    except BadRequest as exc:
        return PlainTextResponse(exc.reason, exc.status)
    raw_phone = form.get("phone", "").strip()
    context["phone"] = raw_phone
    try:
        phone = sender_phone(raw_phone, rt.config.country) if raw_phone else None
    except PhoneError:
        context["error"] = "Número de teléfono no válido."
        return templates.TemplateResponse(request, "simulator_voice.html", context, 400)
    call_id = form.get("call", "")
    step = int(form.get("step", "0") or 0) if form.get("step", "0").isdigit() else 0
    value: str | None
    if form.get("action") != "key" or not call_id:
        call_id, step, value = "SIMCALL" + uuid.uuid4().hex, 0, None
    else:
        step += 1
        value = form.get("input", "").strip()
        if form.get("expect") == Expect.RECORDING.value:
            value = f"simulator://recording/{call_id}/{step}" if value else ""
    call = Call(
        channel="voice",
        provider=PROVIDER,
        session_id=call_id,
        step_ref=str(step),
        phone=phone,
        value=value,
    )
    try:
        screen = await advance(rt, rt.menu, rt.menu_store, call)
    except Exception:
        context["error"] = "No se pudo atender la llamada; intente de nuevo."
        return templates.TemplateResponse(request, "simulator_voice.html", context, 503)
    context.update(call=call_id, step=step, screen=describe(screen))
    return templates.TemplateResponse(request, "simulator_voice.html", context)


routes = [Route("/simulator/voice", simulator_voice, methods=["GET", "POST"])]

"""The simulator's phone calls: the citizen's phone and the operator's, in one page per number.

On the embedded default (VENTANILLA_VOICE_PROVIDER=outbox) nothing rings for real: the citizen
"calls to talk to a person" (a waiting caller in the live queue, provider "simulator"), the
operator's "take call" is recorded as an operator_bridge call to the operator's phone, and this
page rings it: answering connects the two phones, declining puts the caller back in the queue.
"""

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

from casestore import calls
from casestore.calls import OPERATOR_BRIDGE, CallStatus
from casestore.models import OutboundCall
from gateway.forms import BadRequest, form_id, read_form
from gateway.live import leg
from gateway.live import queue as livequeue
from gateway.runtime import Runtime
from gateway.simulators import access as simulator_access
from sms.phone import PhoneError, contact_key, normalise_phone

templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))
PROVIDER = "simulator"
DEFAULT_PHONE = "+54 9 11 5555 0001"

_MINE_SECONDS = 2 * 3600  # the simulated phone's own call to the ministry


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def _my_call(rt: Runtime, phone: str) -> dict[str, Any] | None:
    """This phone's call to the ministry, as the citizen hears it."""
    raw = rt.redis.get(rt.redis_keys.simulator_call + phone)
    if raw is None:
        return None
    sid = raw.decode() if isinstance(raw, bytes) else str(raw)
    entry = livequeue.get(rt.redis, sid)
    if entry is not None:
        queue = livequeue.waiting(rt.redis, [entry.department])
        position = next((i for i, e in enumerate(queue, 1) if e.call_sid == sid), 1)
        return {
            "sid": sid,
            "state": "waiting",
            "department": entry.department,
            "position": position,
        }
    call = livequeue.load_call(rt.redis, sid)
    if call is None:
        return {"sid": sid, "state": "ended", "department": None, "position": None}
    state = {"ringing": "waiting", "missed": "waiting", "wrapped": "ended"}.get(
        call.state, call.state
    )
    return {"sid": sid, "state": state, "department": call.department, "operator": call.operator}


def _operator_calls(rt: Runtime, phone: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ringing, in progress): operator_bridge calls to this phone."""
    with rt.sessions() as session:
        rows = session.scalars(
            select(OutboundCall)
            .where(
                OutboundCall.to_address == contact_key(phone),
                OutboundCall.kind == OPERATOR_BRIDGE,
                OutboundCall.status.in_([CallStatus.RECORDED.value, CallStatus.ANSWERED.value]),
            )
            .order_by(OutboundCall.id.desc())
            .limit(10)
        ).all()
    ringing, talking = [], []
    for row in rows:
        sid = livequeue.call_for_leg(rt.redis, row.provider_ref or "")
        call = livequeue.load_call(rt.redis, sid) if sid else None
        if call is None:
            continue
        item = {"id": row.id, "caller": call.phone, "department": call.department}
        if row.status == CallStatus.RECORDED.value and call.state == "ringing":
            ringing.append(item)
        elif row.status == CallStatus.ANSWERED.value and call.state == "connected":
            talking.append(item)
    return ringing, talking


async def page(
    request: Request, phone: str, error: str | None = None, status: int = 200
) -> Response:
    rt = _runtime(request)
    mine: dict[str, Any] | None = None
    ringing: list[dict[str, Any]] = []
    talking: list[dict[str, Any]] = []
    if phone and error is None:
        try:
            e164 = normalise_phone(phone, rt.config.country)
            mine = await run_in_threadpool(_my_call, rt, e164)
            ringing, talking = await run_in_threadpool(_operator_calls, rt, e164)
        except PhoneError:
            error, status = "Número de teléfono no válido.", 400
    return templates.TemplateResponse(
        request,
        "simulator_call.html",
        {
            "phone": phone,
            "mine": mine,
            "ringing": ringing,
            "talking": talking,
            "departments": rt.config.departments,
            "default_department": rt.menu.operator_department,
            "error": error,
            "lang": "es",
        },
        status_code=status,
    )


def _leg_row(rt: Runtime, call_id: int, phone: str) -> OutboundCall | None:
    with rt.sessions() as session:
        row = session.get(OutboundCall, call_id)
        if row is None or row.kind != OPERATOR_BRIDGE or row.to_address != contact_key(phone):
            return None
        return row


def _answer(rt: Runtime, row: OutboundCall) -> bool:
    with rt.sessions() as session, session.begin():
        if calls.answer_recorded_call(session, row.id, datetime.now(UTC)) is None:
            return False
    caller_sid = livequeue.call_for_leg(rt.redis, row.provider_ref or "")
    if caller_sid is not None:
        leg.bridged(rt, caller_sid, row.provider_ref, None)
    return True


def _finish(rt: Runtime, row: OutboundCall, status: CallStatus) -> None:
    with rt.sessions() as session, session.begin():
        calls.mark_finished(
            session,
            row.provider,
            row.provider_ref or "",
            status=status,
            reason="simulator",
            now=datetime.now(UTC),
        )
    leg.leg_finished(rt, row.provider_ref or "", status)


async def simulator_call(request: Request) -> Response:
    rt = _runtime(request)
    refused = await simulator_access.refuse(request)
    if refused is not None:
        return refused
    if request.method == "GET":
        return await page(request, request.query_params.get("phone", DEFAULT_PHONE))
    try:
        form = await read_form(request)
    except BadRequest as exc:
        return PlainTextResponse(exc.reason, exc.status)
    raw_phone = form.get("phone", "").strip()
    try:
        phone = normalise_phone(raw_phone, rt.config.country)
    except PhoneError:
        return await page(request, raw_phone, "Número de teléfono no válido.", 400)
    action = form.get("action", "")
    if action == "call":
        department = form.get("department") or rt.menu.operator_department
        if department not in rt.config.departments:
            return await page(request, raw_phone, "Área desconocida.", 400)
        sid = "SIM" + uuid.uuid4().hex
        livequeue.arrived(
            rt.redis,
            sid,
            department,
            PROVIDER,
            contact_key(phone),
            urgent=form.get("urgent") == "1",
            language=rt.config.default_language,
        )
        rt.redis.set(rt.redis_keys.simulator_call + phone, sid, ex=_MINE_SECONDS)
    elif action == "hangup":
        raw = rt.redis.get(rt.redis_keys.simulator_call + phone)
        if raw is not None:
            sid = raw.decode() if isinstance(raw, bytes) else str(raw)
            await run_in_threadpool(livequeue.caller_gone, rt.redis, sid)
            rt.redis.delete(rt.redis_keys.simulator_call + phone)
    elif action in ("answer", "decline", "end"):
        try:
            call_id = form_id(form, "call_id")
        except BadRequest as exc:
            return await page(request, raw_phone, exc.reason, 400)
        row = await run_in_threadpool(_leg_row, rt, call_id, phone)
        if row is None:
            return await page(request, raw_phone, "Esa llamada ya no está.", 404)
        if action == "answer":
            await run_in_threadpool(_answer, rt, row)
        else:
            status = CallStatus.UNANSWERED if action == "decline" else CallStatus.COMPLETED
            await run_in_threadpool(_finish, rt, row, status)
    else:
        return await page(request, raw_phone, f"Acción desconocida: {action}", 400)
    return RedirectResponse(f"/simulator/call?phone={quote(raw_phone)}", status_code=303)


routes = [Route("/simulator/call", simulator_call, methods=["GET", "POST"])]

"""Live calls in the console: the waiting queue (server-sent events), take call, the caller's
page during the call (open a case, transfer), and the wrap-up.

"Take call" rings the operator's phone directly through the voice provider's caller, in the
request, not through the outbound_calls outbox: the worker polls the outbox (half a second, more
under load) and retries with back-off for minutes, while a bridge is only worth placing now — a
retry after the caller hung up would ring an operator for nobody. The call is still written to
outbound_calls once placed (kind operator_bridge), never as pending, so the worker never dials
it and the provider's status callbacks and the simulator find it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from casestore.cases import audit, get_case
from casestore.live_calls import (
    DISPOSITION_LABELS,
    Disposition,
    WrapUpError,
    citizen_cases,
    open_case_on_call,
    record_operator_call,
    screen_pop,
    timeline,
    wrap_up,
)
from casestore.models import Operator, utcnow
from casestore.states import is_open
from gateway.console.auth import Viewer, language, login_required, render, runtime, templates
from gateway.console.i18n import translator
from gateway.live import leg
from gateway.live import queue as livequeue
from gateway.live.leg import BridgeError
from gateway.live.queue import LiveCall
from gateway.providers.base import SendError
from gateway.routes import operator_leg
from gateway.runtime import Runtime
from sms.phone import PhoneError, normalise_phone

STREAM_SECONDS = 60  # then the stream ends and EventSource reconnects (bounded connections)
POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15
STATES = {
    "es": {
        "ringing": "Sonando su teléfono…",
        "connected": "En llamada",
        "transferred": "Transferida",
        "ended": "La llamada terminó: registre el cierre",
        "missed": "Su teléfono no atendió; la persona volvió a la espera",
        "replaced": "Se conectó a otra persona que esperaba",
        "wrapped": "Cerrada",
    },
    "en": {
        "ringing": "Ringing your phone…",
        "connected": "On the call",
        "transferred": "Transferred",
        "ended": "The call ended: record the wrap-up",
        "missed": "Your phone did not answer; the caller is waiting again",
        "replaced": "You were connected to another waiting caller",
        "wrapped": "Wrapped up",
    },
}
MESSAGES = {
    "es": {
        "no_phone": "Agregue su teléfono para atender llamadas.",
        "not_available": "Póngase «Disponible» para atender la próxima llamada.",
        "nobody": "No hay nadie esperando en sus áreas.",
        "taking": "Ya está conectando una llamada.",
        "bad_phone": "Teléfono no válido.",
    },
    "en": {
        "no_phone": "Add your phone number to take calls.",
        "not_available": "Set yourself “Available” to take the next call.",
        "nobody": "Nobody is waiting in your departments.",
        "taking": "A call is already being connected.",
        "bad_phone": "Not a valid phone number.",
    },
}


def _departments(rt: Runtime, viewer: Viewer) -> list[str]:
    """The queues the viewer may see: their departments, every one for an admin."""
    if viewer.departments is None:
        return list(rt.config.departments)
    return [d for d in rt.config.departments if d in viewer.departments]


def _message(request: Request, key: str) -> str:
    return MESSAGES.get(language(request), MESSAGES["es"]).get(key, key)


def _state_label(rt: Runtime, lang: str, call: LiveCall) -> str:
    label = STATES.get(lang, STATES["es"]).get(call.state, call.state)
    if call.state == "transferred" and call.transferred_to:
        department = rt.config.departments.get(call.transferred_to)
        label += f" → {department.label(lang) if department else call.transferred_to}"
    return label


# ---------------------------------------------------------------- the queue


def _rows(rt: Runtime, viewer: Viewer) -> list[dict[str, Any]]:
    """The waiting callers the viewer may see, each with what is known of them."""
    now = time.time()
    entries = livequeue.waiting(rt.redis, _departments(rt, viewer), now)
    phones = [e.phone for e in entries if e.phone]
    with rt.sessions() as session:
        known = screen_pop(session, phones, viewer.departments)
    return [
        {
            "sid": e.call_sid,
            "department": e.department,
            "urgent": e.urgent,
            "since_ms": int(e.since * 1000),
            "waited": e.waited(now),
            "phone": e.phone,
            "provider": e.provider,
            "known": known.get(e.phone) if e.phone else None,
        }
        for e in entries
    ]


def _queue_context(request: Request, viewer: Viewer) -> dict[str, Any]:
    rt = runtime(request)
    lang = language(request)
    return {
        "rows": _rows(rt, viewer),
        "now_ms": int(time.time() * 1000),
        "lang": lang,
        "t": translator(lang),
        "viewer": viewer,
        "departments": rt.config.departments,
        "categories": rt.config.categories,
    }


def _fragment(request: Request, viewer: Viewer) -> str:
    return templates.get_template("console/_queue.html").render(_queue_context(request, viewer))


def _page_extra(rt: Runtime, viewer: Viewer) -> dict[str, Any]:
    with rt.sessions() as session, session.begin():
        operator = session.get(Operator, viewer.operator_id)
        assert operator is not None
        audit(
            session,
            viewer.username,
            "console.queue_view",
            "queue",
            ",".join(_departments(rt, viewer)),
        )
        phone = operator.phone
    return {
        "operator_phone": phone,
        "current": livequeue.current_call(rt.redis, viewer.operator_id),
    }


@login_required
async def queue_page(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    rt = runtime(request)
    context = await run_in_threadpool(_queue_context, request, viewer)
    context.update(await run_in_threadpool(_page_extra, rt, viewer))
    error = request.query_params.get("error")
    context["error"] = _message(request, error) if error in MESSAGES["es"] else None
    context["simulator"] = rt.settings.simulator_enabled
    return render(request, "console/queue.html", context)


def _sse(event: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n"


def _call_event(request: Request, viewer: Viewer, call_sid: str) -> str | None:
    call = livequeue.load_call(runtime(request).redis, call_sid)
    if call is None or not _may_see(viewer, call):
        return None
    lang = language(request)
    data = {"state": call.state, "label": _state_label(runtime(request), lang, call)}
    if call.replaced_by:
        data["url"] = f"/console/calls/{call.replaced_by}"  # the page follows the real caller
    return json.dumps(data)


def _stream_opened(rt: Runtime, viewer: Viewer) -> None:
    with rt.sessions() as session, session.begin():
        audit(
            session,
            viewer.username,
            "console.queue_stream",
            "queue",
            ",".join(_departments(rt, viewer)),
        )


@login_required
async def queue_events(request: Request) -> Response:
    """text/event-stream: the queue (an HTML fragment) whenever it changes; ends after a minute."""
    viewer: Viewer = request.state.viewer
    rt = runtime(request)
    try:  # a shorter stream on request (tests); never a longer one
        asked = float(request.query_params.get("seconds", STREAM_SECONDS))
    except ValueError:
        asked = STREAM_SECONDS
    seconds = min(STREAM_SECONDS, max(0.2, asked)) if math.isfinite(asked) else STREAM_SECONDS
    call_sid = request.query_params.get("call")
    await run_in_threadpool(_stream_opened, rt, viewer)

    async def stream() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        beat = loop.time()
        seen: int | None = None
        yield "retry: 2000\n\n"
        while loop.time() < deadline:
            current = await run_in_threadpool(livequeue.version, rt.redis)
            if current != seen:
                seen = current
                yield _sse("queue", await run_in_threadpool(_fragment, request, viewer))
                if call_sid:
                    state = await run_in_threadpool(_call_event, request, viewer, call_sid)
                    if state is not None:
                        yield _sse("call", state)
                beat = loop.time()
            elif loop.time() - beat > HEARTBEAT_SECONDS:
                yield ": keep-alive\n\n"
                beat = loop.time()
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# ---------------------------------------------------------------- take call


def _take(rt: Runtime, viewer: Viewer) -> tuple[str | None, str | None]:
    """Claim the next caller and ring the operator's phone: (caller sid, None) or (None, why)."""
    lock = rt.redis_keys.live + "taking:" + str(viewer.operator_id)
    if not rt.redis.set(lock, "1", nx=True, ex=20):
        return None, "taking"
    try:
        with rt.sessions() as session, session.begin():
            operator = session.get(Operator, viewer.operator_id)
            assert operator is not None
            phone, availability = operator.phone, operator.availability
        if not phone:
            return None, "no_phone"
        if availability != "available":
            return None, "not_available"
        departments = _departments(rt, viewer)
        for _ in range(5):  # another operator may claim the same caller first
            entries = livequeue.waiting(rt.redis, departments)
            chosen = livequeue.next_caller(entries)
            if chosen is None:
                return None, "nobody"
            jump = livequeue.jumps_the_line(chosen, entries)
            if livequeue.claim(rt.redis, chosen, viewer.operator_id):
                break
        else:
            return None, "nobody"
        try:
            via, result = operator_leg.place_operator_call(rt, chosen, phone, jump=jump)
        except (BridgeError, SendError, ValueError) as exc:
            livequeue.release(rt.redis, chosen)
            reason = exc.reason if isinstance(exc, SendError) else str(exc)
            return None, reason
        except BaseException:
            livequeue.release(rt.redis, chosen)  # nobody was rung: the caller keeps their place
            raise
        now = utcnow()
        with rt.sessions() as session, session.begin():
            record_operator_call(
                session,
                provider=via,
                operator_phone=phone,
                provider_ref=result.provider_ref,
                recorded=result.status == "recorded",
                now=now,
            )
            operator = session.get(Operator, viewer.operator_id)
            assert operator is not None
            operator.availability = "busy"
            audit(
                session,
                viewer.username,
                "call.take",
                "call",
                chosen.call_sid,
                {"department": chosen.department, "provider": via, "urgent": chosen.urgent},
            )
        livequeue.start_call(
            rt.redis,
            LiveCall(
                call_sid=chosen.call_sid,
                department=chosen.department,
                provider=chosen.provider,
                phone=chosen.phone,
                urgent=chosen.urgent,
                language=chosen.language,
                since=chosen.since,
                operator_id=viewer.operator_id,
                operator=viewer.username,
                taken_at=time.time(),
                via=via,
                operator_leg=result.provider_ref,
            ),
        )
        return chosen.call_sid, None
    finally:
        rt.redis.delete(lock)


@login_required
async def take_call(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    sid, problem = await run_in_threadpool(_take, runtime(request), viewer)
    if sid is None:
        if problem in MESSAGES["es"]:
            return RedirectResponse(f"/console/queue?error={problem}", status_code=303)
        context = await run_in_threadpool(_queue_context, request, viewer)
        context.update(await run_in_threadpool(_page_extra, runtime(request), viewer))
        context.update(error=problem, simulator=runtime(request).settings.simulator_enabled)
        return render(request, "console/queue.html", context, 502)
    return RedirectResponse(f"/console/calls/{sid}", status_code=303)


def _save_phone(rt: Runtime, viewer: Viewer, raw: str) -> bool:
    try:
        phone = normalise_phone(raw, rt.config.country)
    except PhoneError:
        return False
    with rt.sessions() as session, session.begin():
        operator = session.get(Operator, viewer.operator_id)
        assert operator is not None
        operator.phone = phone
        audit(session, viewer.username, "operator.phone", "operator", viewer.username)
    return True


@login_required
async def my_phone(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    raw = str((await request.form()).get("phone", "")).strip()
    if not await run_in_threadpool(_save_phone, runtime(request), viewer, raw):
        return RedirectResponse("/console/queue?error=bad_phone", status_code=303)
    return RedirectResponse("/console/queue", status_code=303)


# ---------------------------------------------------------------- the caller's page


def _may_see(viewer: Viewer, call: LiveCall) -> bool:
    return (
        viewer.departments is None
        or call.department in viewer.departments
        or call.operator_id == viewer.operator_id
    )


def _call_context(request: Request, viewer: Viewer, call: LiveCall) -> dict[str, Any]:
    rt = runtime(request)
    lang = language(request)
    tz = rt.config.timezone
    departments = viewer.departments
    with rt.sessions() as session, session.begin():
        known = (
            screen_pop(session, [call.phone], departments).get(call.phone) if call.phone else None
        )
        cases = citizen_cases(session, call.phone, departments) if call.phone else []
        items = timeline(session, call.phone, departments) if call.phone else []
        audit(session, viewer.username, "console.call_view", "call", call.call_sid)
    visible = set(_departments(rt, viewer))
    return {
        "call": call,
        "state_label": _state_label(rt, lang, call),
        "known": known,
        "cases": [{**asdict(c), "created_at": c.created_at.astimezone(tz)} for c in cases],
        "timeline": [{**asdict(i), "at": i.at.astimezone(tz)} for i in items],
        "categories": [c for c in rt.config.categories.values() if c.department in visible],
        "departments": rt.config.departments,
        "transfer_to": [d for d in rt.config.departments.values() if d.code != call.department],
        "dispositions": [
            (d.value, DISPOSITION_LABELS.get(lang, DISPOSITION_LABELS["es"])[d])
            for d in Disposition
        ],
        "open_cases": [c for c in cases if is_open(c.status)],
        "opened": request.query_params.get("opened"),
        "error": None,
        "taken_at": datetime.fromtimestamp(call.taken_at, tz).strftime("%H:%M"),
        "category_names": {code: c.label(lang) for code, c in rt.config.categories.items()},
    }


def _visible_call(request: Request, viewer: Viewer) -> LiveCall | None:
    sid = request.path_params["call_sid"]
    if not (sid.replace("_", "").replace("-", "").isalnum() and len(sid) <= 80):
        return None
    call = livequeue.load_call(runtime(request).redis, sid)
    return call if call is not None and _may_see(viewer, call) else None


def _not_found(request: Request) -> Response:
    message = "No encontramos esa llamada." if language(request) == "es" else "No such call."
    return render(request, "console/error.html", {"message": message}, 404)


@login_required
async def call_page(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    call = await run_in_threadpool(_visible_call, request, viewer)
    if call is None:
        return _not_found(request)
    context = await run_in_threadpool(_call_context, request, viewer, call)
    return render(request, "console/call.html", context)


def _open_case(request: Request, viewer: Viewer, call: LiveCall, form: dict[str, str]) -> str:
    """Open a case during the call; returns its tracking number (ValueError: why not)."""
    rt = runtime(request)
    category = form.get("category", "")
    chosen = rt.config.categories.get(category)
    if chosen is None or chosen.department not in _departments(rt, viewer):
        raise ValueError(
            "Elija un tema de sus áreas."
            if language(request) == "es"
            else "Choose a category of your departments."
        )
    description = form.get("description", "").strip()
    if not description or len(description) > 2000:
        raise ValueError(
            "Describa el pedido (hasta 2000 caracteres)."
            if language(request) == "es"
            else "Describe the request (up to 2000 characters)."
        )
    national_id = "".join(ch for ch in form.get("national_id", "") if ch.isdigit())
    if national_id and not 7 <= len(national_id) <= 9:
        raise ValueError(
            "El DNI debe tener entre 7 y 9 dígitos."
            if language(request) == "es"
            else "The national ID has 7 to 9 digits."
        )
    with rt.sessions() as session, session.begin():
        operator = session.get(Operator, viewer.operator_id)
        assert operator is not None
        case = open_case_on_call(
            session,
            rt.config,
            phone=call.phone,
            category=chosen.code,
            description=description,
            name=form.get("name", "").strip()[:200] or None,
            national_id=national_id or None,
            language=call.language,
            operator=operator,
            sms_provider=rt.settings.sms_provider,
            now=utcnow(),
        )
        number = case.tracking_number
    livequeue.update_call(rt.redis, call.call_sid, lambda c: replace(c, cases=(*c.cases, number)))
    return number


def _transfer(request: Request, viewer: Viewer, call: LiveCall, department: str) -> None:
    rt = runtime(request)
    if call.state not in ("ringing", "connected"):
        raise ValueError(
            "Solo se transfiere una llamada en curso."
            if language(request) == "es"
            else "Only a call in progress can be transferred."
        )
    if department == call.department:
        raise ValueError(
            "Elija otra área." if language(request) == "es" else "Choose another department."
        )
    leg.transfer(rt, call.waiting(), department)
    livequeue.update_call(
        rt.redis,
        call.call_sid,
        lambda c: replace(c, state="transferred", transferred_to=department),
    )
    with rt.sessions() as session, session.begin():
        audit(
            session,
            viewer.username,
            "call.transfer",
            "call",
            call.call_sid,
            {"from": call.department, "to": department},
        )


def _wrap_up(request: Request, viewer: Viewer, call: LiveCall, form: dict[str, str]) -> None:
    rt = runtime(request)
    try:
        disposition = Disposition(form.get("disposition", ""))
    except ValueError:
        raise ValueError(
            "Elija cómo terminó la llamada."
            if language(request) == "es"
            else "Choose how the call ended."
        ) from None
    number = "".join(ch for ch in form.get("case", "") if ch.isdigit())
    with rt.sessions() as session, session.begin():
        case = get_case(session, number, viewer.departments) if number else None
        if number and case is None:
            raise ValueError(
                "No encontramos ese pedido."
                if language(request) == "es"
                else "We found no such case."
            )
        operator = session.get(Operator, viewer.operator_id)
        assert operator is not None
        wrap_up(
            session,
            call_ref=call.call_sid,
            provider=call.provider,
            phone=call.phone,
            department=call.department,
            disposition=disposition,
            note=form.get("note", ""),
            case=case,
            operator=operator,
            language=call.language,
            urgent=call.urgent,
            now=utcnow(),
        )
        taker = session.get(Operator, call.operator_id)  # a supervisor may wrap up for them
        if taker is not None and taker.availability == "busy":
            taker.availability = "available"
    livequeue.set_state(rt.redis, call.call_sid, "wrapped")
    livequeue.finish_operator(rt.redis, call)


@login_required
async def call_action(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    call = await run_in_threadpool(_visible_call, request, viewer)
    if call is None:
        return _not_found(request)
    form = {k: str(v) for k, v in (await request.form()).items()}
    action = form.get("action", "")
    target = f"/console/calls/{call.call_sid}"
    try:
        if action == "case":
            number = await run_in_threadpool(_open_case, request, viewer, call, form)
            return RedirectResponse(f"{target}?opened={number}", status_code=303)
        if action == "transfer":
            await run_in_threadpool(_transfer, request, viewer, call, form.get("department", ""))
            return RedirectResponse(target, status_code=303)
        if action == "wrap_up":
            await run_in_threadpool(_wrap_up, request, viewer, call, form)
            return RedirectResponse("/console/queue", status_code=303)
        problem = f"unknown action {action!r}"
    except (ValueError, WrapUpError, BridgeError) as exc:
        problem = str(exc)
    except SendError as exc:
        problem = exc.reason
    except DBAPIError:
        raise
    fresh = livequeue.load_call(runtime(request).redis, call.call_sid) or call
    context = await run_in_threadpool(_call_context, request, viewer, fresh)
    context.update(error=problem, form=form)
    return render(request, "console/call.html", context, 400)


routes = [
    Route("/console/queue", queue_page, methods=["GET"]),
    Route("/console/queue/events", queue_events, methods=["GET"]),
    Route("/console/queue/take", take_call, methods=["POST"]),
    Route("/console/queue/phone", my_phone, methods=["POST"]),
    Route("/console/calls/{call_sid}", call_page, methods=["GET"]),
    Route("/console/calls/{call_sid}", call_action, methods=["POST"]),
]

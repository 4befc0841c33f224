"""Supervisor pages: a person's data (export, erase), a case's audit trail, call-backs."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from casestore.cases import audit, get_case
from casestore.models import AuditEvent, CallbackRequest, Operator
from casestore.privacy import (
    ErasureRefused,
    erase_person,
    export_person,
    find_person,
    opaque_target,
)
from gateway.console.auth import Viewer, login_required, render, runtime
from gateway.console.i18n import translator
from gateway.erasure import delete_recordings, forget_phone_keys
from gateway.forms import BadRequest, form_id
from sms.phone import PhoneError, contact_key, normalise_phone


def _forbidden(request: Request) -> Response:
    t = translator(request.cookies.get("ventanilla_lang", "es"))
    return render(request, "console/error.html", {"message": t("forbidden")}, 403)


def _person(request: Request, viewer: Viewer, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    rt = runtime(request)
    raw_phone = form.get("phone", "").strip()
    national_id = "".join(ch for ch in form.get("national_id", "") if ch.isdigit()) or None
    phone = None
    if raw_phone:
        try:
            phone = contact_key(normalise_phone(raw_phone, rt.config.country))
        except PhoneError:
            return 400, {"error": "Teléfono no válido.", "form": form, "found": None}
    if phone is None and national_id is None:
        return 400, {"error": "Indique un teléfono o un DNI.", "form": form, "found": None}
    action = form.get("action", "find")
    if action not in ("find", "export", "erase"):
        return 400, {"error": "Acción desconocida.", "form": form, "found": None}
    # Audit rows name no one: a phone or DNI written there would outlive the erasure.
    target = opaque_target()
    with rt.sessions() as session, session.begin():
        holdings = find_person(
            session, phone=phone, national_id=national_id, departments=viewer.departments
        )
        scope: dict[str, object] = {"tracking_numbers": [c.tracking_number for c in holdings.cases]}
        if action == "erase":
            if form.get("confirm") != "yes":
                return 400, {"error": "Confirme el borrado.", "form": form, "found": None}
            try:
                erasure = erase_person(session, holdings)
            except ErasureRefused as exc:
                audit(session, viewer.username, "privacy.erase_refused", "person", target, scope)
                return 403, {"error": str(exc), "form": form, "found": None}
            if not holdings.cases and not holdings.contacts:
                message = "No hay datos de esta persona en sus áreas."
                return 404, {"error": message, "form": form, "found": None}
            touched: dict[str, object] = {**erasure.touched, **scope}
            audit(session, viewer.username, "privacy.erase", "person", target, touched)
        else:
            exported = export_person(session, holdings)
            audit(session, viewer.username, f"privacy.{action}", "person", target, scope)
            return 200, {
                "error": None,
                "form": form,
                "found": exported,
                "nothing": not holdings.cases and not holdings.contacts,
                "export": json.dumps(exported, ensure_ascii=False, indent=2)
                if action == "export"
                else None,
            }
    # The registry's part is committed; now Redis and the providers (never a reason to undo it).
    redis_cleared = forget_phone_keys(rt.redis, erasure.phones)
    providers = delete_recordings(rt.settings.env, erasure.recordings)
    if erasure.recordings or not redis_cleared:
        with rt.sessions() as session, session.begin():
            audit(
                session,
                viewer.username,
                "privacy.erase_recordings",
                "person",
                target,
                {
                    "deleted": len(providers.deleted),
                    "manual": providers.manual + providers.failed,
                    "redis_cleared": redis_cleared,
                },
            )
    return 200, {
        "error": None,
        "form": {},
        "found": None,
        "erased": touched,
        "manual": providers.manual + providers.failed,
        "recordings_deleted": len(providers.deleted),
        "redis_cleared": redis_cleared,
    }


@login_required
async def privacy(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    if not viewer.is_supervisor:
        return _forbidden(request)
    if request.method == "GET":
        return render(request, "console/privacy.html", {"error": None, "form": {}, "found": None})
    form = {k: str(v) for k, v in (await request.form()).items()}
    status, context = await run_in_threadpool(_person, request, viewer, form)
    if context.get("export"):
        response = Response(context["export"], media_type="application/json")
        response.headers["Content-Disposition"] = 'attachment; filename="datos-persona.json"'
        response.headers["Cache-Control"] = "no-store"
        return response
    return render(request, "console/privacy.html", context, status)


def _audit_trail(request: Request, viewer: Viewer, number: str) -> list[dict[str, Any]] | None:
    rt = runtime(request)
    with rt.sessions() as session, session.begin():
        case = get_case(session, number, viewer.departments)
        if case is None:
            return None
        rows = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.target_type == "case", AuditEvent.target_id == case.tracking_number)
            .order_by(AuditEvent.id)
        ).all()
        audit(session, viewer.username, "console.audit_view", "case", case.tracking_number)
        return [
            {"at": r.at.astimezone(rt.config.timezone), "actor": r.actor, "action": r.action}
            for r in rows
        ]


@login_required
async def case_audit(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    if not viewer.is_supervisor:
        return _forbidden(request)
    number = "".join(ch for ch in request.path_params["tracking_number"] if ch.isdigit())
    rows = await run_in_threadpool(_audit_trail, request, viewer, number)
    if rows is None:
        t = translator(request.cookies.get("ventanilla_lang", "es"))
        return render(request, "console/error.html", {"message": t("not_found")}, 404)
    return render(request, "console/audit.html", {"rows": rows, "number": number})


def _callbacks(request: Request, viewer: Viewer) -> list[dict[str, Any]]:
    rt = runtime(request)
    with rt.sessions() as session, session.begin():
        query = select(CallbackRequest).where(CallbackRequest.status == "pending")
        if viewer.departments is not None:
            query = query.where(CallbackRequest.department.in_(viewer.departments))
        rows = session.scalars(
            query.order_by(CallbackRequest.urgent.desc(), CallbackRequest.due_at)
        ).all()
        audit(session, viewer.username, "console.callbacks", "callback", "*", {"count": len(rows)})
        tz = rt.config.timezone
        return [
            {
                "id": r.id,
                "phone": r.phone,
                "department": r.department,
                "reason": r.reason,
                "urgent": r.urgent,
                "due": r.due_at.astimezone(tz),
                "attempts": r.attempts,
                "outcome": r.outcome,
            }
            for r in rows
        ]


def _record_attempt(request: Request, viewer: Viewer, form: dict[str, str]) -> str | None:
    from casestore.models import utcnow

    rt = runtime(request)
    outcome = form.get("outcome", "")
    if outcome not in ("reached", "no_answer", "wrong_number"):
        return "outcome must be reached, no_answer or wrong_number"
    try:
        callback_id = form_id(form, "id")
    except BadRequest as exc:
        return exc.reason
    with rt.sessions() as session, session.begin():
        row = session.get(CallbackRequest, callback_id)
        if row is None or (
            viewer.departments is not None and row.department not in viewer.departments
        ):
            return "not_found"
        row.attempts += 1
        row.last_attempt_at = utcnow()
        row.outcome = outcome
        if outcome in ("reached", "wrong_number") or row.attempts >= 3:
            row.status = "done"
        audit(
            session,
            viewer.username,
            "callback.attempt",
            "callback",
            str(row.id),
            {"outcome": outcome},
        )
    return None


@login_required
async def callbacks(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    error = None
    if request.method == "POST":
        form = {k: str(v) for k, v in (await request.form()).items()}
        error = await run_in_threadpool(_record_attempt, request, viewer, form)
    rows = await run_in_threadpool(_callbacks, request, viewer)
    return render(
        request, "console/callbacks.html", {"rows": rows, "error": error}, 400 if error else 200
    )


def _set_availability(request: Request, viewer: Viewer, value: str) -> None:
    rt = runtime(request)
    with rt.sessions() as session, session.begin():
        operator = session.get(Operator, viewer.operator_id)
        assert operator is not None
        operator.availability = value
        audit(
            session,
            viewer.username,
            "operator.availability",
            "operator",
            viewer.username,
            {"value": value},
        )


@login_required
async def availability(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    value = str((await request.form()).get("availability", ""))
    if value not in ("available", "busy", "away"):
        return render(request, "console/error.html", {"message": "available, busy or away"}, 400)
    await run_in_threadpool(_set_availability, request, viewer, value)
    from starlette.responses import RedirectResponse

    return RedirectResponse(request.headers.get("referer") or "/console", status_code=303)


routes = [
    Route("/console/privacy", privacy, methods=["GET", "POST"]),
    Route("/console/cases/{tracking_number}/audit", case_audit, methods=["GET"]),
    Route("/console/callbacks", callbacks, methods=["GET", "POST"]),
    Route("/console/availability", availability, methods=["POST"]),
]

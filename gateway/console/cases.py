"""Console case pages: the list with filters and search, and one case with its timeline."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from casestore.cases import (
    NOTE_MAX,
    BadCursor,
    CaseFilter,
    MergeError,
    add_note,
    assign_case,
    audit,
    change_status,
    duplicate_candidates,
    get_case,
    list_cases,
    merge_cases,
    message_citizen,
)
from casestore.fit import clip, column_length
from casestore.limited import count_limited_numbers
from casestore.models import Case, CaseStatus, Operator, OperatorDepartment, utcnow
from casestore.outbox import messages_of_case
from casestore.people import link_person, links_for_case, shown_phone
from casestore.reach import can_text, dial_address, reach_label
from casestore.states import Channel
from casestore.status import TRANSITIONS, IllegalTransition, UnknownStatus, is_overdue
from casestore.views import When, case_fields, event_fields, message_fields
from gateway.console.auth import Viewer, login_required, render, runtime
from gateway.console.i18n import translator
from gateway.forms import BadRequest, form_id
from sms.phone import PhoneError, contact_key, normalise_phone


def _local_date(value: str | None, zone: ZoneInfo, next_day: bool = False) -> datetime | None:
    """A YYYY-MM-DD from the form as the start of that day (or the next) in the local zone."""
    if not value:
        return None
    day = date.fromisoformat(value)
    if next_day:
        day += timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=zone)


def _local_time(zone: ZoneInfo) -> When:
    """Times on console pages: the deployment's local time, formatted by the template."""
    return lambda value: value.astimezone(zone)


def _list(request: Request, viewer: Viewer) -> tuple[int, dict[str, Any]]:
    rt = runtime(request)
    params = request.query_params
    phone = None
    q = params.get("q", "").strip()
    if (
        q
        and q.lstrip("+").replace(" ", "").replace("-", "").isdigit()
        and (q.startswith("+") or len(q.replace(" ", "")) < 9 or len(q.replace(" ", "")) > 12)
    ):
        try:
            phone = contact_key(normalise_phone(q, rt.config.country))
            q = ""
        except PhoneError:
            pass
    try:
        created_from = _local_date(params.get("from"), rt.config.timezone)
        created_to = _local_date(params.get("to"), rt.config.timezone, next_day=True)
    except ValueError:
        return 400, {"error": "Fecha no válida (AAAA-MM-DD).", "cases": [], "next": None,
                     "params": params}  # fmt: skip
    now = utcnow()
    flt = CaseFilter(
        departments=viewer.departments,
        contact_phone=phone,
        status=params.get("status") or None,
        department=params.get("department") or None,
        q=q or None,
        category=params.get("category") or None,
        channel=params.get("channel") or None,
        created_from=created_from,
        created_to=created_to,
        overdue_at=now if params.get("overdue") else None,
    )
    with rt.sessions() as session, session.begin():
        try:
            page, next_cursor = list_cases(session, flt, params.get("cursor") or None, 50)
        except (UnknownStatus, BadCursor) as exc:
            return 400, {"error": str(exc), "cases": [], "next": None, "params": params}
        audit(session, viewer.username, "console.case_list", "case", "*", {"q": bool(q)})
        # Numbers over a limit with no case: their messages are on /console/limited.
        limited = count_limited_numbers(session) if viewer.is_supervisor else 0
        local = _local_time(rt.config.timezone)
        rows = [
            {
                **case_fields(c, local),
                "limited": c.limit_hit_at is not None,
                "overdue": is_overdue(c.due_at, c.status, now),
            }
            for c in page
        ]
    return 200, {
        "error": None,
        "cases": rows,
        "next": next_cursor,
        "params": params,
        "limited_numbers": limited,
    }


@login_required
async def case_list(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    status, context = await run_in_threadpool(_list, request, viewer)
    config = runtime(request).config
    context.update(
        statuses=list(config.status_names.get("es", {})),
        departments=config.departments,
        categories=config.categories,
        channels=[c.value for c in Channel],
    )
    return render(request, "console/cases.html", context, status)


def _detail(request: Request, viewer: Viewer, number: str) -> dict[str, Any] | None:
    rt = runtime(request)
    with rt.sessions() as session, session.begin():
        case = get_case(session, number, viewer.departments)
        if case is None:
            return None
        audit(session, viewer.username, "console.case_view", "case", case.tracking_number)
        contact = case.contact
        window = int(rt.config.raw.get("console", {}).get("duplicate_window_days", 14))
        local = _local_time(rt.config.timezone)
        duplicates = [
            case_fields(d, local)
            for d in duplicate_candidates(session, case, window, viewer.departments)
        ]
        colleagues = session.scalars(
            select(Operator)
            .join(OperatorDepartment)
            .where(OperatorDepartment.department == case.department, Operator.active.is_(True))
            .order_by(Operator.username)
        ).all()
        assigned = session.get(Operator, case.assigned_to_id) if case.assigned_to_id else None
        sharing, person_phones = links_for_case(session, case, viewer.departments)
        now = utcnow()
        return {
            "case": case,
            "duplicates": duplicates,
            "sharing": sharing,
            "person_phones": person_phones,
            "colleagues": [(o.id, o.username) for o in colleagues],
            "assigned": assigned.username if assigned else None,
            "due": case.due_at.astimezone(rt.config.timezone) if case.due_at else None,
            "overdue": is_overdue(case.due_at, case.status, now),
            "note_max": NOTE_MAX,
            "merged_into": session.get(Case, case.merged_into_id).tracking_number  # type: ignore[union-attr]
            if case.merged_into_id
            else None,
            "allowed": sorted(s.value for s in TRANSITIONS[CaseStatus(case.status)]),
            "error": None,
            "phone": dial_address(contact) if shown_phone(contact) and contact else None,
            "messages": [message_fields(m, local) for m in messages_of_case(session, case.id)],
            "reach": None if contact is None or can_text(contact) else reach_label(contact),
            "events": [event_fields(e, local) for e in case.events],
        }


@login_required
async def case_detail(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    number = "".join(ch for ch in request.path_params["tracking_number"] if ch.isdigit())
    context = await run_in_threadpool(_detail, request, viewer, number)
    if context is None:
        t = translator(request.cookies.get("ventanilla_lang", "es"))
        return render(request, "console/error.html", {"message": t("not_found")}, 404)
    return render(request, "console/case.html", context)


def _act(request: Request, viewer: Viewer, number: str, form: dict[str, str]) -> str | None:
    """Apply one case-page action; returns an error message or None."""
    rt = runtime(request)
    action = form.get("action", "")
    with rt.sessions() as session, session.begin():
        case = get_case(session, number, viewer.departments, for_update=True)
        if case is None:
            return "not_found"
        try:
            if action == "status":
                change_status(
                    session,
                    case,
                    form.get("status", ""),
                    actor=viewer.username,
                    note=form.get("note", ""),
                    config=rt.config,
                    sms_provider=rt.settings.sms_provider,
                    voice_provider=rt.settings.voice_provider,
                    surveys=rt.surveys,
                )
            elif action == "merge":
                source_number = "".join(ch for ch in form.get("source", "") if ch.isdigit())
                source = get_case(session, source_number, viewer.departments, for_update=True)
                if source is None:
                    return "not_found"
                merge_cases(session, case, source, actor=viewer.username)
            elif action == "assign":
                target_id = form_id(form, "operator_id", default=viewer.operator_id)
                if target_id != viewer.operator_id and not viewer.is_supervisor:
                    return "Solo un supervisor asigna pedidos a otra persona."
                operator = session.get(Operator, target_id)
                if operator is None:
                    return "not_found"
                assign_case(session, case, operator, actor=viewer.username)
            elif action == "person":
                name = clip(form.get("name", "").strip(), column_length(Case.citizen_name)) or None
                national_id = "".join(ch for ch in form.get("national_id", "") if ch.isdigit())
                if national_id and not 7 <= len(national_id) <= 9:
                    return "El DNI debe tener entre 7 y 9 dígitos."
                if national_id:
                    link_person(
                        session, case, name=name, national_id=national_id, actor=viewer.username
                    )
                else:
                    case.citizen_name = name
                    case.national_id = None
                    case.updated_at = utcnow()
                add_note(session, case, "datos de la persona actualizados", actor=viewer.username)
            elif action == "note":
                add_note(session, case, form.get("text", ""), actor=viewer.username)
            elif action == "reply":
                body = form.get("text", "").strip()
                if not body or len(body) > 640:
                    return "El mensaje debe tener entre 1 y 640 caracteres."
                sent = message_citizen(
                    session,
                    case,
                    body,
                    kind="operator_reply",
                    provider=rt.settings.sms_provider,
                    actor=viewer.username,
                    now=utcnow(),
                    respect_opt_out=False,
                )
                if sent is None:
                    return "Este pedido no tiene un teléfono que reciba SMS."
            else:
                return f"unknown action {action!r}"
        except (UnknownStatus, IllegalTransition, MergeError, ValueError) as exc:
            session.rollback()
            return str(exc)
        except BadRequest as exc:
            session.rollback()
            return exc.reason
        audit(session, viewer.username, f"console.case_{action}", "case", case.tracking_number)
    return None


@login_required
async def case_action(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    number = "".join(ch for ch in request.path_params["tracking_number"] if ch.isdigit())
    form = {k: str(v) for k, v in (await request.form()).items()}
    problem = await run_in_threadpool(_act, request, viewer, number, form)
    if problem == "not_found":
        t = translator(request.cookies.get("ventanilla_lang", "es"))
        return render(request, "console/error.html", {"message": t("not_found")}, 404)
    if problem is not None:
        context = await run_in_threadpool(_detail, request, viewer, number)
        assert context is not None
        return render(request, "console/case.html", {**context, "error": problem}, 400)
    return RedirectResponse(f"/console/cases/{number}", status_code=303)


routes = [
    Route("/console", case_list, methods=["GET"]),
    Route("/console/cases/{tracking_number}", case_detail, methods=["GET"]),
    Route("/console/cases/{tracking_number}", case_action, methods=["POST"]),
]

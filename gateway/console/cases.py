"""Console case pages: the list with filters and search, and one case with its timeline."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from casestore.cases import BadCursor, CaseFilter, audit, get_case, list_cases
from casestore.status import UnknownStatus
from gateway.console.auth import Viewer, login_required, render, runtime
from gateway.console.i18n import translator
from sms.phone import PhoneError, contact_key, normalise_phone


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
    flt = CaseFilter(
        departments=viewer.departments,
        contact_phone=phone,
        status=params.get("status") or None,
        department=params.get("department") or None,
        q=q or None,
    )
    with rt.sessions() as session, session.begin():
        try:
            page, next_cursor = list_cases(session, flt, params.get("cursor") or None, 50)
        except (UnknownStatus, BadCursor) as exc:
            return 400, {"error": str(exc), "cases": [], "next": None, "params": params}
        audit(session, viewer.username, "console.case_list", "case", "*", {"q": bool(q)})
        rows = [
            {
                "tracking": c.tracking_number,
                "status": c.status,
                "department": c.department,
                "category": c.category,
                "channel": c.channel,
                "urgent": c.urgent,
                "created_at": c.created_at.astimezone(rt.config.timezone),
                "description": c.description,
            }
            for c in page
        ]
    return 200, {"error": None, "cases": rows, "next": next_cursor, "params": params}


@login_required
async def case_list(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    status, context = await run_in_threadpool(_list, request, viewer)
    config = runtime(request).config
    context.update(statuses=list(config.status_names.get("es", {})), departments=config.departments)
    return render(request, "console/cases.html", context, status)


def _detail(request: Request, viewer: Viewer, number: str) -> dict[str, Any] | None:
    rt = runtime(request)
    with rt.sessions() as session, session.begin():
        case = get_case(session, number, viewer.departments)
        if case is None:
            return None
        audit(session, viewer.username, "console.case_view", "case", case.tracking_number)
        contact = case.contact
        return {
            "case": case,
            "phone": contact.phone if contact else None,
            "events": [
                {
                    "kind": e.kind,
                    "at": e.at.astimezone(rt.config.timezone),
                    "actor": e.actor,
                    "text": e.text,
                    "from_status": e.from_status,
                    "to_status": e.to_status,
                }
                for e in case.events
            ],
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


routes = [
    Route("/console", case_list, methods=["GET"]),
    Route("/console/cases/{tracking_number}", case_detail, methods=["GET"]),
]
